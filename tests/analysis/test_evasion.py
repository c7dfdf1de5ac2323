"""Appendix C: Figure 2 and Theorem 1."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from computewatch.analysis import (
    check_theorem1,
    compressed_detection,
    figure2,
    plot_figure2,
    stretched_detection,
)
from computewatch.errors import FormatError, InfeasibleRunError, ParameterError

if TYPE_CHECKING:
    from pathlib import Path


def test_stretch_k1_is_the_target() -> None:
    for b in (1e-4, 0.01, 0.2, 0.9):
        assert stretched_detection(b, 1, 0.9) == pytest.approx(0.9)


def test_stretch_by_hand() -> None:
    b, k, p = 0.2, 100.0, 0.9
    s = math.log(1 - p) / math.log(1 - b)
    assert stretched_detection(b, k, p) == pytest.approx(1 - (1 - b / k) ** (k * s))


def test_figure2_minimum_over_grid_exceeds_095() -> None:
    fig = figure2()
    assert fig.ratios.shape == (100, 200)
    assert fig.run_fractions.max() == pytest.approx(0.2)
    assert fig.run_fractions.min() > 0
    assert fig.min_ratio > 0.95
    assert fig.min_ratio == pytest.approx(float(fig.ratios.min()))
    # the worst case is the biggest run stretched the most
    assert fig.argmin[0] == 100.0
    assert fig.argmin[1] == pytest.approx(0.2)
    # and stretching never helps the Verifier: ratio <= 1 everywhere
    assert np.all(fig.ratios <= 1 + 1e-12)


def test_figure2_png(tmp_path: Path) -> None:
    out = plot_figure2(figure2(), tmp_path / "sub" / "fig2.png")
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000
    with pytest.raises(FormatError, match=r"\.png"):
        plot_figure2(figure2(), tmp_path / "fig2.jpg")


def test_figure2_unwritable_path_is_a_clean_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FormatError, match="cannot write"):
        plot_figure2(figure2(b_points=5, k_max=3), blocker / "fig.png")


def test_theorem1_holds_on_the_grid() -> None:
    res = check_theorem1(points=500)
    assert res.passed
    assert bool(res)
    assert res.cases > 100
    assert res.to_dict()["passed"] is True


def test_theorem1_check_can_fail() -> None:
    # a negative tolerance demands strict increase somewhere: it must fail
    assert not check_theorem1(points=50, tolerance=-1.0)


@given(
    t1=st.floats(1, 365),
    t2=st.floats(1, 365),
    f=st.floats(0.01, 5),
    s=st.floats(1, 1e4),
)
def test_compressed_detection_non_increasing(t1: float, t2: float, f: float, s: float) -> None:
    lo, hi = sorted((t1, t2))

    def pd(t: float) -> float:
        return compressed_detection(
            t, flops=1e24, chip_flops_per_day=8.64e19, chips=10**5, snapshots_per_day=f, samples=s
        )

    assert pd(lo) >= pd(hi) - 1e-12


def test_compressed_detection_refuses_impossible_runs() -> None:
    with pytest.raises(InfeasibleRunError):
        compressed_detection(
            0.001,
            flops=1e26,
            chip_flops_per_day=8.64e19,
            chips=1000,
            snapshots_per_day=0.1,
            samples=5,
        )


@pytest.mark.parametrize(
    ("b", "k", "p"), [(0.0, 2, 0.9), (1.5, 2, 0.9), (0.1, 0.5, 0.9), (0.1, 2, 1.0), (0.1, 2, 0.0)]
)
def test_stretch_bad_inputs(b: float, k: float, p: float) -> None:
    with pytest.raises(ParameterError):
        stretched_detection(b, k, p)


@pytest.mark.parametrize(
    "kwargs", [{"k_max": 0}, {"b_max": 0.0}, {"b_max": 2.0}, {"b_points": 0}, {"p": 1.0}]
)
def test_figure2_bad_inputs(kwargs: dict[str, float]) -> None:
    with pytest.raises(ParameterError):
        figure2(**kwargs)  # type: ignore[arg-type]
