"""The audit's inspect step reads each Prover report through its parser.

A report with a wrong-typed or missing field is a ``report-malformed``
finding naming the file and the field; the chips are still inspected (a
snapshot no parsed report claims is a ``hidden-snapshot``). It is never a
KeyError, a TypeError or a silently empty report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
import torch

from computewatch.crypto import json_digest
from computewatch.inspection import AuditFolder, Evidence, inspect
from computewatch.testing import claims_report, provisioned_chip

if TYPE_CHECKING:
    from pathlib import Path

PROVER = "lab-a"
SERIAL = "CW-R-1"
Edit = Callable[[dict[str, Any]], object]


def _audit(tmp_path: Path, edit: Edit | None) -> dict[str, Any]:
    """A sampled chip with one logged snapshot and the one run's report (edited); inspect."""
    subs = tmp_path / "submissions"
    base = subs / PROVER
    with provisioned_chip(base / "chip", SERIAL) as chip:
        chip.precommit("run-1", json_digest({"run": 1}))
        chip.register("run-1", {"w": torch.zeros(4)}, json_digest({"code": 1}), tmp_path / "w")
        chip.snapshot_now(1)
        key = chip.public_key.raw.hex()
        report = claims_report("run-1", SERIAL, chip.log_entries()).to_dict()
    if edit is not None:
        edit(report)
    (base / "run-1").mkdir()
    (base / "run-1" / "report.json").write_text(json.dumps(report))
    runs = {"run-1": {"transcript": "run-1"}}
    submission = {"prover": PROVER, "chips": {SERIAL: "chip"}, "runs": runs}
    (base / "submission.json").write_text(json.dumps(submission))
    folder = AuditFolder(tmp_path / "audit")
    sample = {
        "prover": PROVER,
        "holdings": [{"serial": SERIAL, "key": key}],
        "draw": {"verifier_nonce": "00" * 16, "chips": [SERIAL]},
    }
    folder.step("sample", PROVER).parent.mkdir(parents=True)
    folder.step("sample", PROVER).write_text(json.dumps(sample))
    return inspect(folder, subs, PROVER)


def test_a_well_formed_report_claims_the_snapshot(tmp_path: Path) -> None:
    doc = _audit(tmp_path, None)
    assert doc["findings"] == []
    assert [i["serial"] for i in doc["inspections"]] == [SERIAL]


def _set(path: tuple[str | int, ...], value: object) -> Edit:
    def edit(report: dict[str, Any]) -> None:
        target: Any = report
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (_set(("snapshots", 0, "seq"), "1"), "snapshots[0].seq"),
        (_set(("snapshots", 0, "h"), None), "snapshots[0].h"),
        (_set(("snapshots", 0), [1, 2]), "snapshots[0]"),
        (_set(("snapshots",), {"seq": 1}), "snapshots"),
        (_set(("run_id",), 7), "run_id"),
        (lambda r: r.pop("commitment"), "commitment"),
        (_set(("steps",), -1), "steps"),
    ],
)
def test_a_malformed_report_is_a_finding_naming_file_and_field(
    tmp_path: Path, edit: Edit, field: str
) -> None:
    doc = _audit(tmp_path, edit)
    malformed = [f for f in doc["findings"] if f["kind"] == "report-malformed"]
    assert len(malformed) == 1, doc["findings"]
    assert malformed[0]["evidence"] == Evidence.MALFORMED.value
    assert "run 'run-1' report.json" in malformed[0]["detail"]
    assert f"field {field!r}" in malformed[0]["detail"]
    # the report that did not parse claims nothing: the chip's snapshot is unclaimed
    assert "hidden-snapshot" in {f["kind"] for f in doc["findings"]}


def test_an_empty_report_is_a_finding_naming_the_missing_field(tmp_path: Path) -> None:
    def garble(report: dict[str, Any]) -> None:
        report.clear()

    doc = _audit(tmp_path, garble)
    (malformed,) = [f for f in doc["findings"] if f["kind"] == "report-malformed"]
    assert "field 'format': missing" in malformed["detail"]
