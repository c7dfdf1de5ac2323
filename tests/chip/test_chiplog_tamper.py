"""Tampering with a chip's log: every kind is detected, and named."""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import pytest
import torch

from computewatch.chip import (
    LOG_ENTRY_PAYLOAD_TYPE,
    Chip,
    ManualClock,
    read_chip_log,
    sign_firmware,
    verify_chip_log,
)
from computewatch.crypto import Envelope, SigningKey, canonical_json, json_digest, sign_envelope
from computewatch.errors import IntegrityError

if TYPE_CHECKING:
    from pathlib import Path

CODE = json_digest({"code": 1})


@pytest.fixture
def logged_chip(tmp_path: Path, maker: SigningKey, firmware: dict[int, Envelope]) -> Chip:
    clock = ManualClock()
    c = Chip.provision(tmp_path / "chip", "CW-LOG", maker.verifying_key, clock=clock)
    c.boot(firmware[1])
    c.precommit("run", json_digest({"m": 1}))
    c.register("run", {"w": torch.zeros(16)}, CODE, tmp_path / "o")
    for step in range(4):
        clock.advance(10)
        c.snapshot_now(step)
    c.close()
    return c  # closed; tests reopen it


def _lines(chip: Chip) -> list[bytes]:
    return chip.log_path.read_bytes().splitlines(keepends=True)


def _write(chip: Chip, lines: list[bytes]) -> None:
    chip.log_path.write_bytes(b"".join(lines))


def _verify(chip: Chip) -> None:
    verify_chip_log(read_chip_log(chip.log_path), chip.public_key, chip.serial)


def test_untouched_log_verifies(logged_chip: Chip) -> None:
    entries = verify_chip_log(read_chip_log(logged_chip.log_path), logged_chip.public_key, "CW-LOG")
    assert [e.seq for e in entries] == list(range(8))
    reopened = Chip.open(logged_chip.folder)
    assert len(reopened.log_entries()) == 8
    reopened.close()


def test_editing_an_entry_is_detected(logged_chip: Chip) -> None:
    lines = _lines(logged_chip)
    doc = json.loads(lines[5])
    payload = json.loads(base64.b64decode(doc["payload"]))
    payload["body"]["h"] = "sha256:" + "00" * 32  # claim other weights
    doc["payload"] = base64.b64encode(canonical_json(payload)).decode()
    lines[5] = json.dumps(doc).encode() + b"\n"
    _write(logged_chip, lines)
    with pytest.raises(IntegrityError, match="seq 5: signature does not verify"):
        _verify(logged_chip)
    with pytest.raises(IntegrityError, match="seq 5"):
        Chip.open(logged_chip.folder)


def test_flipping_any_byte_of_any_entry_is_detected(logged_chip: Chip) -> None:
    lines = _lines(logged_chip)
    line = lines[6]
    for pos in range(0, len(line) - 1, 7):
        bad = bytearray(line)
        bad[pos] ^= 0x04
        _write(logged_chip, [*lines[:6], bytes(bad), *lines[7:]])
        with pytest.raises(IntegrityError):
            _verify(logged_chip)


def test_deleting_an_entry_is_detected(logged_chip: Chip) -> None:
    lines = _lines(logged_chip)
    _write(logged_chip, lines[:3] + lines[4:])
    with pytest.raises(IntegrityError, match=r"seq 3: seq mismatch \(expected 3, got 4"):
        _verify(logged_chip)


def test_reordering_entries_is_detected(logged_chip: Chip) -> None:
    lines = _lines(logged_chip)
    lines[4], lines[5] = lines[5], lines[4]
    _write(logged_chip, lines)
    with pytest.raises(IntegrityError, match="seq 4: seq mismatch"):
        _verify(logged_chip)


def test_truncating_the_log_is_detected_against_the_secure_element(logged_chip: Chip) -> None:
    lines = _lines(logged_chip)
    _write(logged_chip, lines[:-2])
    _verify(logged_chip)  # a prefix is internally consistent ...
    with pytest.raises(
        IntegrityError, match="log truncated: the secure element counts 8 entries, the log holds 6"
    ):
        Chip.open(logged_chip.folder)  # ... but the SE's counter says 8


def test_replaying_an_entry_is_detected(logged_chip: Chip) -> None:
    lines = _lines(logged_chip)
    _write(logged_chip, [*lines, lines[5]])
    with pytest.raises(IntegrityError, match="seq 8: seq mismatch"):
        _verify(logged_chip)


def test_entries_replayed_from_another_chip_are_detected(
    logged_chip: Chip, tmp_path: Path, maker: SigningKey, firmware: dict[int, Envelope]
) -> None:
    other = Chip.provision(tmp_path / "other", "CW-OTHER", maker.verifying_key)
    other.boot(firmware[1])
    other.close()
    foreign = _lines(other)
    lines = _lines(logged_chip)
    _write(logged_chip, [*foreign, *lines[2:]])
    with pytest.raises(
        IntegrityError, match="seq 0: signature does not verify against the chip key"
    ):
        _verify(logged_chip)


def test_substituting_the_chip_key_is_detected(logged_chip: Chip) -> None:
    # The Prover re-signs a forged log with a key of its own: the log no
    # longer verifies against the key the directory registered for the chip.
    rogue = SigningKey.generate()
    forged = [
        sign_envelope(LOG_ENTRY_PAYLOAD_TYPE, env.payload, [rogue]).to_json() + b"\n"
        for env in read_chip_log(logged_chip.log_path)
    ]
    _write(logged_chip, forged)
    with pytest.raises(IntegrityError, match="key was substituted"):
        _verify(logged_chip)


def test_forked_head_is_detected_with_the_attested_head(logged_chip: Chip) -> None:
    envs = read_chip_log(logged_chip.log_path)
    entries = verify_chip_log(envs, logged_chip.public_key, "CW-LOG")
    with pytest.raises(IntegrityError, match="head mismatch"):
        verify_chip_log(envs, logged_chip.public_key, "CW-LOG", expected_head=entries[3].entry_hash)


def test_interrupted_append_is_committed_and_torn_line_cut(logged_chip: Chip) -> None:
    from computewatch.chip import open_secure_element  # noqa: PLC0415

    se = open_secure_element(f"file:{logged_chip.folder / 'se'}")
    entries = verify_chip_log(read_chip_log(logged_chip.log_path), se.public_key, "CW-LOG")
    # firmware wrote entry 8 and crashed before counting it
    doc = {
        "serial": "CW-LOG",
        "seq": 8,
        "time_us": entries[-1].time_us + 1,
        "kind": "boot",
        "body": {"firmware": None, "boot_count": 9},
        "prev": str(entries[-1].entry_hash),
    }
    line = sign_envelope(LOG_ENTRY_PAYLOAD_TYPE, canonical_json(doc), [se]).to_json() + b"\n"
    with logged_chip.log_path.open("ab") as f:
        f.write(line + b'{"payload": "torn')
    reopened = Chip.open(logged_chip.folder)
    assert len(reopened.log_entries()) == 9
    assert not logged_chip.log_path.read_bytes().endswith(b"torn")
    reopened.close()


def test_non_monotonic_time_is_detected(logged_chip: Chip) -> None:
    from computewatch.chip import open_secure_element  # noqa: PLC0415

    se = open_secure_element(f"file:{logged_chip.folder / 'se'}")
    envs = read_chip_log(logged_chip.log_path)
    entries = verify_chip_log(envs, se.public_key, "CW-LOG")
    doc = {
        "serial": "CW-LOG",
        "seq": 8,
        "time_us": entries[-1].time_us - 5,
        "kind": "boot",
        "body": {},
        "prev": str(entries[-1].entry_hash),
    }
    late = sign_envelope(LOG_ENTRY_PAYLOAD_TYPE, canonical_json(doc), [se])
    with pytest.raises(IntegrityError, match="time goes backwards"):
        verify_chip_log([*envs, late], se.public_key, "CW-LOG")


def test_garbage_line_is_tampering_not_a_crash(logged_chip: Chip) -> None:
    lines = _lines(logged_chip)
    _write(logged_chip, [*lines[:2], b"not json at all\n", *lines[2:]])
    with pytest.raises(IntegrityError, match="line 3: not a signed entry"):
        read_chip_log(logged_chip.log_path)


def test_firmware_signed_for_another_chipmaker_cannot_be_slipped_in(tmp_path: Path) -> None:
    maker = SigningKey.generate()
    rogue = SigningKey.generate()
    c = Chip.provision(tmp_path / "c", "CW-X", maker.verifying_key)
    with pytest.raises(IntegrityError):
        c.boot(sign_firmware(name="evil", version=1, code=b"", chipmaker=rogue))
    c.close()


def test_broken_chain_is_named(logged_chip: Chip) -> None:
    from computewatch.chip import open_secure_element  # noqa: PLC0415

    se = open_secure_element(f"file:{logged_chip.folder / 'se'}")
    envs = read_chip_log(logged_chip.log_path)
    entries = verify_chip_log(envs, se.public_key, "CW-LOG")
    doc = {
        "serial": "CW-LOG",
        "seq": 8,
        "time_us": entries[-1].time_us,
        "kind": "boot",
        "body": {},
        "prev": str(entries[2].entry_hash),  # a fork off entry 2
    }
    fork = sign_envelope(LOG_ENTRY_PAYLOAD_TYPE, canonical_json(doc), [se])
    with pytest.raises(IntegrityError, match="seq 8: prev-hash mismatch"):
        verify_chip_log([*envs, fork], se.public_key, "CW-LOG")
