"""The corpus and its detection benchmark.

`ATTACKS` lists every attack; `run_benchmark` builds each one for N trials on
real components, runs the real defence and reports the detection rate with a
95 % Clopper-Pearson interval, the compute the Verifier replayed, and the
false-reject rate of the same policy on honest runs.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from scipy.stats import beta

from computewatch.attacks._harness import Attack, HonestRun, failed_checks, run_on_chip
from computewatch.attacks._protocol import (
    FirmwareRollback,
    ForgedLogEntry,
    HiddenSnapshot,
    ReplayedLogEntry,
    ResoldChip,
    UnregisteredChip,
)
from computewatch.attacks._swap import SnapshotSwap
from computewatch.attacks._tolerance import NoiseUnderEpsilon, SmallUpdateSpoof
from computewatch.attacks._training import DataSubstitution, RestartChain
from computewatch.attacks._transcript import (
    FewerStepsClaimed,
    InterpolatedCheckpoints,
    LearningRateLie,
    OmegaAsInit,
    ShardRelocation,
)
from computewatch.datacenter import TranscriptPaths
from computewatch.verification import VerificationPolicy, verify_transcript

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["ATTACKS", "attack_names", "clopper_pearson", "plot_detection", "run_benchmark"]


def _all() -> tuple[Attack, ...]:
    attacks: tuple[object, ...] = (
        OmegaAsInit(),
        RestartChain(),
        DataSubstitution(1.0),
        DataSubstitution(0.5),
        DataSubstitution(0.1),
        DataSubstitution(0.01),
        InterpolatedCheckpoints(),
        LearningRateLie(),
        FewerStepsClaimed(),
        ShardRelocation(),
        NoiseUnderEpsilon(),
        SmallUpdateSpoof(),
        HiddenSnapshot(),
        ForgedLogEntry(),
        ReplayedLogEntry(),
        FirmwareRollback(),
        ResoldChip(),
        UnregisteredChip(),
        SnapshotSwap(fixed=True),
        SnapshotSwap(fixed=False),
    )
    return cast("tuple[Attack, ...]", attacks)


#: Every attack of the corpus, in the order the benchmark runs them.
ATTACKS: tuple[Attack, ...] = _all()


def attack_names() -> list[str]:
    """The names accepted by ``--only``."""
    return [a.name for a in ATTACKS]


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval for k successes in n trials."""
    if n == 0:
        return (0.0, 1.0)
    alpha = 1.0 - confidence
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return (lo, hi)


def _rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = clopper_pearson(k, n)
    return {"count": k, "trials": n, "rate": k / n if n else None, "ci95": [lo, hi]}


def _bases(workdir: Path, trial: int) -> list[HonestRun]:
    return [
        run_on_chip(workdir, name=f"base-{trial}", serial=f"CW-B-{trial}", data_seed=7 + trial),
        run_on_chip(workdir, name=f"other-{trial}", serial=f"CW-C-{trial}", data_seed=50 + trial),
    ]


def run_benchmark(
    trials: int = 3,
    only: Sequence[str] = (),
    *,
    policy: VerificationPolicy | None = None,
    workdir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the selected attacks for `trials` trials each; return the results.

    Raises:
        ValueError: a name in `only` is not an attack of the corpus.
    """
    unknown = sorted(set(only) - set(attack_names()))
    if unknown:
        msg = f"unknown attack(s) {unknown}; known: {attack_names()}"
        raise ValueError(msg)
    chosen = [a for a in ATTACKS if not only or a.name in only]
    policy = policy or VerificationPolicy()
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cw-attacks-", dir=workdir) as tmp:
        root = Path(tmp)
        bases: list[list[HonestRun]] = []
        honest: list[dict[str, Any]] = []
        if any(a.needs_base for a in chosen):
            for t in range(trials):
                say(f"honest base runs, trial {t + 1}/{trials}")
                pair = _bases(root / "bases", t)
                bases.append(pair)
                for run in pair:
                    verdict = verify_transcript(
                        run.run_dir,
                        TranscriptPaths(run.run_dir).report,
                        run.evidence(),
                        policy,
                        np.random.default_rng(t),
                    )
                    honest.append(
                        {
                            "rejected": not verdict.passed,
                            "checks": list(failed_checks(verdict)),
                            "compute_fraction": verdict.compute_fraction,
                        }
                    )
        rows = []
        for attack in chosen:
            results = []
            extra: list[dict[str, Any]] = []
            for t in range(trials):
                say(f"{attack.name}, trial {t + 1}/{trials}")
                attempt = attack.create(root / attack.name, t, bases[t] if bases else [])
                results.append(attack.detect(attempt, policy, np.random.default_rng(t)))
                extra.append({k: v for k, v in attempt.data.items() if isinstance(v, int | float)})
            k = sum(r.detected for r in results)
            fractions = [r.compute_fraction for r in results if r.compute_fraction is not None]
            checks = Counter(c for r in results for c in r.checks)
            by_expected = sum(bool(set(r.checks) & set(attack.expected)) for r in results)
            rows.append(
                {
                    "name": attack.name,
                    "threat": attack.threat,
                    "expected": list(attack.expected),
                    "detection": _rate(k, trials),
                    "caught_by_expected": by_expected,
                    "compute_fraction_mean": float(np.mean(fractions)) if fractions else None,
                    "compute_fraction_max": float(np.max(fractions)) if fractions else None,
                    "checks": dict(sorted(checks.items())),
                    "trials": [
                        r.to_json() | {"data": e} for r, e in zip(results, extra, strict=True)
                    ],
                }
            )
    rejected = sum(h["rejected"] for h in honest)
    fr = [h["compute_fraction"] for h in honest]
    return {
        "trials": trials,
        "policy": policy.to_json(),
        "false_reject": _rate(rejected, len(honest))
        | {
            "compute_fraction_mean": float(np.mean(fr)) if fr else None,
            "runs": honest,
        },
        "attacks": rows,
        "seconds": time.perf_counter() - t0,
    }


def plot_detection(results: dict[str, Any], out: Path) -> None:
    """A bar plot of detection rates with their 95 % intervals."""
    import matplotlib as mpl  # noqa: PLC0415

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows = results["attacks"]
    names = [r["name"] for r in rows]
    rates = [r["detection"]["rate"] for r in rows]
    lo = [r["detection"]["rate"] - r["detection"]["ci95"][0] for r in rows]
    hi = [r["detection"]["ci95"][1] - r["detection"]["rate"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(rows)), 4.5))
    ax.bar(range(len(rows)), rates, yerr=[lo, hi], capsize=3, color="tab:blue")
    ax.axhline(0.99, color="tab:red", linestyle="--", linewidth=1, label="goal 99 %")
    ax.set_xticks(range(len(rows)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("detection rate (95 % CI)")
    fr = results["false_reject"]
    ax.set_title(
        f"{results['trials']} trials each; false rejects {fr['count']}/{fr['trials']} honest runs"
    )
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
