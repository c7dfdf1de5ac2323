"""The chip's location answers: signed by its identity key, bound to nonce and log state."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
import torch

from computewatch.chip import (
    LOCATION_ANSWER_TYPE,
    Chip,
    LocationAnswerer,
    LogState,
    genesis_hash,
    provision_secure_element,
)
from computewatch.crypto import Digest, json_digest, verify_envelope
from computewatch.errors import FormatError, IntegrityError, ParameterError

if TYPE_CHECKING:
    from pathlib import Path

    from computewatch.crypto import Envelope, SigningKey


def _logged_chip(folder: Path, maker: SigningKey, firmware: dict[int, Envelope]) -> Chip:
    chip = Chip.provision(folder, "CW-LOC-1", maker.verifying_key)
    chip.boot(firmware[1])
    chip.precommit("run-a", json_digest({"run": 1}))
    chip.register("run-a", {"w": torch.zeros(4)}, json_digest({"code": 1}), folder.parent / "omega")
    chip.snapshot_now(0)
    chip.flush()
    return chip


def test_answer_is_signed_over_serial_landmark_nonce_and_log(tmp_path: Path) -> None:
    se = provision_secure_element(f"file:{tmp_path / 'se'}", "CW-LOC-0")
    state = LogState(0, genesis_hash("CW-LOC-0"))
    answerer = LocationAnswerer(se, state)
    env = answerer.answer("lm-a", bytes(range(16)))
    verified = verify_envelope(
        env, {se.public_key.key_id: se.public_key}, payload_type=LOCATION_ANSWER_TYPE
    )
    doc = json.loads(verified.payload)
    assert doc == {
        "type": "cw-location-answer/v1",
        "serial": "CW-LOC-0",
        "landmark": "lm-a",
        "nonce": bytes(range(16)).hex(),
        "log": {"size": 0, "head": str(state.head)},
    }
    with pytest.raises(ParameterError, match="16 bytes"):
        answerer.answer("lm-a", b"short")
    with pytest.raises(ParameterError, match="landmark id"):
        answerer.answer("", bytes(16))


def test_open_reads_the_log_state_from_the_secure_element_and_log(
    tmp_path: Path, maker: SigningKey, firmware: dict[int, Envelope]
) -> None:
    chip = _logged_chip(tmp_path / "chip", maker, firmware)
    entries = chip.log_entries()
    with LocationAnswerer.open(tmp_path / "chip") as answerer:
        assert answerer.serial == chip.serial
        assert answerer.public_key == chip.public_key
        assert answerer.log_state == LogState(len(entries), entries[-1].entry_hash)
        doc = json.loads(answerer.answer("lm-a", bytes(16)).payload)
        assert doc["log"]["size"] == len(entries) >= 3
    chip.close()


def test_open_refuses_a_truncated_log(
    tmp_path: Path, maker: SigningKey, firmware: dict[int, Envelope]
) -> None:
    chip = _logged_chip(tmp_path / "chip", maker, firmware)
    chip.close()
    log = tmp_path / "chip" / "nvram.log"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(IntegrityError):
        LocationAnswerer.open(tmp_path / "chip")


@pytest.mark.parametrize("content", [b"", b"{", b'{"se_uri": 7}', b"x" * 5000])
def test_open_refuses_a_bad_chip_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "chip.json").write_bytes(content)
    with pytest.raises(FormatError, match="chip folder"):
        LocationAnswerer.open(tmp_path)


def test_log_state_rejects_a_negative_size() -> None:
    with pytest.raises(ParameterError):
        LogState(-1, Digest.parse("sha256:" + "00" * 32))
