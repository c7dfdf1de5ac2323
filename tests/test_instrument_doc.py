"""docs/instrument.md: both scripts run as written and record what the verifier passes.

The page's ``python`` blocks are the plain-loop script and the HF Trainer
script, in that order; each is written to a fresh folder and run there, as
a new user would run it, and its transcript is verified (every segment
replayed, bitwise).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from computewatch.chip import Chip
from computewatch.testing import TinyRun, maker_key
from computewatch.verification import CheckStatus

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "instrument.md"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_the_page_has_the_two_scripts() -> None:
    loop, hf = snippets()
    assert "Monitor(spec, model, optimizer" in loop
    assert "MonitorCallback(spec" in hf
    # "a handful of lines": the monitoring is what is marked, and it is short
    for script in (loop, hf):
        assert 0 < sum("# cw" in line for line in script.splitlines()) <= 10


def _run_and_verify(script: str, folder: Path) -> None:
    folder.mkdir()
    (folder / "lab.py").write_text(script, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "lab.py"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    chip = Chip.open(folder / "chip", read_only=True)
    try:
        verdict = TinyRun(folder / "run", chip, maker_key()).verify(budget=1.0, exact=True)
    finally:
        chip.close()
    failed = [c.name for c in verdict.checks if c.status is CheckStatus.FAIL]
    assert verdict.passed, failed


@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["plain-loop", "hf-trainer"])
def test_the_script_runs_and_verifies(tmp_path: Path, which: int) -> None:
    _run_and_verify(snippets()[which], tmp_path / "lab")
