"""No module of the package runs past 500 lines (issue 19: one job per module)."""

from __future__ import annotations

from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "computewatch"
LIMIT = 500


def test_no_module_is_over_500_lines() -> None:
    modules = sorted(SRC.rglob("*.py"))
    assert len(modules) > 100
    long = {
        str(m.relative_to(SRC)): n
        for m in modules
        if (n := len(m.read_text(encoding="utf-8").splitlines())) > LIMIT
    }
    assert not long, f"modules over {LIMIT} lines: {long}"
