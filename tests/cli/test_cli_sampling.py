"""The `computewatch sampling` and `simulate` commands, end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from computewatch.cli import main

if TYPE_CHECKING:
    from pathlib import Path

PAPER_SAMPLES: dict[str, list[float | None]] = {
    "GPT-3": [243, 2.43e4, 2.43e6],
    "Chinchilla": [132, 1.33e4, 1.33e6],
    "PaLM": [29, 2.98e3, 2.99e5],
    "Chinchilla-280B": [7, 771, 7.72e4],
    "Chinchilla-1T": [None, 60, 6.02e3],
    "Chinchilla-10T": [None, None, 58],
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_table1_json_contract_and_values(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sampling", "table1", "--json")
    assert code == 0
    rows = json.loads(out)
    assert len(rows) == 6
    for row in rows:
        assert set(row) == {
            "model",
            "flops",
            "chip_days",
            "chips_for_one_year",
            "samples_per_year",
        }
        assert isinstance(row["chips_for_one_year"], int)
        got = [row["samples_per_year"][k] for k in ("1000", "100000", "10000000")]
        for g, want in zip(got, PAPER_SAMPLES[row["model"]], strict=True):
            if want is None:
                assert g is None
            else:
                assert isinstance(g, int)
                assert float(f"{g:.3g}") == want


def test_table1_human(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sampling", "table1")
    assert code == 0
    for text in ("Chinchilla-10T", "2.43e6", "7.72e4", "—", "4.12e5"):
        assert text in out


def test_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "sampling",
        "plan",
        "--flops",
        "5.76e23",
        "--chips",
        "1000",
        "--chip-flops-per-day",
        "8.64e19",
        "--snapshots-per-day",
        "0.1",
        "--run-days",
        "365",
        "--period-days",
        "30",
        "--p",
        "0.9",
        "--json",
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["samples_per_year"] == 132
    assert doc["min_chips"] == 19


def test_plan_human(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sampling", "plan", "--flops", "1e25", "--chips", "100000")
    assert code == 0
    assert "samples per year" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--flops", "1e28", "--chips", "1000"], "infeasible run: a run of 1e+28 FLOPs"),
        (["--flops", "1e25", "--chips", "1000", "--p", "1.5"], "detection_probability"),
        (["--flops", "1e25", "--chips", "0"], "chips"),
        (["--flops", "abc", "--chips", "1000"], "bad usage: "),
        (["--chips", "1000"], "--flops"),
    ],
)
def test_plan_bad_input_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = run(capsys, "sampling", "plan", *argv)
    assert code == 2
    assert out == ""
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_inspectors_footnote5(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sampling", "inspectors", "--json")
    assert code == 0
    doc = json.loads(out)
    assert 228_000 < doc["samples_per_year"] < 230_000
    assert doc["inspectors"] == 230
    code, out, _ = run(capsys, "sampling", "inspectors", "--chips-per-inspector", "2000")
    assert code == 0
    assert "115 inspectors" in out


def test_pool(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "sampling", "pool", "--prover", "A=600", "--prover", "B=400", "--flops", "5.76e23"
    )
    assert code == 0
    assert "132 samples a year" in out
    code, out, _ = run(
        capsys,
        "sampling",
        "pool",
        "--prover",
        "A=600",
        "--prover",
        "B=400",
        "--flops",
        "5.76e23",
        "--json",
    )
    assert json.loads(out)["samples_per_year"] == {"A": 79, "B": 53}
    code, _, err = run(capsys, "sampling", "pool", "--prover", "A", "--flops", "1e24")
    assert code == 2
    assert "NAME=CHIPS" in err
    code, _, err = run(
        capsys, "sampling", "pool", "--prover", "A=1", "--prover", "A=2", "--flops", "1e20"
    )
    assert code == 2
    assert "given twice" in err


def test_figure2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    png = tmp_path / "fig2.png"
    code, out, _ = run(capsys, "sampling", "figure2", "--out", str(png), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["min_ratio"] > 0.95
    assert png.read_bytes()[:4] == b"\x89PNG"
    code, out, _ = run(capsys, "sampling", "figure2", "--out", str(png))
    assert "min p_d(k)/p = 0.970" in out
    code, _, err = run(capsys, "sampling", "figure2", "--out", str(tmp_path / "x.svg"))
    assert code == 2
    assert ".png" in err


def test_theorem1(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sampling", "theorem1", "--json")
    assert code == 0
    assert json.loads(out)["passed"] is True
    code, out, _ = run(capsys, "sampling", "theorem1")
    assert "holds" in out


@pytest.mark.parametrize(
    ("strategy", "extra"),
    [
        ("baseline", []),
        ("stretch", ["--stretch", "5"]),
        ("compress", ["--run-days", "30", "--compressed-days", "10", "--chips", "5000"]),
        ("split", ["--run-days", "30", "--offset-days", "10"]),
        ("collude", ["--provers", "3"]),
    ],
)
def test_simulate_json_carries_both_numbers(
    capsys: pytest.CaptureFixture[str], strategy: str, extra: list[str]
) -> None:
    code, out, _ = run(
        capsys,
        "simulate",
        "--strategy",
        strategy,
        "--trials",
        "20000",
        "--seed",
        "11",
        "--json",
        *extra,
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["seed"] == 11
    assert doc["scenario"]["strategy"] == strategy
    assert doc["ci_low"] <= doc["closed_form"] <= doc["ci_high"]
    assert doc["agrees_with_closed_form"] is True


def test_simulate_human_and_chip_engine(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "simulate", "--trials", "500", "--seed", "1", "--engine", "chip")
    assert code == 0
    assert "closed form inside the CI" in out
    assert "engine chip" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--strategy", "sideways"], "bad usage"),
        (["--trials", "0"], "trials"),
        (["--strategy", "compress", "--compressed-days", "1"], "infeasible run"),
        (["--engine", "chip", "--flops", "1.3e28", "--chips", "10000000"], "aggregate"),
    ],
)
def test_simulate_bad_input(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, _, err = run(capsys, "simulate", *argv)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1


def test_version_and_bare_group(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.startswith("computewatch ")
    code, out, err = run(capsys, "sampling")
    assert code == 2
    assert "table1" in out + err
    assert "bad usage" not in err


def test_console_script_runs_as_a_process() -> None:
    exe = shutil.which("computewatch") or str(
        __import__("pathlib").Path(sys.executable).with_name("computewatch")
    )
    proc = subprocess.run(  # noqa: S603 - our own console script
        [exe, "sampling", "plan", "--flops", "1e30", "--chips", "10"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("infeasible run:")
    assert "Traceback" not in proc.stderr
