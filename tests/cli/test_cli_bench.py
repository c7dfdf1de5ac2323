"""`computewatch bench attacks` end to end on a chip-level attack (milliseconds a trial)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from computewatch.cli import main

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

ATTACK = ["bench", "attacks", "--only", "truncated-log", "--trials", "2"]


def test_bench_prints_a_table_markdown_and_json_with_a_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*ATTACK, "--budget", "0.5"]) == 0
    table = capsys.readouterr().out
    assert "truncated-log" in table
    assert "2/2" in table
    assert "false rejects on honest runs" in table
    assert main([*ATTACK, "--markdown"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.lstrip().startswith("|")
    assert "truncated-log" in markdown
    plot = tmp_path / "detection.png"
    assert main([*ATTACK, "--json", "--max-compute", "0.5", "--out", str(plot)]) == 0
    doc = json.loads(capsys.readouterr().out)
    [row] = doc["attacks"]
    assert (row["name"], row["detection"]["count"], row["detection"]["trials"]) == (
        "truncated-log",
        2,
        2,
    )
    assert doc["policy"]["max_compute"] == 0.5
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_an_unknown_attack_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "attacks", "--only", "no-such-attack", "--trials", "1"]) == 2
    assert "no-such-attack" in capsys.readouterr().err
