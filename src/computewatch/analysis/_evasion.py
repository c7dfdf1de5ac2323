"""Appendix C: evasion by reshaping the run, Figure 2 and Theorem 1.

C.1 (fewer chips for longer). The Verifier sized its sample `s` for a run on
a fraction `b = H / (C a T)` of the chips. A Prover that uses `b/k` of them
for `k` times as long is detected with probability::

    p_d(k) = 1 - (1 - b/k) ** (k s),   s = log(1 - p) / log(1 - b)

Figure 2 plots `p_d(k) / p` for `p = 0.9`, `k` in 1..100 and `b` in (0, 0.2];
it stays above 0.95, so stretching a run barely helps.

C.2 (Theorem 1). With `f` and the longest run time `T` fixed, running on
more chips for a shorter time `t` never lowers detection::

    p_d(t) = 1 - (1 - H / (a C t) * (1 - exp(-f t))) ** s

is non-increasing in `t`. `check_theorem1` checks it on a grid.

Example::

    >>> from computewatch.analysis import figure2
    >>> figure2().min_ratio > 0.95
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from computewatch._validate import positive, positive_int, probability
from computewatch.errors import InfeasibleRunError, ParameterError

__all__ = [
    "Figure2",
    "Theorem1Check",
    "check_theorem1",
    "compressed_detection",
    "figure2",
    "stretched_detection",
]

FloatArray = npt.NDArray[np.float64]


def _fraction(name: str, value: float) -> float:
    b = positive(name, value)
    if b > 1.0:
        msg = f"{name}: expected a fraction of the chips in (0, 1], got {value!r}"
        raise ParameterError(msg)
    return b


def stretched_detection(run_fraction: float, k: float, p: float = 0.9) -> float:
    """`p_d(k)` of Appendix C.1 for one `b = run_fraction` and stretch factor `k`."""
    b = _fraction("run_fraction", run_fraction)
    kk = positive("k", k)
    pp = probability("p", p)
    if kk < 1.0:
        msg = f"k: expected a stretch factor >= 1, got {k!r}"
        raise ParameterError(msg)
    return float(_stretched(np.array([b]), np.array([kk]), pp)[0, 0])


def _stretched(b: FloatArray, k: FloatArray, p: float) -> FloatArray:
    """Vectorised `p_d(k)` over a grid: rows are `k`, columns are `b`."""
    bb = b[np.newaxis, :]
    kk = k[:, np.newaxis]
    with np.errstate(divide="ignore"):
        s = math.log1p(-p) / np.log1p(-bb)  # b = 1 gives s = 0: one sample suffices
    # (1 - b/k) ** (k s), in log space for accuracy at small b
    return -np.expm1(kk * s * np.log1p(-bb / kk))


@dataclass(frozen=True)
class Figure2:
    """The grid of Figure 2: `p_d(k) / p` for each stretch `k` and fraction `b`.

    Attributes:
        p: the detection probability the sample was sized for.
        ks: stretch factors (rows of `ratios`).
        run_fractions: values of `b` (columns of `ratios`).
        ratios: `p_d(k) / p`.
        min_ratio: the smallest ratio on the grid.
        argmin: `(k, b)` where it occurs.
    """

    p: float
    ks: FloatArray = field(repr=False)
    run_fractions: FloatArray = field(repr=False)
    ratios: FloatArray = field(repr=False)
    min_ratio: float
    argmin: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        """Summary for JSON output (the grid itself is in the PNG)."""
        return {
            "p": self.p,
            "k_min": float(self.ks.min()),
            "k_max": float(self.ks.max()),
            "b_min": float(self.run_fractions.min()),
            "b_max": float(self.run_fractions.max()),
            "grid_points": int(self.ratios.size),
            "min_ratio": self.min_ratio,
            "argmin": {"k": self.argmin[0], "b": self.argmin[1]},
        }


def figure2(
    p: float = 0.9,
    *,
    k_max: int = 100,
    b_max: float = 0.2,
    b_points: int = 200,
) -> Figure2:
    """Compute Figure 2's grid: `k` in 1..k_max, `b` in (0, b_max] (evenly spaced)."""
    pp = probability("p", p)
    positive_int("k_max", k_max)
    bm = _fraction("b_max", b_max)
    positive_int("b_points", b_points)
    ks = np.arange(1, k_max + 1, dtype=np.float64)
    bs = np.linspace(bm / b_points, bm, b_points)
    ratios = _stretched(bs, ks, pp) / pp
    i, j = np.unravel_index(int(np.argmin(ratios)), ratios.shape)
    return Figure2(
        p=pp,
        ks=ks,
        run_fractions=bs,
        ratios=ratios,
        min_ratio=float(ratios[i, j]),
        argmin=(float(ks[i]), float(bs[j])),
    )


def compressed_detection(
    run_days: float,
    *,
    flops: float,
    chip_flops_per_day: float,
    chips: int,
    snapshots_per_day: float,
    samples: float,
) -> float:
    """`p_d(t)` of Theorem 1: the run done in `t = run_days` days on `H/(a t)` chips."""
    t = positive("run_days", run_days)
    frac = positive("flops", flops) / (
        positive("chip_flops_per_day", chip_flops_per_day) * positive("chips", chips) * t
    )
    if frac > 1.0:
        msg = (
            f"a run of {flops:.3g} FLOPs in {t:g} days needs {math.ceil(frac * chips)} "
            f"chips but the Prover owns {chips}"
        )
        raise InfeasibleRunError(msg)
    q = frac * -math.expm1(-positive("snapshots_per_day", snapshots_per_day) * t)
    s = positive("samples", samples)
    if q >= 1.0:
        return 1.0
    return -math.expm1(s * math.log1p(-q))


@dataclass(frozen=True, slots=True)
class Theorem1Check:
    """Result of checking Theorem 1 numerically.

    Attributes:
        cases: number of (H, C, f, s) parameter sets checked.
        points: number of run lengths `t` checked per case.
        max_increase: the largest `p_d(t2) - p_d(t1)` for `t2 > t1` seen
            (<= 0 up to rounding when the theorem holds).
        tolerance: rounding allowance for floating point.
    """

    cases: int
    points: int
    max_increase: float
    tolerance: float

    @property
    def passed(self) -> bool:
        """Whether detection never rose with run length on the grid."""
        return self.max_increase <= self.tolerance

    def __bool__(self) -> bool:
        """Truthiness is `passed`."""
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        """Return the check as a JSON-ready mapping."""
        return {
            "passed": self.passed,
            "cases": self.cases,
            "points": self.points,
            "max_increase": self.max_increase,
            "tolerance": self.tolerance,
        }


def check_theorem1(
    *,
    max_days: float = 365.0,
    points: int = 2_000,
    chip_flops_per_day: float = 1e15 * 86_400,
    tolerance: float = 1e-12,
) -> Theorem1Check:
    """Check that `p_d(t)` is non-increasing in `t` over a grid of cases.

    The grid crosses run sizes (GPT-3 to Chinchilla-10T), stockpiles
    (1e3..1e7), snapshot rates (0.01..10 a day) and sample counts (1..1e5);
    `t` runs from the shortest feasible run length to `max_days`.
    """
    tmax = positive("max_days", max_days)
    a = positive("chip_flops_per_day", chip_flops_per_day)
    worst = -math.inf
    cases = 0
    for h in (3.14e23, 2.56e24, 1.27e26, 1.3e28):
        for c in (1e3, 1e5, 1e7):
            t_min = h / (a * c)  # shortest run: all C chips
            if t_min >= tmax:
                continue
            t = np.geomspace(t_min, tmax, points)
            frac = h / (a * c * t)
            for f in (0.01, 0.1, 1.0, 10.0):
                q = frac * -np.expm1(-f * t)
                for s in (1.0, 10.0, 1e3, 1e5):
                    with np.errstate(divide="ignore"):  # q = 1: certain detection
                        pd = -np.expm1(s * np.log1p(-np.minimum(q, 1.0)))
                    worst = max(worst, float(np.max(np.diff(pd))))
                    cases += 1
    return Theorem1Check(cases=cases, points=points, max_increase=worst, tolerance=tolerance)
