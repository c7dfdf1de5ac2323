"""Table 1, footnote 5 and collusion pooling."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from computewatch.analysis import (
    SamplingParams,
    allocate,
    estimate_inspectors,
    plan_samples,
    pooled_plan,
    table1,
)
from computewatch.errors import ParameterError

# The paper's Table 1, as printed (three significant figures; None is "-").
PAPER_TABLE1 = {
    "GPT-3": (3.64e3, 10, (243, 2.43e4, 2.43e6)),
    "Chinchilla": (6.67e3, 19, (132, 1.33e4, 1.33e6)),
    "PaLM": (2.96e4, 82, (29, 2.98e3, 2.99e5)),
    "Chinchilla-280B": (1.15e5, 314, (7, 771, 7.72e4)),
    "Chinchilla-1T": (1.47e6, 4.03e3, (None, 60, 6.02e3)),
    "Chinchilla-10T": (1.5e8, 4.12e5, (None, None, 58)),
}


def _sig3(x: float) -> float:
    return float(f"{x:.3g}")


def test_all_18_sample_cells_match_the_paper() -> None:
    rows = table1()
    assert [r.model for r in rows] == list(PAPER_TABLE1)
    cells = 0
    for row in rows:
        _, _, expected = PAPER_TABLE1[row.model]
        for got, want in zip(row.samples_per_year.values(), expected, strict=True):
            cells += 1
            if want is None:
                assert got is None, row.model
            else:
                assert isinstance(got, int)
                assert _sig3(got) == want, (row.model, got, want)
    assert cells == 18


def test_chip_columns_match_the_paper() -> None:
    for row in table1():
        chip_days, chips_1yr, _ = PAPER_TABLE1[row.model]
        assert _sig3(row.chips_for_one_year) == chips_1yr
        if row.model == "GPT-3":
            # H/a = 3634.26; the paper prints 3.64e3 (our note in docs/analysis.md)
            assert row.chip_days == pytest.approx(3634.26, rel=1e-5)
        else:
            assert _sig3(row.chip_days) == chip_days


def test_table1_json_contract() -> None:
    row = table1()[4].to_dict()
    assert set(row) == {"model", "flops", "chip_days", "chips_for_one_year", "samples_per_year"}
    assert row["samples_per_year"] == {"1000": None, "100000": 60, "10000000": 6017}


def test_footnote5_inspectors() -> None:
    params = SamplingParams(flops=1e25, chips=10**7, chip_flops_per_day=3e15 * 86_400, run_days=30)
    plan = plan_samples(params)
    assert plan.samples_per_year == pytest.approx(229_000, rel=0.005)  # "about 229,000"
    est = estimate_inspectors(plan.samples_per_year, 1000)
    assert est.inspectors == math.ceil(plan.samples_per_year / 1000) == 230
    assert est.inspectors < 280  # fewer than the IAEA's inspectors
    assert estimate_inspectors(232_000).inspectors == 232  # the paper's rounding
    with pytest.raises(ParameterError, match="chips_per_inspector_per_year"):
        estimate_inspectors(1000, 0)


def test_pooling_colluders_equals_one_big_prover() -> None:
    base = SamplingParams(flops=5.76e23, chips=1)
    pooled = pooled_plan({"A": 600, "B": 300, "C": 100}, base)
    alone = plan_samples(base.with_chips(1000))
    assert pooled.plan.samples_per_year == alone.samples_per_year == 132
    assert sum(pooled.samples_per_year.values()) == 132
    assert pooled.samples_per_year == {"A": 79, "B": 40, "C": 13}
    assert sum(pooled.samples_per_period.values()) == alone.samples_per_period
    with pytest.raises(ParameterError, match="at least one"):
        pooled_plan({}, base)
    with pytest.raises(ParameterError, match="'B'"):
        pooled_plan({"A": 5, "B": 0}, base)


@given(
    total=st.integers(0, 10**6),
    weights=st.dictionaries(st.text(min_size=1, max_size=4), st.integers(1, 10**6), min_size=1),
)
def test_allocate_sums_and_stays_within_one(total: int, weights: dict[str, int]) -> None:
    parts = allocate(total, weights)
    assert sum(parts.values()) == total
    pool = sum(weights.values())
    for name, w in weights.items():
        assert abs(parts[name] - total * w / pool) < 1


def test_allocate_rejects_negative_total() -> None:
    with pytest.raises(ParameterError):
        allocate(-1, {"a": 1})
