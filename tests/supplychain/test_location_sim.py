"""The simulation: a latency model from published figures, and the campaign's rates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from computewatch.errors import ParameterError
from computewatch.supplychain import (
    OPTIMAL_FIBRE,
    LatencyModel,
    calibrate_radius,
    destination,
    great_circle_km,
    one_sided_rate,
    rtt_bound_km,
    run_campaign,
)
from tests.supplychain.location_world import make_answerer

if TYPE_CHECKING:
    from pathlib import Path


@given(
    distance=st.floats(0, 20_000),
    seed=st.integers(0, 2**32 - 1),
    model=st.sampled_from([LatencyModel(), OPTIMAL_FIBRE]),
)
def test_a_modelled_round_trip_never_bounds_below_the_true_distance(
    distance: float, seed: int, model: LatencyModel
) -> None:
    rtt_ms = model.rtt_ms(distance, np.random.default_rng(seed))
    assert rtt_bound_km(int(rtt_ms * 1000) + 1) >= distance


@given(
    lat=st.floats(-80, 80),
    lon=st.floats(-179, 179),
    bearing=st.floats(0, 360),
    km=st.floats(0, 5000),
)
def test_destination_lies_at_the_distance_asked(
    lat: float, lon: float, bearing: float, km: float
) -> None:
    to = destination(lat, lon, bearing, km)
    assert great_circle_km(lat, lon, *to) == pytest.approx(km, abs=1e-3)


def test_calibrated_radii_grow_with_distance_and_the_model_is_validated() -> None:
    model = LatencyModel()
    near, far = (
        calibrate_radius(50, model, draws=20_000),
        calibrate_radius(500, model, draws=20_000),
    )
    assert 50 < near < far
    with pytest.raises(ParameterError, match="inflation_median"):
        LatencyModel(inflation_median=1.0)


def test_one_sided_bounds() -> None:
    assert one_sided_rate(299, 299)["lower95"] >= 0.99
    assert one_sided_rate(298, 298)["lower95"] < 0.99
    assert one_sided_rate(0, 299)["upper95"] <= 0.01


def test_a_small_campaign_separates_honest_and_diverted_chips(tmp_path: Path) -> None:
    answerer = make_answerer(tmp_path, "CW-SIM-1")
    result = run_campaign(answerer, trials=30, seed=1)
    assert result["honest_false_flags"]["count"] == 0
    assert result["diverted_flagged"]["count"] == 30
    assert result["diverted_optimal_fibre_flagged"]["count"] == 30


@pytest.mark.slow
def test_campaign_meets_99_percent_detection_and_1_percent_false_flags(tmp_path: Path) -> None:
    """The issue's must-show: 300 trials each, exact one-sided 95 % bounds."""
    answerer = make_answerer(tmp_path, "CW-SIM-2")
    result = run_campaign(answerer, trials=300, seed=2)
    assert result["diverted_flagged"]["lower95"] >= 0.99, result["diverted_flagged"]
    assert result["diverted_optimal_fibre_flagged"]["lower95"] >= 0.99
    assert result["honest_false_flags"]["upper95"] <= 0.01, result["honest_false_flags"]
