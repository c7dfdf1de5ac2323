"""Spoof heuristics: cheap checks a Verifier can extend, and keep, in secret.

Proof-of-Learning's guarantees are heuristic (paper §5.1): a spoofer who
knows the checks can aim at them. Because the Prover commits to its
transcript before it learns which checks run (§5, "levers"), the Verifier
may add its own: any callable taking a `HeuristicContext` and returning a
`CheckResult` can be passed in the policy. The built-in ones:

* `loss_on_claimed_data`: the recorded loss at checkpoints equals the loss
  of the checkpoint's weights on that step's committed data.
* `loss_trend`: training loss goes down over the run.
* `update_norms_vs_lr`: the recorded update norms follow the learning-rate
  schedule (no steps much larger or smaller than their neighbours' ratio),
  and checkpoints are no farther apart than their updates add up to.
* `data_in_committed_set`: sampled committed points are dataset points at
  the indices the committed schedule names.
* `step_times_vs_chip_log`: each snapshot's firmware time falls between
  the recorded times of the steps around it.
* `claimed_compute_vs_chip_time`: the run's FLOPs fit in the time its chips
  logged activity for it.

Example::

    >>> secret = (*DEFAULT_HEURISTICS, my_secret_check)  # doctest: +SKIP
    >>> policy = VerificationPolicy(heuristics=secret)  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from computewatch.datacenter import point_hash
from computewatch.verification._results import CheckResult

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from computewatch.chip import LogEntry
    from computewatch.verification._prover import ProverCalls
    from computewatch.verification._reader import TranscriptReader

_LOSS_REL_TOLERANCE = 1e-3  # recorded vs recomputed loss (reduction order only)

__all__ = [
    "DEFAULT_HEURISTICS",
    "Heuristic",
    "HeuristicContext",
    "claimed_compute_vs_chip_time",
    "data_in_committed_set",
    "loss_on_claimed_data",
    "loss_trend",
    "step_times_vs_chip_log",
    "update_norms_vs_lr",
]


@dataclass
class HeuristicContext:
    """What a heuristic may look at.

    The Prover's code ran only in replay workers; what they answered is here
    (or, for a custom heuristic, through `prover`, which runs more jobs).

    Attributes:
        reader: the verified transcript.
        prover: the replay workers' calls (``info``: the model's FLOPs per
            point; ``point(index)``: a fetched raw point, unchecked).
        chip_logs: serial -> that chip's verified log entries.
        rng: the Verifier's secret randomness.
        chip_flops_per_second: peak FLOP/s of one chip (for compute checks).
        clock_slack_s: allowed disagreement between chip and host clocks.
        max_forward_checks: budget of forward passes for loss checks.
        losses: checkpoint step -> the loss a worker computed for its
            weights on that step's committed batch (or why it could not),
            for checkpoints drawn in secret.
        samples: (step, position, dataset index) of committed points drawn in
            secret and fetched from a worker.
    """

    reader: TranscriptReader
    prover: ProverCalls
    chip_logs: dict[str, list[LogEntry]]
    rng: np.random.Generator
    chip_flops_per_second: float
    clock_slack_s: float
    max_forward_checks: int
    losses: dict[int, float | str] = field(default_factory=dict)
    samples: tuple[tuple[int, int, int], ...] = ()


Heuristic = "Callable[[HeuristicContext], CheckResult]"


def loss_on_claimed_data(ctx: HeuristicContext) -> CheckResult:
    """Recorded loss at a checkpoint = loss of its weights on its committed batch."""
    name = "heuristic:loss-on-claimed-data"
    metrics = ctx.reader.metrics
    if not ctx.losses:
        return CheckResult.skipped(name, "no checkpoint with a recorded loss")
    worst = 0.0
    for step, actual in sorted(ctx.losses.items()):
        if isinstance(actual, str):
            return CheckResult.fail(name, f"step {step}: {actual}", step=step)
        recorded = float(metrics[step]["loss"])
        rel = abs(actual - recorded) / max(abs(actual), 1e-12)
        worst = max(worst, rel)
        if not rel <= _LOSS_REL_TOLERANCE:
            return CheckResult.fail(
                name,
                f"step {step}: recorded loss differs from the loss on the committed data "
                f"by {rel:.2%}",
                step=step,
                relative_difference=rel,
            )
    return CheckResult.ok(
        name,
        f"{len(ctx.losses)} checkpoints: recorded loss matches (max rel. diff {worst:.1e})",
        checked=len(ctx.losses),
        max_relative_difference=worst,
    )


def loss_trend(ctx: HeuristicContext) -> CheckResult:
    """The loss of the last tenth of the run is below that of the first tenth."""
    name = "heuristic:loss-trend"
    losses = [float(m["loss"]) for m in ctx.reader.metrics]
    if len(losses) < 10:  # noqa: PLR2004 - too short to have a trend
        return CheckResult.skipped(name, f"only {len(losses)} steps recorded")
    tenth = max(1, len(losses) // 10)
    first, last = statistics.median(losses[:tenth]), statistics.median(losses[-tenth:])
    if not last < first:
        return CheckResult.fail(
            name,
            f"loss did not decrease (first tenth {first:.3g}, last tenth {last:.3g})",
            first=first,
            last=last,
        )
    return CheckResult.ok(name, f"loss fell from {first:.3g} to {last:.3g}", first=first, last=last)


def update_norms_vs_lr(ctx: HeuristicContext) -> CheckResult:
    """Update norms track the learning rate; checkpoints are as far apart as their updates."""
    name = "heuristic:update-norms-vs-lr"
    metrics = ctx.reader.metrics
    ratios = [float(m["update_norm"]) / float(m["lr"]) for m in metrics if float(m["lr"]) > 0]
    if len(ratios) < 3:  # noqa: PLR2004
        return CheckResult.skipped(name, "too few steps with a learning rate")
    med = statistics.median(ratios)
    outliers = [i for i, r in enumerate(ratios) if not (med / 20 <= r <= med * 20)]
    if outliers or not math.isfinite(med) or med <= 0:
        return CheckResult.fail(
            name,
            f"{len(outliers)} steps' update/lr ratio is over 20x from the median {med:.3g}",
            outliers=len(outliers),
            median_ratio=med,
        )
    ckpts = ctx.reader.checkpoint_steps
    for a, b in itertools.pairwise(ckpts):
        distance = float(
            (ctx.reader.checkpoint(b).weights - ctx.reader.checkpoint(a).weights).norm()
        )
        total = sum(float(m["update_norm"]) for m in metrics[a:b])
        if distance > total * 1.01 + 1e-6:
            return CheckResult.fail(
                name,
                f"checkpoints {a}->{b} are {distance:.3g} apart but the recorded updates add "
                f"up to {total:.3g}",
                distance=distance,
                recorded=total,
            )
    return CheckResult.ok(
        name,
        f"update/lr ratios within 20x of {med:.3g}; checkpoint distances consistent",
        median_ratio=med,
    )


def data_in_committed_set(ctx: HeuristicContext) -> CheckResult:
    """Sampled committed points are the dataset's points at the scheduled indices."""
    name = "heuristic:data-in-committed-set"
    reader = ctx.reader
    steps = len(reader.step_records)
    if steps != reader.steps:
        return CheckResult.fail(name, f"{steps} step records for a {reader.steps}-step run")
    checked = 0
    for step, j, index in ctx.samples:
        point = ctx.prover.point(index)
        if point is None:
            return CheckResult.fail(
                name, f"step {step} point {j}: the replay worker returned no data", step=step
            )
        if point_hash(point) != reader.points(step)[j]:
            return CheckResult.fail(
                name,
                f"step {step} point {j} is not the dataset point its schedule names",
                step=step,
            )
        checked += 1
    return CheckResult.ok(
        name, f"{checked} sampled points match the committed dataset", checked=checked
    )


def step_times_vs_chip_log(ctx: HeuristicContext) -> CheckResult:
    """Snapshot times in the chip logs fall within the recorded step times."""
    name = "heuristic:step-times-vs-chip-log"
    metrics = ctx.reader.metrics
    checked = 0
    for serial, entries in ctx.chip_logs.items():
        for e in entries:
            if e.kind != "snapshot" or e.body.get("run_id") != ctx.reader.run_id:
                continue
            step = int(e.body["step"])
            if not 1 <= step <= len(metrics):
                return CheckResult.fail(
                    name, f"chip {serial} seq {e.seq}: step {step} outside the run"
                )
            done = float(metrics[step - 1]["time"])
            nxt = float(metrics[step]["time"]) if step < len(metrics) else math.inf
            t = e.time_us / 1e6
            if not done - ctx.clock_slack_s <= t <= nxt + ctx.clock_slack_s:
                return CheckResult.fail(
                    name,
                    f"chip {serial} seq {e.seq}: snapshot of step {step} at {t:.1f} s is outside "
                    f"the recorded step times [{done:.1f}, {nxt:.1f}] s",
                    serial=serial,
                    seq=e.seq,
                )
            checked += 1
    if not checked:
        return CheckResult.skipped(name, "no chip-logged snapshots of this run")
    return CheckResult.ok(
        name, f"{checked} snapshot times agree with the step times", checked=checked
    )


def claimed_compute_vs_chip_time(ctx: HeuristicContext) -> CheckResult:
    """The run's FLOPs fit in the time its chips were logging it."""
    name = "heuristic:claimed-compute-vs-chip-time"
    reader = ctx.reader
    info = ctx.prover.info
    per_point = info.get("flops_per_point") if info else None
    if not isinstance(per_point, float | int) or isinstance(per_point, bool):
        return CheckResult.fail(
            name, f"replay worker: no FLOPs per point ({ctx.prover.info_failure})"
        )
    flops = float(per_point) * (reader.schedule.batch_size * reader.steps)
    spans = []
    for entries in ctx.chip_logs.values():
        times = [
            e.time_us / 1e6
            for e in entries
            if e.kind in ("precommit", "register", "snapshot")
            and e.body.get("run_id") == reader.run_id
        ]
        if len(times) >= 2:  # noqa: PLR2004
            spans.append(max(times) - min(times))
    if not spans:
        return CheckResult.skipped(name, "no chip log spans this run")
    capacity = ctx.chip_flops_per_second * reader.world_size * max(spans)
    if flops > capacity:
        return CheckResult.fail(
            name,
            f"claimed {flops:.3g} FLOPs exceed what {reader.world_size} chips can do in "
            f"{max(spans):.1f} s ({capacity:.3g})",
            claimed_flops=flops,
            capacity_flops=capacity,
        )
    return CheckResult.ok(
        name,
        f"{flops:.3g} FLOPs fit in {max(spans):.1f} s of {reader.world_size} chips",
        claimed_flops=flops,
        capacity_flops=capacity,
    )


DEFAULT_HEURISTICS: tuple[Callable[[HeuristicContext], CheckResult], ...] = (
    loss_on_claimed_data,
    loss_trend,
    update_norms_vs_lr,
    data_in_committed_set,
    step_times_vs_chip_log,
    claimed_compute_vs_chip_time,
)
