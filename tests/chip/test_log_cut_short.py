"""A log cut short, emptied or torn is tampering wherever it is read; reading never writes.

Each command that reads a chip log (`chip verify`, `chip log`, an inspection)
checks it against the entry count the chip's secure element attests under a
fresh nonce, and none of them touches the evidence: the chip folder hashes
the same before and after.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import pytest
import torch

from computewatch.chip import (
    Chip,
    ChipError,
    ManualClock,
    check_attestation,
    read_chip_log,
    verify_attested_log,
)
from computewatch.cli import main
from computewatch.crypto import Envelope, SigningKey, json_digest
from computewatch.errors import IntegrityError
from computewatch.inspection import DirectoryRecord, inspect_chip

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

NONCE = bytes(range(16))


@pytest.fixture
def folder(tmp_path: Path, maker: SigningKey, firmware: dict[int, Envelope]) -> Path:
    clock = ManualClock()
    path = tmp_path / "chip"
    with Chip.provision(path, "CW-CUT", maker.verifying_key, clock=clock) as chip:
        chip.boot(firmware[1])
        chip.precommit("run", json_digest({"m": 1}))
        chip.register("run", {"w": torch.zeros(8)}, json_digest({"code": 1}), tmp_path / "o")
        for step in range(3):
            clock.advance(10)
            chip.snapshot_now(step)
    return path


def _cut_tail(log: Path) -> None:
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-2]))


def _empty(log: Path) -> None:
    log.write_bytes(b"")


def _delete(log: Path) -> None:
    log.unlink()


def _tear(log: Path) -> None:
    data = log.read_bytes()
    log.write_bytes(data[:-40])


CUTS: dict[str, Callable[[Path], None]] = {
    "tail-removed": _cut_tail,
    "emptied": _empty,
    "deleted": _delete,
    "torn": _tear,
}


def _fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: its hash and mtime (what a write would change)."""
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    _, err = capsys.readouterr()
    return code, err


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_chip_verify_and_log_call_a_cut_log_tampering_and_leave_it_as_found(
    folder: Path, cut: str, capsys: pytest.CaptureFixture[str]
) -> None:
    CUTS[cut](folder / "nvram.log")
    before = _fingerprint(folder)
    for command in ("verify", "log"):
        code, err = _cli(capsys, "chip", command, str(folder))
        assert code == 1, (command, err)
        assert "tampering" in err
        assert len(err.strip().splitlines()) == 1
    assert _fingerprint(folder) == before


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_inspection_calls_a_cut_log_tampering_and_leaves_it_as_found(
    folder: Path, cut: str
) -> None:
    with Chip.open(folder, read_only=True) as chip:
        record = DirectoryRecord("CW-CUT", "lab-a", chip.public_key)
    CUTS[cut](folder / "nvram.log")
    before = _fingerprint(folder)
    result = inspect_chip(folder, record, expected_owner="lab-a", nonce=NONCE, reports=[])
    assert "log-tampered" in {f.kind for f in result.findings}
    assert _fingerprint(folder) == before


def test_untouched_log_verifies_in_every_command_and_is_not_written(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _fingerprint(folder)
    for command in ("verify", "log"):
        assert _cli(capsys, "chip", command, str(folder))[0] == 0
    with Chip.open(folder, read_only=True) as chip:
        record = DirectoryRecord("CW-CUT", "lab-a", chip.public_key)
    result = inspect_chip(folder, record, expected_owner="lab-a", nonce=NONCE, reports=[])
    assert {f.kind for f in result.findings} == {"hidden-snapshot"}  # nothing reported
    assert _fingerprint(folder) == before


def test_a_read_only_copy_verifies_and_stays_read_only(folder: Path, tmp_path: Path) -> None:
    for p in [folder, *folder.rglob("*")]:
        p.chmod(0o500 if p.is_dir() else 0o400)
    try:
        before = _fingerprint(folder)
        with Chip.open(folder, read_only=True) as chip:
            claims = check_attestation(chip.attest(NONCE), chip.public_key, "CW-CUT", NONCE)
            assert len(chip.log_entries()) == claims["log"]["size"] == 7
            with pytest.raises(ChipError, match="read-only"):
                chip.snapshot_now(0)
        assert _fingerprint(folder) == before
    finally:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(0o700 if p.is_dir() else 0o600)
    del tmp_path


def test_a_stale_attestation_does_not_vouch_for_a_cut_log(folder: Path) -> None:
    """An attestation from before the cut, replayed, fails the nonce; a fresh one the count."""
    with Chip.open(folder, read_only=True) as chip:
        old = chip.attest(NONCE)
        key = chip.public_key
    _cut_tail(folder / "nvram.log")
    fresh = bytes(range(1, 17))
    with pytest.raises(IntegrityError, match="not for this nonce"):
        check_attestation(old, key, "CW-CUT", fresh)
    with Chip.open(folder, read_only=True) as chip:
        claims = check_attestation(chip.attest(fresh), key, "CW-CUT", fresh)
    with pytest.raises(IntegrityError, match="truncated"):
        verify_attested_log(read_chip_log(folder / "nvram.log"), claims, key, "CW-CUT")
