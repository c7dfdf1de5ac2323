"""The first and the last checkpoint interval are never left to the draw (ADR 0034)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from computewatch.testing import train_on_chip
from computewatch.verification import CheckStatus

if TYPE_CHECKING:
    from computewatch.testing import TinyRun


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return train_on_chip(tmp_path_factory.mktemp("boundary"))


@pytest.mark.parametrize("seed", range(4))
def test_both_boundary_intervals_are_replayed_whatever_the_draw(run: TinyRun, seed: int) -> None:
    # 5 % of 24 steps is not even one interval: only the boundary is replayed
    verdict = run.verify(seed=seed, budget=0.05)
    assert verdict.passed
    segments = {c.name: c for c in verdict.checks if c.name.startswith("segment:")}
    assert set(segments) == {"segment:0-6", "segment:18-24"}
    assert all(c.detail.startswith("boundary segment replay") for c in segments.values())
    assert all(c.metrics["epsilon"] == 0.0 for c in segments.values())


def test_under_a_tight_cap_the_last_interval_wins_and_the_first_is_skipped(run: TinyRun) -> None:
    verdict = run.verify(budget=0.05, max_compute=0.3)  # 7 steps: one interval of 6
    segments = {c.name: c for c in verdict.checks if c.name.startswith("segment:")}
    assert segments["segment:18-24"].status is CheckStatus.PASS
    assert segments["segment:0-6"].status is CheckStatus.SKIPPED
    assert "does not fit max_compute" in segments["segment:0-6"].detail
    assert verdict.compute_fraction <= 0.3


def test_a_zero_budget_replays_no_segment(run: TinyRun) -> None:
    verdict = run.verify(budget=0.0)
    assert not [c for c in verdict.checks if c.name.startswith("segment:")]
