"""Simulator throughput in chip-periods per second.

Scenario: footnote 5 stretched to a year: 10^7 chips, a Chinchilla-1T run
(H = 1.27e26) on the fewest H100s for 365 days, f = 0.1, T_m = 30, p = 0.9.
A chip-period is one chip monitored for one period in one trial.

Baseline (same process): a naive simulation that draws a Poisson snapshot
count for *every* chip of the stockpile in every period and then looks up
the Verifier's sample in it. Ratios are engine / naive throughput.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from computewatch.analysis import Engine, SamplingParams, Scenario, simulate


def _naive(scenario: Scenario, trials: int, rng: np.random.Generator) -> int:
    pl = scenario.placement()
    (big_c,), (c,), (s,) = pl.stockpiles, pl.run_chips, pl.samples
    detections = 0
    for _ in range(trials):
        caught = False
        for _, w in pl.windows:
            counts = rng.poisson(pl.snapshots_per_day * w, size=big_c)  # every chip
            in_run = np.zeros(big_c, dtype=bool)
            in_run[rng.choice(big_c, size=c, replace=False)] = True
            inspected = rng.choice(big_c, size=s, replace=False)
            caught |= bool(np.any(in_run[inspected] & (counts[inspected] > 0)))
        detections += caught
    return detections


def _rate(fn: Any, chip_periods: int, repeats: int = 3) -> tuple[float, float]:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return chip_periods / best, best


def run(*, quick: bool) -> dict[str, Any]:
    """Measure the engines against the naive baseline."""
    params = SamplingParams(flops=1.27e26, chips=10**7)
    sc = Scenario(params)
    periods = len(sc.placement().windows)
    per_trial = params.chips * periods
    n_naive = 1
    n_chip = 20 if quick else 200
    n_agg = 100_000 if quick else 1_000_000
    rng = np.random.default_rng(0)
    naive_rate, naive_s = _rate(lambda: _naive(sc, n_naive, rng), per_trial * n_naive, 1)
    chip_rate, chip_s = _rate(
        lambda: simulate(sc, n_chip, rng=rng, engine=Engine.CHIP), per_trial * n_chip
    )
    agg_rate, agg_s = _rate(lambda: simulate(sc, n_agg, rng=rng), per_trial * n_agg)
    year = simulate(sc, n_agg, rng=np.random.default_rng(1))
    return {
        "scenario": "10^7 chips, Chinchilla-1T on min chips for 365 d, f=0.1, T_m=30, p=0.9",
        "periods": periods,
        "chip_periods_per_trial": per_trial,
        "naive": {"trials": n_naive, "seconds": naive_s, "chip_periods_per_s": naive_rate},
        "chip_engine": {
            "trials": n_chip,
            "seconds": chip_s,
            "chip_periods_per_s": chip_rate,
            "ratio_to_naive": chip_rate / naive_rate,
        },
        "aggregate_engine": {
            "trials": n_agg,
            "seconds": agg_s,
            "chip_periods_per_s": agg_rate,
            "ratio_to_naive": agg_rate / naive_rate,
        },
        "one_year_of_1e7_chips": {
            "trials": n_agg,
            "seconds": year.elapsed_s,
            "estimate": year.estimate,
            "closed_form": year.closed_form,
            "agrees": year.agrees,
        },
    }
