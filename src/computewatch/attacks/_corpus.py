"""The corpus and its detection benchmark.

`ATTACKS` lists every attack; `run_benchmark` builds each one for N trials on
real components, runs the real defence and reports the detection rate with a
95 % Clopper-Pearson interval, the compute the Verifier replayed, and the
false-reject rate of the same policy on honest runs.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from scipy.stats import beta

from computewatch.attacks._adversarial import AdversarialExamples
from computewatch.attacks._benchmark import BenchmarkInjection
from computewatch.attacks._chip_reports import CHIP_EVIDENCE_ATTACKS
from computewatch.attacks._harness import (
    LONG,
    SCALE,
    Attack,
    Detection,
    HonestRun,
    Scale,
    failed_checks,
    run_on_chip,
)
from computewatch.attacks._hostile import HostileProgram
from computewatch.attacks._location import (
    LocationDelayedAnswer,
    LocationOtherChipKey,
    LocationRelay,
    LocationReplayedAnswer,
)
from computewatch.attacks._location_registry import LocationForgedCheck
from computewatch.attacks._protocol import (
    FirmwareRollback,
    ForgedLogEntry,
    HiddenSnapshot,
    ReplayedLogEntry,
    ResoldChip,
    UnregisteredChip,
)
from computewatch.attacks._splitview import LogRollback, SplitView
from computewatch.attacks._step_audit import (
    ConcentratedSubstitution,
    InIntervalReordering,
    SingleStepSubstitution,
)
from computewatch.attacks._swap import SnapshotSwap
from computewatch.attacks._tolerance import NoiseUnderEpsilon, SmallUpdateSpoof
from computewatch.attacks._training import DataSubstitution, RestartChain
from computewatch.attacks._transcript import (
    CheckpointRedirect,
    FewerStepsClaimed,
    FinalCheckpointSwap,
    InterpolatedCheckpoints,
    LearningRateLie,
    OmegaAsInit,
    ShardRelocation,
)
from computewatch.attacks._verdicts import VerdictSwap
from computewatch.datacenter import TranscriptPaths
from computewatch.verification import VerificationPolicy, prover_challenge, verify_transcript

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "ATTACKS",
    "LONG_POLICY",
    "SCALES",
    "attack_names",
    "campaign_setup",
    "clopper_pearson",
    "default_policy",
    "false_reject_rate",
    "honest_trials",
    "markdown_table",
    "one_sided_bounds",
    "plot_detection",
    "run_benchmark",
    "run_scales",
    "summarize_false_rejects",
]


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
        CheckpointRedirect(),
        NoiseUnderEpsilon(),
        SmallUpdateSpoof(),
        FinalCheckpointSwap(),  # issue 15: the last interval is always replayed
        ConcentratedSubstitution(),  # issue 15: step audits, wherever the lie sits
        InIntervalReordering(),
        SingleStepSubstitution(),  # δ3: below what sampling sees (rate ~ audit fraction)
        AdversarialExamples(),
        HiddenSnapshot(),
        ForgedLogEntry(),
        ReplayedLogEntry(),
        FirmwareRollback(),
        ResoldChip(),
        UnregisteredChip(),
        SnapshotSwap(fixed=True),
        SnapshotSwap(fixed=False),
        *CHIP_EVIDENCE_ATTACKS,  # issue 16: chip evidence that trusts nothing outside the chip
        SplitView(),
        LogRollback(),
        LocationRelay(),
        LocationDelayedAnswer(),
        LocationReplayedAnswer(),
        LocationOtherChipKey(),
        LocationForgedCheck(),
        HostileProgram("print-verdict"),
        HostileProgram("patch-verifier"),
        HostileProgram("read-outside"),
        HostileProgram("reach-zygote"),
        VerdictSwap(),
        BenchmarkInjection(),  # issue 17: only the rule file's benchmarks are scored
    )
    return cast("tuple[Attack, ...]", attacks)


#: Every attack of the corpus, in the order the benchmark runs them.
ATTACKS: tuple[Attack, ...] = _all()


#: The scales the benchmark runs at, by name (``--scale``).
SCALES: dict[str, Scale] = {SCALE.name: SCALE, LONG.name: LONG}


#: The long scale's policy (`default_policy`): 5 % cap, boundary, snapshots, step audits.
LONG_POLICY: dict[str, Any] = {
    "max_compute": 0.05,
    "max_replayed_snapshots": 2,
    "budget": 0.02,
    "audit_fraction": 0.04,
    "boundary_steps": 4,
    "linkage_steps": 1,
}


def campaign_setup() -> dict[str, Any]:
    """What a long-scale trial depends on besides its number (`LONG`, `LONG_POLICY`).

    Campaigns store it with each trial and count only the current setup's.
    """
    return {
        "scale": [LONG.steps, LONG.checkpoint_every, LONG.snapshot_rate_per_day],
        "policy": dict(sorted(LONG_POLICY.items())),
    }


def default_policy(scale: Scale) -> VerificationPolicy:
    """The Verifier's policy the benchmark uses at `scale`.

    At the default scale the runs are too short for 5 % of their compute to
    replay even one segment, so the policy is the default (no total cap: every
    drawn snapshot and the PoL segment are replayed). At the long scale the
    policy caps everything replayed at 5 % of training: the first and last
    4 steps (boundary windows), two snapshots each replayed from the
    committed state one step before it (ADR 0044), then step audits at
    fraction 0.04 (ADR 0037) in place of random segments (``budget`` 0.02
    is less than one 240-step interval). A lie that fills one interval is
    then missed with probability ``0.96 ** 240``, about 6e-5.
    """
    if scale == SCALE:
        return VerificationPolicy()
    return VerificationPolicy(**LONG_POLICY)


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


def one_sided_bounds(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact one-sided bounds: (lower bound, upper bound), each at `confidence`.

    "Detected at >= 99 %" is shown when the lower bound reaches 0.99 (with no
    miss that takes 299 trials); "<= 1 % false rejects" when the upper bound
    of the reject rate is at most 0.01.
    """
    lo, _ = clopper_pearson(k, n, 1 - 2 * (1 - confidence))
    _, hi = clopper_pearson(k, n, 1 - 2 * (1 - confidence))
    return (lo, hi)


def _rate(k: int, n: int) -> dict[str, Any]:
    lo, hi = clopper_pearson(k, n)
    lower, upper = one_sided_bounds(k, n)
    return {
        "count": k,
        "trials": n,
        "rate": k / n if n else None,
        "ci95": [lo, hi],
        "lower95": lower,
        "upper95": upper,
    }


def _bases(workdir: Path, trial: int, scale: Scale = SCALE) -> list[HonestRun]:
    return [
        run_on_chip(
            workdir, name=f"base-{trial}", serial=f"CW-B-{trial}", scale=scale, data_seed=7 + trial
        ),
        run_on_chip(
            workdir,
            name=f"other-{trial}",
            serial=f"CW-C-{trial}",
            scale=scale,
            data_seed=50 + trial,
        ),
    ]


def run_benchmark(
    trials: int = 3,
    only: Sequence[str] = (),
    *,
    scale: Scale = SCALE,
    policy: VerificationPolicy | None = None,
    workdir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the selected attacks for `trials` trials each at `scale`; return the results.

    Raises:
        ValueError: a name in `only` is not an attack of the corpus.
    """
    unknown = sorted(set(only) - set(attack_names()))
    if unknown:
        msg = f"unknown attack(s) {unknown}; known: {attack_names()}"
        raise ValueError(msg)
    chosen = [a for a in ATTACKS if not only or a.name in only]
    policy = policy or default_policy(scale)
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    outcomes: dict[str, list[tuple[Detection, dict[str, float]]]] = {a.name: [] for a in chosen}
    honest: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cw-attacks-", dir=workdir) as tmp:
        # trial-major, each trial's files removed after it: long runs are big
        for t in range(trials):
            trial_root = Path(tmp) / f"trial-{t}"
            bases: list[HonestRun] = []
            if any(a.needs_base for a in chosen):
                say(f"honest base runs, trial {t + 1}/{trials}")
                bases = _bases(trial_root / "bases", t, scale)
                honest.extend(_verify_honest(run, policy, t) for run in bases)
            for attack in chosen:
                say(f"{attack.name}, trial {t + 1}/{trials}")
                attempt = attack.create(trial_root / attack.name, t, bases, scale)
                detection = attack.detect(attempt, policy, np.random.default_rng(t))
                numbers = {
                    k: float(v) for k, v in attempt.data.items() if isinstance(v, int | float)
                }
                outcomes[attack.name].append((detection, numbers))
            shutil.rmtree(trial_root, ignore_errors=True)
    rows = [_row(attack, outcomes[attack.name]) for attack in chosen]
    rejected = sum(h["rejected"] for h in honest)
    fr = [h["compute_fraction"] for h in honest]
    return {
        "trials": trials,
        "scale": {
            "name": scale.name,
            "steps": scale.steps,
            "checkpoint_every": scale.checkpoint_every,
            "snapshot_rate_per_day": scale.snapshot_rate_per_day,
        },
        "policy": policy.to_json(),
        "false_reject": _rate(rejected, len(honest))
        | {
            "compute_fraction_mean": float(np.mean(fr)) if fr else None,
            "compute_fraction_max": float(np.max(fr)) if fr else None,
            "rejected_runs": [h for h in honest if h["rejected"]],
        },
        "attacks": rows,
        "seconds": time.perf_counter() - t0,
    }


def _scale_job(name: str, trials: int, only: tuple[str, ...]) -> dict[str, Any]:
    return run_benchmark(trials, only, scale=SCALES[name])


def run_scales(plan: dict[str, tuple[int, tuple[str, ...]]]) -> dict[str, Any]:
    """Run the benchmark at several scales at once, one process each.

    `plan` maps a scale's name (`SCALES`) to its trials and ``only`` list.
    """
    import multiprocessing as mp  # noqa: PLC0415

    unknown = sorted(set(plan) - set(SCALES))
    if unknown:
        msg = f"unknown scale(s) {unknown}; known: {sorted(SCALES)}"
        raise ValueError(msg)
    with mp.get_context("spawn").Pool(len(plan)) as pool:
        pending = {
            name: pool.apply_async(_scale_job, (name, trials, only))
            for name, (trials, only) in plan.items()
        }
        return {name: job.get() for name, job in pending.items()}


def _honest_job(scale_name: str, trials: list[int]) -> list[dict[str, Any]]:
    scale = SCALES[scale_name]
    policy = default_policy(scale)
    out = []
    with tempfile.TemporaryDirectory(prefix="cw-honest-") as tmp:
        for i in trials:
            run = run_on_chip(
                Path(tmp), name=f"h-{i}", serial=f"CW-H-{i}", scale=scale, data_seed=10_000 + i
            )
            out.append(_verify_honest(run, policy, i))
            shutil.rmtree(Path(tmp) / f"h-{i}", ignore_errors=True)
    return out


def honest_trials(
    trials: Sequence[int], scale: Scale = SCALE, processes: int = 2
) -> list[dict[str, Any]]:
    """Record and verify honest run `i` for each `i` in `trials` (its own data order and chip).

    Trial `i` is the same run wherever it is computed (data seed ``10000 + i``,
    chip ``CW-H-i``, segment seed `i`), so a campaign can be split and resumed.
    Uses `default_policy(scale)`; trials are split over `processes` processes
    (one runs them here, in this process).
    """
    import multiprocessing as mp  # noqa: PLC0415

    if processes == 1:
        return _honest_job(scale.name, list(trials))
    parts = [list(trials[p::processes]) for p in range(processes)]
    with mp.get_context("spawn").Pool(processes) as pool:
        done = pool.starmap(_honest_job, [(scale.name, part) for part in parts if part])
    return sorted((h for part in done for h in part), key=lambda h: int(h["trial"]))


def summarize_false_rejects(honest: Sequence[dict[str, Any]], scale: Scale) -> dict[str, Any]:
    """The false-reject rate (with its 95 % bounds) over honest trial records."""
    fr = [h["compute_fraction"] for h in honest]
    return {
        "scale": scale.name,
        "policy": default_policy(scale).to_json(),
        "false_reject": _rate(sum(bool(h["rejected"]) for h in honest), len(honest))
        | {
            "compute_fraction_mean": float(np.mean(fr)) if fr else None,
            "compute_fraction_max": float(np.max(fr)) if fr else None,
            "rejected_runs": [h for h in honest if h["rejected"]],
        },
    }


def false_reject_rate(runs: int, scale: Scale = SCALE, processes: int = 2) -> dict[str, Any]:
    """Verify `runs` honest runs (trials ``0..runs-1``, see `honest_trials`) at `scale`."""
    t0 = time.perf_counter()
    honest = honest_trials(range(runs), scale, processes)
    return summarize_false_rejects(honest, scale) | {"seconds": time.perf_counter() - t0}


def _verify_honest(run: HonestRun, policy: VerificationPolicy, trial: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cw-answers-") as answers:
        verdict = verify_transcript(
            run.run_dir,
            TranscriptPaths(run.run_dir).report,
            run.evidence(),
            policy,
            np.random.default_rng(trial),
            challenge=prover_challenge(run.run_dir, answers),  # the honest Prover answers
        )
    return {
        "trial": trial,
        "rejected": not verdict.passed,
        "checks": list(failed_checks(verdict)),
        "compute_fraction": verdict.compute_fraction,
    }


def _row(attack: Attack, results: list[tuple[Detection, dict[str, float]]]) -> dict[str, Any]:
    """One attack's summary: rate, interval, compute, checks; the misses in full."""
    n = len(results)
    k = sum(d.detected for d, _ in results)
    fractions = [d.compute_fraction for d, _ in results if d.compute_fraction is not None]
    checks = Counter(c for d, _ in results for c in d.checks)
    keys = sorted({key for _, numbers in results for key in numbers})
    summary = {}
    for key in keys:
        values = [numbers[key] for _, numbers in results if key in numbers]
        summary[key] = {
            "min": float(np.min(values)),
            "mean": float(np.mean(values)),
            "max": float(np.max(values)),
        }
    return {
        "name": attack.name,
        "threat": attack.threat,
        "expected": list(attack.expected),
        "detection": _rate(k, n),
        "caught_by_expected": sum(bool(set(d.checks) & set(attack.expected)) for d, _ in results),
        "compute_fraction_mean": float(np.mean(fractions)) if fractions else None,
        "compute_fraction_max": float(np.max(fractions)) if fractions else None,
        "checks": dict(sorted(checks.items())),
        "data": summary,
        "missed": [
            {"trial": i} | d.to_json() | {"data": numbers}
            for i, (d, numbers) in enumerate(results)
            if not d.detected
        ],
    }


def markdown_table(results: dict[str, Any]) -> str:
    """The results of one scale as a Markdown table (for the README)."""
    header = "attack | detected | 95% CI | 95% lower bound | by expected check | replayed"
    lines = [f"| {header} (mean / max) | checks that failed |", "|---|---|---|---|---|---|---|"]
    for row in results["attacks"]:
        d = row["detection"]
        lo, hi = d["ci95"]
        mean, top = row["compute_fraction_mean"], row["compute_fraction_max"]
        replayed = "-" if mean is None else f"{mean:.1%} / {top:.1%}"
        checks = ", ".join(f"{k} {v}" for k, v in row["checks"].items()) or "-"
        lower, _ = one_sided_bounds(d["count"], d["trials"])
        lines.append(
            f"| {row['name']} | {d['count']}/{d['trials']} | [{lo:.3f}, {hi:.3f}] | {lower:.4f} "
            f"| {row['caught_by_expected']}/{d['trials']} | {replayed} | {checks} |"
        )
    fr = results["false_reject"]
    lo, hi = fr["ci95"]
    mean = fr["compute_fraction_mean"]
    lines.append("")
    if not fr["trials"]:
        lines.append("No honest runs (none of these attacks needed one).")
        return "\n".join(lines)
    _, upper = one_sided_bounds(fr["count"], fr["trials"])
    lines.append(
        f"Honest runs: {fr['count']}/{fr['trials']} falsely rejected (95% CI [{lo:.3f}, {hi:.3f}],"
        f" one-sided 95% upper bound {upper:.4f})"
        + ("" if mean is None else f", {mean:.1%} of training replayed on average")
        + "."
    )
    return "\n".join(lines)


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
    scale = results.get("scale", {}).get("name", "")
    replay = fr.get("compute_fraction_mean")
    ax.set_title(
        f"{scale} runs, {results['trials']} trials each; false rejects "
        f"{fr['count']}/{fr['trials']} honest runs"
        + ("" if replay is None else f"; {replay:.1%} of training replayed (honest, mean)"),
        fontsize=10,
    )
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
