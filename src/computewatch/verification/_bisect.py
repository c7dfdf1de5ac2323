"""Disputes by bisection against the per-step commitments (paper §5 footnote; ADR 0034).

A transcript recorded since ADR 0034 commits to the state (weights and
optimizer state) after every step (`MetricsRecord.state`). When a replay of
steps ``[a, b)`` disagrees with the transcript, the two chains of state
digests (the replay's, the Prover's) agree after `a` steps and disagree
after `b`. `bisect_first_bad` finds, in ``ceil(log2(b - a))`` rounds of
one comparison each, a step ``s`` such that the states agree after ``s``
steps and not after ``s + 1``: the step whose committed outcome is wrong.
A third party confirms it by replaying that one step from the agreed state
(`confirm_step`). `localize` does this for a failed segment and
`checkpoint_commitments` checks every checkpoint against the commitment
at its step (no replay at all).

Example::

    >>> bad = 7_321
    >>> found = bisect_first_bad(0, 10_000, lambda n: n <= bad)
    >>> found.step, found.rounds
    (7321, 14)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.verification._results import CheckResult

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import torch

    from computewatch.datacenter import Trainer
    from computewatch.verification._reader import TranscriptReader

__all__ = [
    "Localization",
    "bisect_first_bad",
    "checkpoint_commitments",
    "committed_states",
    "confirm_step",
    "localize",
]


@dataclass(frozen=True, slots=True)
class Localization:
    """Where two chains of states part.

    Attributes:
        step: the 0-based optimizer step after which they first disagree
            (they agree after ``step`` steps, not after ``step + 1``).
        rounds: comparisons made.
    """

    step: int
    rounds: int


def bisect_first_bad(lo: int, hi: int, agree: Callable[[int], bool]) -> Localization:
    """Bisect step counts ``(lo, hi]``: states agree after `lo` steps, disagree after `hi`.

    `agree(n)` compares the two parties' states after `n` steps (one
    round each). Returns the step from an agreed state to a disputed one.
    """
    if hi <= lo:
        msg = f"bisection: expected lo < hi, got {lo} and {hi}"
        raise ValueError(msg)
    rounds = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        rounds += 1
        if agree(mid):
            lo = mid
        else:
            hi = mid
    return Localization(step=lo, rounds=rounds)


def committed_states(reader: TranscriptReader) -> dict[int, str]:
    """Step count -> the committed state digest after it (empty for older transcripts).

    Built once per reader (one pass over its metrics) and shared by every
    check that asks: callers read it and never change it.
    """
    cached: dict[int, str] | None = reader.__dict__.get("_committed_states")
    if cached is None:
        cached = {
            int(m["step"]) + 1: str(m["state"])
            for m in reader.metrics
            if m.get("state") is not None
        }
        reader.__dict__["_committed_states"] = cached
    return cached


def confirm_step(trainer: Trainer, step: int, batch: torch.Tensor, committed: str) -> bool:
    """One step of replay from the agreed state: True if its outcome is not `committed`.

    `trainer` holds the state after `step` steps (the Prover regenerates
    it; its digest must equal the commitment before `step`).
    """
    trainer.step(step, batch)
    return str(trainer.state_digest()) != committed


def localize(start: int, stop: int, replayed: Sequence[str], committed: dict[int, str]) -> str:
    """The first bad step of a failed replay of ``[start, stop)``, as a sentence.

    `replayed` are the replay's state digests after steps ``start+1 ..
    stop``. Empty when the transcript has no per-step commitments.
    """
    counts = range(start + 1, stop + 1)
    if len(replayed) != len(counts) or any(n not in committed for n in counts):
        return ""
    mine = dict(zip(counts, replayed, strict=True))
    if mine[stop] == committed[stop]:
        return (
            f"; the replay matches every step commitment: checkpoint {stop} differs "
            f"from the state committed after step {stop - 1}"
        )

    def agree(n: int) -> bool:
        return n == start or mine[n] == committed[n]

    found = bisect_first_bad(start, stop, agree)
    return (
        f"; first bad step {found.step} (agreed after {found.step} steps, "
        f"not after {found.step + 1}; {found.rounds} rounds)"
    )


def checkpoint_commitments(reader: TranscriptReader) -> CheckResult:
    """Every checkpoint's state digest equals the commitment at its step (hashes only)."""
    from computewatch.datacenter import state_digest  # noqa: PLC0415

    committed = committed_states(reader)
    if not committed:
        return CheckResult.skipped(
            "step-commitments", "the transcript has no per-step commitments (before ADR 0034)"
        )
    slices = reader.commit_slices
    steps = [s for s in reader.checkpoint_steps if s > 0]
    for step in steps:
        ckpt = reader.checkpoint(step)
        got = str(state_digest(ckpt.weights, ckpt.optimizer_state, slices))
        want: Any = committed.get(step)
        if got != want:
            return CheckResult.fail(
                "step-commitments",
                f"checkpoint {step}: state digest {got[:19]}… differs from the one "
                f"committed after step {step - 1} ({str(want)[:19]}…)",
                step=step,
            )
    return CheckResult.ok(
        "step-commitments",
        f"{len(steps)} checkpoints match the committed state after their steps",
    )
