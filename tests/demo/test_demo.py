"""`computewatch demo`: the main job ends with A compliant and B caught.

The test runs the demo's ``tiny`` scale (the same story on fewer chips and
shorter runs, B's compute unchanged); ``computewatch demo`` itself runs
``full``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from computewatch.cli import main

if TYPE_CHECKING:
    from tests.demo.conftest import DemoRun


@pytest.mark.slow
def test_demo_json_a_compliant_b_caught(demo_run: DemoRun) -> None:
    # DESIGN.md: exit 1 when a violation is found
    assert demo_run.code == 1
    doc = demo_run.doc
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


def test_scales_keep_lab_b_compute_and_refuse_unknown_names() -> None:
    from computewatch.demo import SCALES, DemoScale  # noqa: PLC0415
    from computewatch.errors import ParameterError  # noqa: PLC0415

    full, tiny = SCALES["full"], SCALES["tiny"]
    assert full.steps_b * full.batch_b == tiny.steps_b * tiny.batch_b
    assert tiny.run_chips < tiny.chips_per_prover
    assert DemoScale.named("tiny") is tiny
    with pytest.raises(ParameterError, match="expected one of full, tiny, got 'huge'"):
        DemoScale.named("huge")


def test_unknown_scale_is_bad_usage(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["demo", "--out", str(tmp_path / "d"), "--scale", "huge"]) == 2
    err = capsys.readouterr().err
    assert "demo scale: expected one of full, tiny" in err
    assert not (tmp_path / "d").exists()
