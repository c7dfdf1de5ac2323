"""The examples run as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_train_tinygpt_example(tmp_path: Path) -> None:
    proc = subprocess.run(  # noqa: S603 - our own example
        [
            sys.executable,
            str(ROOT / "examples" / "train_tinygpt.py"),
            "--out",
            str(tmp_path),
            "--steps",
            "16",
            "--chips",
            "2",
            "--batch-size",
            "8",
            "--checkpoint-every",
            "8",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 16
    assert summary["chips"] == 2
    assert summary["last_loss"] < summary["first_loss"]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["commitment"] == summary["commitment"]
    assert report["world_size"] == 2
