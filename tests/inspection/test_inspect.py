"""Inspecting chips: clean chips pass; each kind of trouble is a finding."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest
import torch

from computewatch.chip import Chip, ManualClock, check_attestation, sign_firmware
from computewatch.crypto import SigningKey, json_digest
from computewatch.errors import (
    CheckUnavailable,
    ComputeWatchError,
    FormatError,
    IntegrityError,
    VerificationFailed,
)
from computewatch.inspection import DirectoryRecord, Evidence, Finding, inspect_chip
from computewatch.testing import claims_report

if TYPE_CHECKING:
    from pathlib import Path

    from computewatch.datacenter import ProverReport

NONCE = bytes(range(16))


@pytest.fixture
def chip_folder(tmp_path: Path) -> tuple[Path, DirectoryRecord]:
    maker = SigningKey.generate()
    clock = ManualClock()
    chip = Chip.provision(tmp_path / "chip", "CW-I-1", maker.verifying_key, clock=clock)
    chip.boot(sign_firmware(name="fw", version=2, code=b"", chipmaker=maker))
    chip.precommit("run-a", json_digest({"a": 1}))
    chip.register("run-a", {"w": torch.zeros(8)}, json_digest({"c": 1}), tmp_path / "omega")
    chip.snapshot_now(3)
    record = DirectoryRecord("CW-I-1", "lab-a", chip.public_key)
    chip.close()
    return tmp_path / "chip", record


def _report(folder: Path) -> ProverReport:
    with Chip.open(folder) as chip:
        return claims_report("run-a", "CW-I-1", chip.log_entries())


def test_a_clean_chip_passes(chip_folder: tuple[Path, DirectoryRecord]) -> None:
    folder, record = chip_folder
    result = inspect_chip(
        folder, record, expected_owner="lab-a", nonce=NONCE, reports=[_report(folder)]
    )
    assert result.passed, result.findings
    assert result.runs == ("run-a",)
    assert result.attestation["firmware"]["v"] == 2
    assert result.to_json()["seal_intact"] is True


def test_an_unreported_snapshot_is_a_finding(chip_folder: tuple[Path, DirectoryRecord]) -> None:
    folder, record = chip_folder
    result = inspect_chip(folder, record, expected_owner="lab-a", nonce=NONCE, reports=[])
    assert [f.kind for f in result.findings] == ["hidden-snapshot"]


def test_owner_mismatch_and_substituted_key(chip_folder: tuple[Path, DirectoryRecord]) -> None:
    folder, record = chip_folder
    result = inspect_chip(
        folder, record, expected_owner="lab-b", nonce=NONCE, reports=[_report(folder)]
    )
    assert "owner-mismatch" in {f.kind for f in result.findings}
    other = DirectoryRecord("CW-I-1", "lab-a", SigningKey.generate().verifying_key)
    result = inspect_chip(
        folder, other, expected_owner="lab-a", nonce=NONCE, reports=[_report(folder)]
    )
    assert {"key-substituted", "attestation"} <= {f.kind for f in result.findings}


def test_broken_seal_and_tampered_log(chip_folder: tuple[Path, DirectoryRecord]) -> None:
    folder, record = chip_folder
    report = _report(folder)
    with Chip.open(folder) as chip:
        chip.break_seal()
    result = inspect_chip(folder, record, expected_owner="lab-a", nonce=NONCE, reports=[report])
    assert [f.kind for f in result.findings] == ["seal-broken"]
    log = folder / "nvram.log"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))  # hide the last entry
    result = inspect_chip(folder, record, expected_owner="lab-a", nonce=NONCE, reports=[report])
    # the SE counts one more entry than the log holds: tampering, not "unreadable"
    kinds = {f.kind for f in result.findings}
    assert kinds & {"log-tampered", "chip-tampered"}
    assert {f.evidence for f in result.findings} >= {Evidence.TAMPERED}


def test_a_missing_chip_folder_is_a_finding(tmp_path: Path) -> None:
    record = DirectoryRecord("CW-X", "lab-a", SigningKey.generate().verifying_key)
    result = inspect_chip(
        tmp_path / "none", record, expected_owner="lab-a", nonce=NONCE, reports=[]
    )
    assert [f.kind for f in result.findings] == ["chip-malformed"]
    assert result.to_json()["findings"][0]["evidence"] == "malformed"


def test_a_truncated_log_is_tampering(chip_folder: tuple[Path, DirectoryRecord]) -> None:
    folder, record = chip_folder
    log = folder / "nvram.log"
    log.write_bytes(log.read_bytes()[:-9])  # cut inside the last entry
    result = inspect_chip(folder, record, expected_owner="lab-a", nonce=NONCE, reports=[])
    kinds = {(f.kind, f.evidence) for f in result.findings}
    assert kinds & {("chip-tampered", Evidence.TAMPERED), ("log-tampered", Evidence.TAMPERED)}
    assert not any("unreadable" in f.kind or "malformed" in f.kind for f in result.findings)


def test_a_garbled_chip_record_is_malformed(chip_folder: tuple[Path, DirectoryRecord]) -> None:
    folder, record = chip_folder
    (folder / "chip.json").write_bytes(b"\xff{not json")
    result = inspect_chip(folder, record, expected_owner="lab-a", nonce=NONCE, reports=[])
    assert [(f.kind, f.evidence) for f in result.findings] == [
        ("chip-malformed", Evidence.MALFORMED)
    ]


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (IntegrityError("seq 4: prev-hash mismatch"), "log-tampered"),
        (FormatError("nvram.log: cannot read"), "log-malformed"),
        (VerificationFailed("segment 3 diverged"), "log-failed"),
        (CheckUnavailable("no checkpoint 6"), "log-unavailable"),
    ],
)
def test_a_finding_made_from_an_error_keeps_its_kind(error: ComputeWatchError, kind: str) -> None:
    finding = Finding.from_error("CW-1", "log", error)
    assert finding.kind == kind
    assert finding.evidence is Evidence.of(error)
    assert finding.to_json()["evidence"] == kind.split("-")[1]


def test_a_restored_older_copy_of_the_chip_is_found_against_an_earlier_attestation(
    tmp_path: Path,
) -> None:
    maker = SigningKey.generate()
    image = sign_firmware(name="fw", version=2, code=b"", chipmaker=maker)
    folder = tmp_path / "chip"
    with Chip.provision(folder, "CW-I-2", maker.verifying_key, clock=ManualClock()) as chip:
        chip.boot(image)
        record = DirectoryRecord("CW-I-2", "lab-a", chip.public_key)
    shutil.copytree(folder, tmp_path / "backup")  # SE files and log, as the Prover keeps them
    with Chip.open(folder, clock=ManualClock()) as chip:
        chip.boot(image)  # the chip goes on working: its counters and log grow
    with Chip.open(folder, read_only=True) as chip:
        seen = check_attestation(chip.attest(NONCE), record.public_key, "CW-I-2", NONCE)
    kw = {"expected_owner": "lab-a", "nonce": NONCE, "reports": [], "earlier": seen}
    assert inspect_chip(folder, record, **kw).passed  # type: ignore[arg-type]
    shutil.rmtree(folder)
    shutil.copytree(tmp_path / "backup", folder)
    result = inspect_chip(folder, record, **kw)  # type: ignore[arg-type]
    assert "state-rolled-back" in {f.kind for f in result.findings}
