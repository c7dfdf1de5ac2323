"""Replays that start from the Prover's committed states, not only from checkpoints (ADR 0044).

With per-step commitments the Verifier can start a replay at any step: the
Prover answers with its state there (a challenge, as for a step audit), the
answer is checked against the commitment, and a replay worker starts from
it. Two checks then stop scaling with the Prover's checkpoint interval:

- **Boundary windows** (policy ``boundary_steps`` = K): the first K steps
  from W_0 and the last K steps up to the deployed weights are replayed in
  every verification, each window at most its checkpoint interval. A lab
  that checkpoints every few thousand steps no longer makes the Verifier
  replay two whole intervals, and a change to the final weights or to the
  steps just before them still never passes.
- **Short snapshot linkage** (policy ``linkage_steps`` = L): a drawn chip
  snapshot at step s is replayed from the committed state after
  ``max(checkpoint, s - L)`` steps. The replay must reproduce the chip's ω
  bit for bit and the commitments it crosses, so the chip is tied to the
  committed chain at s; the chain itself is what the step audits sample.

Both need exact replay, per-step commitments and a Prover to challenge
(`stepwise`); without them the Verifier replays whole intervals as before.

Example::

    >>> clip_windows([(0, 300), (300, 600), (600, 900)], 8)
    [(892, 900), (0, 8)]
    >>> clip_windows([(0, 10)], 8)
    [(0, 10)]
    >>> clip_windows([(0, 300), (300, 600)], None)
    [(300, 600), (0, 300)]
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from computewatch.verification._audit import ask_states
from computewatch.verification._bisect import committed_states, localize
from computewatch.verification._results import CheckResult

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import torch

    from computewatch.verification._replay import Tolerance

__all__ = [
    "boundary_windows",
    "clip_windows",
    "compare",
    "judge_window",
    "off_chain",
    "snapshot_start",
    "stage_starts",
    "stepwise",
]


def stepwise(session: Any) -> bool:
    """Whether replays may start from committed states: exact, committed per step, a Prover."""
    return (
        session.challenge is not None
        and session._tolerance().exact  # noqa: SLF001 - the session's own tolerance
        and bool(committed_states(session.reader))
    )


def clip_windows(intervals: list[tuple[int, int]], steps: int | None) -> list[tuple[int, int]]:
    """The last and the first interval, each cut to its `steps` steps at the run's ends.

    The last first: under a cap too tight for both, the deployed weights
    win. One window when they meet.
    """
    first, last = intervals[0], intervals[-1]
    if steps is not None:
        first = (first[0], min(first[1], first[0] + steps))
        last = (max(last[0], last[1] - steps), last[1])
    if first[1] >= last[0] and len(intervals) == 1:
        return [intervals[0]]
    return [last] if first == last else [last, first]


def boundary_windows(session: Any) -> list[tuple[int, int]]:
    """The boundary replays of `session`: windows under ``boundary_steps``, else intervals.

    A policy with ``budget=0`` asked for no segment replays at all, and
    gets none.
    """
    intervals = list(itertools.pairwise(session.reader.checkpoint_steps))
    if not intervals or session.policy.budget <= 0:
        return []
    steps = session.policy.boundary_steps if stepwise(session) else None
    return clip_windows(intervals, steps)


def snapshot_start(session: Any, step: int) -> int:
    """Where the replay of a snapshot at `step` starts (its checkpoint, or nearer)."""
    base = int(max(c for c in session.reader.checkpoint_steps if c <= step))
    linkage = session.policy.linkage_steps
    if linkage is None or not stepwise(session):
        return base
    return max(base, step - int(linkage))


def stage_starts(
    session: Any, starts: Iterable[int], name: str, each: Callable[[int], str]
) -> set[int]:
    """Challenge the Prover for the non-checkpoint `starts`; the starts a replay can use.

    Answers that are committed states are staged for the replay workers;
    the others are failed checks (`ask_states`).
    """
    ckpts = set(session.reader.checkpoint_steps)
    asked = tuple(sorted({s for s in starts if s not in ckpts}))
    usable = {s for s in starts if s in ckpts}
    if not asked:
        return usable
    keys = ask_states(session, session.challenge, asked, name, each, session.checks)
    for step, key in keys.items():
        session.calls.stage_state(step, key)
    return usable | set(keys)


def judge_window(session: Any, a: int, b: int, main: dict[str, Any]) -> CheckResult:
    """An exact replay of ``[a, b)`` ending off a checkpoint: every state as committed."""
    name = f"segment:{a}-{b}"
    if not committed_states(session.reader):  # never planned so (`stepwise`): refuse, not pass
        return CheckResult.fail(name, "a boundary window needs per-step commitments to compare")
    where = off_chain(session, a, b, main)
    if not where:
        detail = f"boundary window replay {a}->{b}: every state equals its commitment"
        return CheckResult.ok(name, detail, start=a, stop=b)
    detail = f"boundary window replay {a}->{b} differs from the commitments{where}"
    return CheckResult.fail(name, detail, start=a, stop=b)


def off_chain(session: Any, start: int, step: int, main: dict[str, Any]) -> str:
    """Where an exact replay of ``[start, step)`` leaves the committed chain ("" if it does not).

    When the last state differs, the first bad step is bisected
    (`localize`); when only states on the way differ, the first of them
    names it.
    """
    committed = committed_states(session.reader)
    states = list(main.get("states", []))[: step - start]  # a shared replay may go on past it
    want = [committed.get(n) for n in range(start + 1, step + 1)]
    if not committed or states == want:
        return ""
    if len(states) != len(want) or states[-1] != want[-1]:
        return localize(start, step, states, committed) or "; its states are not the committed ones"
    bad = next(n for n, (a, b) in enumerate(zip(states, want, strict=True), start) if a != b)
    return (
        f"; first bad step {bad}: the state committed after it is not what the step gives, "
        "though the replay ends on the committed state"
    )


def compare(
    tol: Tolerance,
    got: torch.Tensor,
    want: torch.Tensor,
    noise: float,
    start: torch.Tensor | None,
) -> tuple[float, bool]:
    """ε and whether `got` passes for `want`: bitwise when exact, else within the measured ε.

    `start`, the weights the replay started from, scales ε; only tolerance
    replays need it, and they never start from a committed state (None
    when exact).
    """
    if tol.exact:
        return 0.0, bool((got == want).all())
    if start is None:
        msg = "a tolerance comparison needs the replay's start weights"
        raise ValueError(msg)
    eps = tol.epsilon(noise, float((got - start).norm()))
    return eps, float((got - want).norm()) <= eps
