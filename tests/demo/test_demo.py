"""`computewatch demo`: the main job ends with A compliant and B caught."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_json_a_compliant_b_caught(tmp_path: Path) -> None:
    proc = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "computewatch", "demo", "--out", str(tmp_path / "demo"), "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        cwd=ROOT,
    )
    # DESIGN.md: exit 1 when a violation is found
    assert proc.returncode == 1, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["compliant"] == {"lab-a": True, "lab-b": False}
    b = doc["provers"]["lab-b"]
    assert b["failing_checks"], "the spoofed transcript must fail checks"
    assert any(
        c.startswith(("snapshot:", "precommit-logged:", "init")) for c in b["failing_checks"]
    )
    assert b["violated_rules"], "lab-b's run is over the compute thresholds"
    a = doc["provers"]["lab-a"]
    assert not a["findings"]
    assert not a["failing_checks"]
    assert not a["violated_rules"]
    report = json.loads(Path(doc["report"]).read_text())
    assert report["compliant"] == {"lab-a": True, "lab-b": False}
    assert Path(doc["plot"]).read_bytes()[:4] == b"\x89PNG"
    assert "NON-COMPLIANT" in Path(doc["markdown"]).read_text()
    # the sample recomputes from the recorded commitments
    from computewatch.inspection import SampleDraw, verify_draw  # noqa: PLC0415

    for prover in report["provers"]:
        verify_draw(SampleDraw.from_json(prover["sample"]))
