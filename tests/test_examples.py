"""Every example under examples/ runs as documented, at a small size.

A script (a ``.py`` file with a ``__main__`` block) must appear in `RUNS`
with the small arguments it is run with here; a new example without an entry
fails `test_every_example_script_is_run`. ``rules.yaml`` is checked with the
command the README gives, and ``tinygpt.py`` (a training program, not a
script) runs through ``train_tinygpt.py``.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from computewatch.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: Example script -> its arguments here (``{out}`` becomes a fresh folder).
RUNS: dict[str, list[str]] = {
    "train_tinygpt.py": [
        "--out", "{out}", "--steps", "16", "--chips", "2", "--batch-size", "8",
        "--checkpoint-every", "8",
    ],
    "train_loop.py": ["--out", "{out}", "--steps", "20", "--checkpoint-every", "5"],
    "train_fsdp2.py": ["--out", "{out}", "--chips", "2", "--steps", "8"],
    "train_hf.py": [
        "--out", "{out}", "--steps", "12", "--batch-size", "8", "--accumulation", "2",
        "--checkpoint-every", "4",
    ],
}  # fmt: skip


def _scripts() -> list[str]:
    return sorted(
        p.name for p in EXAMPLES.glob("*.py") if "__main__" in p.read_text(encoding="utf-8")
    )


def test_every_example_script_is_run() -> None:
    assert _scripts() == sorted(RUNS), "add the new example to RUNS with small arguments"


def _run(script: str, out: Path) -> subprocess.CompletedProcess[str]:
    args = [a.replace("{out}", str(out)) for a in RUNS[script]]
    return subprocess.run(  # noqa: S603 - our own example
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@pytest.mark.slow
def test_train_tinygpt_example(tmp_path: Path) -> None:
    proc = _run("train_tinygpt.py", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 16
    assert summary["chips"] == 2
    assert summary["last_loss"] < summary["first_loss"]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["commitment"] == summary["commitment"]
    assert report["world_size"] == 2


def test_example_rules_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(EXAMPLES / "rules.yaml"), "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    ids = [rule["id"] for rule in checked["rules"]]
    assert ids
    assert len(set(ids)) == len(ids)


def cluster_verify_cli(tmp_path: Path, run_dir: Path, *chips: str) -> int:
    """`computewatch cluster verify` on a recorded run (every segment replayed), its exit code."""
    key = tmp_path / "cluster.key"
    assert main(["keys", "generate", str(key)]) == 0
    argv = [
        "cluster", "verify", "--transcript", str(run_dir),
        "--report", str(run_dir / "report.json"), "--key", str(key),
        "--out", str(tmp_path / "verdict.json"), "--budget", "1", "--seed", "3",
    ]  # fmt: skip
    for chip in chips:
        argv += ["--chip", chip]
    return main(argv)


@pytest.mark.slow
def test_train_loop_example_passes_cluster_verify(tmp_path: Path) -> None:
    proc = _run("train_loop.py", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 20
    assert cluster_verify_cli(tmp_path, Path(summary["transcript"]), summary["chip"]) == 0
    envelope = json.loads((tmp_path / "verdict.json").read_text())
    assert json.loads(base64.b64decode(envelope["payload"]))["verdict"] == "pass"


@pytest.mark.slow
def test_train_hf_example_passes_cluster_verify(tmp_path: Path) -> None:
    """The HF Trainer example, gradient accumulation included, offline."""
    proc = _run("train_hf.py", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout[proc.stdout.rfind("\n{\n") + 1 :])  # after the Trainer's logs
    assert summary["steps"] == 12
    assert cluster_verify_cli(tmp_path, Path(summary["transcript"]), summary["chip"]) == 0


@pytest.mark.slow
def test_train_fsdp2_example_passes_cluster_verify(tmp_path: Path) -> None:
    """Two chips, one process each, FSDP2 on a gloo CPU mesh; the CLI replays it bitwise."""
    out = tmp_path / "out"
    proc = _run("train_fsdp2.py", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    chips = [f"CW-F-{r},{out}/chip-{r}.pub,{out}/chip-{r}/nvram.log" for r in range(2)]
    assert f"--chip {chips[1]}" in summary["verify"]
    assert cluster_verify_cli(tmp_path, Path(summary["run"]), *chips) == 0
    envelope = json.loads((tmp_path / "verdict.json").read_text())
    assert json.loads(base64.b64decode(envelope["payload"]))["verdict"] == "pass"
