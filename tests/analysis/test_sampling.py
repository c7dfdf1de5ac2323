"""Equation 1 and Appendix B (`computewatch.analysis._sampling`)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from computewatch.analysis import (
    H100_FLOPS_PER_DAY,
    SamplingParams,
    detection_probability,
    min_chips,
    plan_samples,
    snapshot_probability,
)
from computewatch.errors import InfeasibleRunError, ParameterError


def test_gpt3_on_1000_chips_by_hand() -> None:
    # by hand: b is H over (a T C), and p_w is 1 minus e to the -3
    b = 3.14e23 / (H100_FLOPS_PER_DAY * 365 * 1000)
    pw = 1 - math.exp(-3)
    total = math.log(0.1) / math.log(1 - b * pw)
    plan = plan_samples(SamplingParams(flops=3.14e23, chips=1000))
    assert plan.run_fraction == pytest.approx(b)
    assert plan.snapshot_probability == pytest.approx(pw)
    assert plan.samples_per_period_exact == pytest.approx(total * 30 / 365)
    assert plan.samples_per_year_exact == pytest.approx(total)
    assert plan.samples_per_year == math.ceil(total) == 243
    assert plan.samples_per_period == 20
    assert plan.min_chips == 10


def test_plan_meets_the_target_and_one_fewer_sample_does_not() -> None:
    params = SamplingParams(flops=2.56e24, chips=100_000)
    plan = plan_samples(params)
    assert detection_probability(params, plan.samples_per_period_exact) == pytest.approx(0.9)
    assert detection_probability(params, plan.samples_per_period) >= 0.9
    assert detection_probability(params, plan.samples_per_period - 1) < 0.9


def test_snapshot_probability_and_min_chips() -> None:
    assert snapshot_probability(0.1, 30) == pytest.approx(1 - math.exp(-3))
    assert snapshot_probability(1e-12, 1.0) == pytest.approx(1e-12)  # no cancellation
    assert min_chips(8.64e19 * 365, 8.64e19, 365) == pytest.approx(1.0)


def test_whole_stockpile_run_and_certain_detection() -> None:
    # b = 1 and p_w rounds to 1: a single inspection catches the run
    params = SamplingParams(flops=H100_FLOPS_PER_DAY * 365 * 10, chips=10, snapshots_per_day=100.0)
    plan = plan_samples(params)
    assert plan.samples_per_period == 1
    assert plan.samples_per_year == 1
    assert detection_probability(params, 1) == 1.0


def test_infeasible_run_names_the_numbers() -> None:
    with pytest.raises(InfeasibleRunError, match=r"needs 4028 chips .* owns 1000"):
        plan_samples(SamplingParams(flops=1.27e26, chips=1000))
    with pytest.raises(InfeasibleRunError):
        detection_probability(SamplingParams(flops=1.27e26, chips=1000), 10)


def test_undetectably_small_run_is_an_error_not_infinity() -> None:
    params = SamplingParams(flops=1.0, chips=10**12, snapshots_per_day=1e-9)
    with pytest.raises(ParameterError, match="too small"):
        plan_samples(params)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("detection_probability", 0.0),
        ("detection_probability", 1.0),
        ("detection_probability", -0.5),
        ("detection_probability", math.nan),
        ("flops", 0.0),
        ("flops", -1e24),
        ("flops", math.inf),
        ("flops", math.nan),
        ("chips", 0),
        ("chips", -3),
        ("chips", 2.5),
        ("chips", True),
        ("chip_flops_per_day", 0.0),
        ("snapshots_per_day", -0.1),
        ("run_days", 0.0),
        ("period_days", math.inf),
    ],
)
def test_bad_parameters_are_refused_by_name(field: str, value: float) -> None:
    kwargs: dict[str, float] = {"flops": 1e24, "chips": 1000, field: value}
    with pytest.raises(ParameterError, match=field):
        SamplingParams(**kwargs)  # type: ignore[arg-type]


def test_bad_parameter_types_are_refused() -> None:
    with pytest.raises(ParameterError, match="flops"):
        SamplingParams(flops="1e24", chips=1000)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="samples_per_period"):
        detection_probability(SamplingParams(flops=1e24, chips=1000), 0)


def test_integral_float_chips_are_accepted() -> None:
    assert SamplingParams(flops=1e24, chips=1000.0).chips == 1000  # type: ignore[arg-type]


def test_plan_to_dict_is_json_ready() -> None:
    d = plan_samples(SamplingParams(flops=1e25, chips=10**6)).to_dict()
    assert d["params"]["chips"] == 10**6
    assert isinstance(d["samples_per_year"], int)


@given(
    flops=st.floats(1e20, 1e27),
    chips=st.integers(1, 10**8),
    f=st.floats(1e-3, 10),
    t=st.floats(1, 3650),
    tm=st.floats(1, 365),
    p=st.floats(0.01, 0.999),
)
def test_plan_is_finite_or_refused(
    flops: float, chips: int, f: float, t: float, tm: float, p: float
) -> None:
    params = SamplingParams(
        flops=flops,
        chips=chips,
        snapshots_per_day=f,
        run_days=t,
        period_days=tm,
        detection_probability=p,
    )
    try:
        plan = plan_samples(params)
    except ParameterError:
        return
    assert math.isfinite(plan.samples_per_period_exact)
    assert plan.samples_per_period >= 1
    assert plan.samples_per_year >= 1
    assert 0 < plan.run_fraction <= 1
    assert plan.samples_per_period >= plan.samples_per_period_exact


@given(
    chips=st.integers(10, 10**7),
    more=st.integers(1, 10**7),
    p=st.floats(0.05, 0.99),
)
def test_more_chips_or_higher_p_need_more_samples(chips: int, more: int, p: float) -> None:
    base = SamplingParams(flops=1e24, chips=chips, detection_probability=p)
    try:
        small = plan_samples(base)
    except ParameterError:
        return
    assert plan_samples(base.with_chips(chips + more)).samples_per_year_exact > (
        small.samples_per_year_exact
    )
    higher = SamplingParams(flops=1e24, chips=chips, detection_probability=(1 + p) / 2)
    assert plan_samples(higher).samples_per_year_exact > small.samples_per_year_exact
