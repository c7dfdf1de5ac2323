"""The Monte Carlo simulator against the closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from computewatch.analysis import (
    Engine,
    SamplingParams,
    Scenario,
    Strategy,
    compressed_detection,
    plan_samples,
    simulate,
)
from computewatch.errors import InfeasibleRunError, ParameterError

SEED = 2026
CHINCHILLA = SamplingParams(flops=5.76e23, chips=1000)

# (name, scenario): at least one per evasion strategy of Appendix C.
CASES = [
    ("baseline-chinchilla-1e3", Scenario(CHINCHILLA)),
    (
        "baseline-footnote5",
        Scenario(
            SamplingParams(flops=1e25, chips=10**7, chip_flops_per_day=3e15 * 86_400, run_days=30)
        ),
    ),
    ("stretch-k10", Scenario(CHINCHILLA, strategy=Strategy.STRETCH, stretch=10)),
    (
        "stretch-k3-palm-1e5",
        Scenario(SamplingParams(flops=2.56e24, chips=10**5), strategy=Strategy.STRETCH, stretch=3),
    ),
    (
        "compress-30d-to-5d",
        Scenario(
            SamplingParams(flops=5.76e23, chips=10_000, run_days=30),
            strategy=Strategy.COMPRESS,
            run_days=5,
        ),
    ),
    (
        "split-straddles-two-periods",
        Scenario(SamplingParams(flops=5.76e23, chips=1000, run_days=30), strategy=Strategy.SPLIT),
    ),
    ("collude-5-provers", Scenario(CHINCHILLA, strategy=Strategy.COLLUDE, provers=5)),
]


@pytest.mark.parametrize(("name", "scenario"), CASES, ids=[c[0] for c in CASES])
def test_simulation_agrees_with_closed_form(name: str, scenario: Scenario) -> None:
    res = simulate(scenario, 40_000, rng=np.random.default_rng(SEED))
    assert res.agrees, (name, res.estimate, res.ci_low, res.ci_high, res.closed_form)
    assert res.ci_low <= res.exact <= res.ci_high
    # sampling without replacement differs from the paper's formula only slightly
    assert abs(res.exact - res.closed_form) < 0.01


def test_baseline_meets_the_plans_target() -> None:
    res = simulate(Scenario(CHINCHILLA), 20_000, rng=np.random.default_rng(SEED))
    assert res.closed_form >= 0.9
    assert res.ci_high >= 0.9


def test_compress_closed_form_is_theorem1() -> None:
    params = SamplingParams(flops=5.76e23, chips=10_000, run_days=30)
    pl = Scenario(params, strategy=Strategy.COMPRESS, run_days=5).placement()
    s = plan_samples(params).samples_per_period
    assert pl.windows == ((0, 5.0),)
    assert pl.closed_form() == pytest.approx(
        compressed_detection(
            5,
            flops=5.76e23,
            chip_flops_per_day=params.chip_flops_per_day,
            chips=10_000,
            snapshots_per_day=0.1,
            samples=s,
        ),
        rel=1e-3,  # integer chips vs H/(a t)
    )


def test_split_straddles_two_periods() -> None:
    params = SamplingParams(flops=5.76e23, chips=1000, run_days=30)
    pl = Scenario(params, strategy=Strategy.SPLIT).placement()
    assert pl.windows == ((0, 15.0), (1, 15.0))
    aligned = Scenario(params).placement()
    assert aligned.windows == ((0, 30.0),)


def test_simulator_detects_a_wrong_model() -> None:
    # The closed form for the planned s must fall outside the CI of a regime
    # that inspects half as many chips: the comparison is able to fail.
    planned = Scenario(CHINCHILLA)
    halved = Scenario(CHINCHILLA, samples_per_period=planned.placement().samples[0] // 2)
    res = simulate(halved, 40_000, rng=np.random.default_rng(SEED))
    assert not (res.ci_low <= planned.placement().closed_form() <= res.ci_high)


def test_chip_engine_matches_aggregate_engine() -> None:
    sc = Scenario(SamplingParams(flops=5.76e23, chips=2000, run_days=60), strategy=Strategy.SPLIT)
    chip = simulate(sc, 3000, rng=np.random.default_rng(SEED), engine=Engine.CHIP)
    agg = simulate(sc, 3000, rng=np.random.default_rng(SEED + 1))
    assert chip.agrees
    # two-proportion z-test at 99.9%
    pooled = (chip.detections + agg.detections) / (chip.trials + agg.trials)
    se = math.sqrt(pooled * (1 - pooled) * (1 / chip.trials + 1 / agg.trials))
    assert abs(chip.estimate - agg.estimate) < 3.3 * se


@pytest.mark.parametrize("engine", list(Engine))
def test_same_seed_same_result_and_seed_recorded(engine: Engine) -> None:
    sc = Scenario(CHINCHILLA, strategy=Strategy.COLLUDE, provers=3)
    a = simulate(sc, 300, rng=np.random.default_rng(42), engine=engine)
    b = simulate(sc, 300, rng=np.random.default_rng(42), engine=engine)
    assert a.detections == b.detections
    assert a.seed == 42
    doc = a.to_dict()
    assert doc["seed"] == 42
    assert {"estimate", "closed_form", "exact", "ci_low", "ci_high"} <= set(doc)
    assert doc["engine"] == engine.value


def test_fresh_seed_is_recorded_when_no_rng_given() -> None:
    res = simulate(Scenario(CHINCHILLA), 10)
    assert isinstance(res.seed, int)
    again = simulate(Scenario(CHINCHILLA), 10, rng=np.random.default_rng(res.seed))
    assert again.detections == res.detections


def test_progress_reports_completion() -> None:
    seen: list[tuple[int, int]] = []
    simulate(
        Scenario(CHINCHILLA),
        1000,
        rng=np.random.default_rng(1),
        engine=Engine.CHIP,
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen[-1] == (1000, 1000)
    assert len(seen) >= 10


def test_a_year_of_ten_million_chips_is_fast_enough_to_run_here() -> None:
    params = SamplingParams(flops=1.27e26, chips=10**7)
    res = simulate(Scenario(params), 100_000, rng=np.random.default_rng(SEED))
    assert res.chip_periods == 10**7 * 13 * 100_000
    assert res.agrees


def test_bad_scenarios() -> None:
    with pytest.raises(ParameterError, match="stretch"):
        Scenario(CHINCHILLA, strategy=Strategy.STRETCH, stretch=0.5)
    with pytest.raises(ParameterError, match="run_days"):
        Scenario(CHINCHILLA, strategy=Strategy.COMPRESS, run_days=400)
    with pytest.raises(ParameterError, match="offset_days"):
        Scenario(CHINCHILLA, offset_days=-1)
    with pytest.raises(ParameterError, match="provers"):
        Scenario(SamplingParams(flops=1e20, chips=3), strategy=Strategy.COLLUDE, provers=4)
    with pytest.raises(ParameterError, match="strategy"):
        Scenario(CHINCHILLA, strategy="sideways")  # type: ignore[arg-type]
    with pytest.raises(InfeasibleRunError, match="compress"):
        Scenario(CHINCHILLA, strategy=Strategy.COMPRESS, run_days=1).placement()
    with pytest.raises(ParameterError, match="exceeds the stockpile"):
        Scenario(CHINCHILLA, samples_per_period=5000).placement()
    with pytest.raises(ParameterError, match="trials"):
        simulate(Scenario(CHINCHILLA), 0)
    with pytest.raises(ParameterError, match="engine"):
        simulate(Scenario(CHINCHILLA), 10, engine="gpu")  # type: ignore[arg-type]


def test_chip_engine_refuses_runs_too_big_to_enumerate() -> None:
    params = SamplingParams(flops=1.3e28, chips=10**7)
    with pytest.raises(ParameterError, match="aggregate"):
        simulate(Scenario(params), 1, engine=Engine.CHIP)
