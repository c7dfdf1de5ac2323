"""The sealed-file secure element: the contract, plus its tamper evidence."""

from __future__ import annotations

import base64
import json
import os
from typing import TYPE_CHECKING

import pytest

from computewatch.chip import (
    FileSecureElement,
    SecureElement,
    open_secure_element,
    provision_secure_element,
)
from computewatch.crypto import SigningKey
from computewatch.errors import FormatError, IntegrityError, ParameterError
from tests.chip.se_contract import Backend, SecureElementContract

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def backend(tmp_path: Path) -> Backend:
    def make(serial: str) -> tuple[SecureElement, object]:
        uri = f"file:{tmp_path / serial}"
        se = provision_secure_element(uri, serial)
        return se, lambda: open_secure_element(uri)

    return make  # type: ignore[return-value]


class TestFileSecureElement(SecureElementContract):
    pass


def _edit_record(folder: Path, edit: object) -> None:
    sealed = folder / "sealed.json"
    outer = json.loads(sealed.read_text())
    record = json.loads(base64.b64decode(outer["payload"]))
    edit(record)  # type: ignore[operator]
    outer["payload"] = base64.b64encode(json.dumps(record).encode()).decode()
    sealed.write_text(json.dumps(outer))


def test_lowering_a_counter_by_hand_is_detected(tmp_path: Path) -> None:
    se = FileSecureElement.provision(tmp_path / "se", "CW-T1")
    se.increment_counter("firmware")
    se.increment_counter("firmware")
    _edit_record(tmp_path / "se", lambda r: r["counters"].update(firmware=0))
    with pytest.raises(IntegrityError, match="seal does not verify"):
        se.read_counter("firmware")
    with pytest.raises(IntegrityError, match="seal does not verify"):
        FileSecureElement.open(tmp_path / "se")


def test_rewriting_the_serial_is_detected(tmp_path: Path) -> None:
    FileSecureElement.provision(tmp_path / "se", "CW-T2")
    _edit_record(tmp_path / "se", lambda r: r.update(serial="CW-OTHER"))
    with pytest.raises(IntegrityError):
        FileSecureElement.open(tmp_path / "se")


def test_substituted_identity_key_is_detected(tmp_path: Path) -> None:
    FileSecureElement.provision(tmp_path / "se", "CW-T3")
    key_file = tmp_path / "se" / "identity.key"
    key_file.unlink()
    SigningKey.generate().save(key_file)
    with pytest.raises(IntegrityError, match=r"seal does not verify|another identity key"):
        FileSecureElement.open(tmp_path / "se")


def test_flipping_any_byte_of_the_sealed_file_is_detected(tmp_path: Path) -> None:
    se = FileSecureElement.provision(tmp_path / "se", "CW-T4")
    se.write_state(b"head")
    sealed = tmp_path / "se" / "sealed.json"
    original = sealed.read_bytes()
    doc = json.loads(original)
    # flip bytes inside the signed payload and the signature
    for field in ("payload", "signature"):
        raw = bytearray(base64.b64decode(doc[field]))
        for pos in range(0, len(raw), max(1, len(raw) // 25)):
            tampered = bytearray(raw)
            tampered[pos] ^= 0x20
            bad = dict(doc, **{field: base64.b64encode(bytes(tampered)).decode()})
            sealed.write_text(json.dumps(bad))
            with pytest.raises(IntegrityError):
                se.read_state()
    sealed.write_bytes(original)
    assert se.read_state() == b"head"
    sealed.write_bytes(original[:-40])
    with pytest.raises(IntegrityError, match="corrupt"):
        se.read_state()


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    FileSecureElement.provision(tmp_path / "se", "CW-T5")
    os.chmod(tmp_path / "se" / "identity.key", 0o644)  # noqa: PTH101
    with pytest.raises(FormatError):
        FileSecureElement.open(tmp_path / "se")


def test_provisioning_twice_and_bad_inputs(tmp_path: Path) -> None:
    FileSecureElement.provision(tmp_path / "se", "CW-T6")
    with pytest.raises(FormatError, match="already provisioned"):
        FileSecureElement.provision(tmp_path / "se", "CW-T6")
    with pytest.raises(FormatError, match="serial"):
        FileSecureElement.provision(tmp_path / "se2", " bad serial ")
    with pytest.raises(FormatError, match="not provisioned"):
        FileSecureElement.open(tmp_path / "nothing")
    se = FileSecureElement.open(tmp_path / "se")
    with pytest.raises(ParameterError):
        se.read_counter("no spaces allowed")
    with pytest.raises(ParameterError):
        se.random_bytes(-1)


@pytest.mark.parametrize("uri", ["", "file:", "http://x", "tpm", "nfs:/x"])
def test_bad_uris(uri: str) -> None:
    with pytest.raises(FormatError, match="secure element URI"):
        open_secure_element(uri)
