"""Lies inside one checkpoint interval, against random step audits (issue 15, ADR 0037).

Each attack trains on the real chip through the `batches` seam and commits
its real trajectory (per-step states, checkpoints): nothing in the files is
inconsistent. It answers the Verifier's step-audit challenge honestly *for
its own trajectory* (`prover_challenge` with the batches it really used), as
a capable cheater would. Only a replayed step whose batch was not the
committed one can expose it.

- `ConcentratedSubstitution`: every step of one interior checkpoint interval
  trains on other points (``m = checkpoint_every`` steps).
- `InIntervalReordering`: the batches of one interior interval are trained in
  a cyclic shift of their committed order (every step of it changed).
- `SingleStepSubstitution` (the PoTT definition's δ3): one step trains on
  other points. No sampling verifier that replays a fraction `c` of the
  steps catches it with probability above `c`; the benchmark reports the
  measured rate next to that formula.

Detection by step audits alone is ``1 - (1 - c) ** m`` (`miss_probability`),
wherever the interval sits; a snapshot replay that crosses it adds to that.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

from computewatch.attacks._harness import SCALE, Attempt, Detection, run_on_chip, verify_attempt
from computewatch.verification import miss_probability

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    import torch

    from computewatch.attacks._harness import HonestRun, Scale
    from computewatch.datacenter import DataSchedule
    from computewatch.verification import TranscriptReader, VerificationPolicy

__all__ = [
    "ConcentratedSubstitution",
    "InIntervalReordering",
    "SingleStepSubstitution",
    "trained_batches",
]


def trained_batches(
    indices: Callable[[DataSchedule, int], list[int]],
) -> Callable[[TranscriptReader, int], torch.Tensor]:
    """The Prover's batch source for its challenge answers: the points it trained on."""
    import torch  # noqa: PLC0415

    def batch(reader: TranscriptReader, step: int) -> torch.Tensor:
        points = [
            reader.program.data_point(reader.config, i) for i in indices(reader.schedule, step)
        ]
        return torch.stack(points)

    return batch


class _IntervalLie:
    """Train with other indices at some steps; answer challenges with that trajectory."""

    name = ""
    threat = ""
    expected = ("audit", "snapshot", "segment")
    needs_base = False
    serial = "CW-X"

    def steps(self, trial: int, scale: Scale) -> list[int]:
        """The steps that deviate in `trial` (interior intervals only)."""
        raise NotImplementedError

    def indices(self, chosen: Sequence[int]) -> Callable[[DataSchedule, int], list[int]]:
        """What the Prover trains on at each step, given the deviating steps."""
        raise NotImplementedError

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Train the lie on a fresh chip; keep what the Prover needs to answer challenges."""
        del bases
        chosen = self.steps(trial, scale)
        used = self.indices(chosen)

        def seam(schedule: DataSchedule, step: int, rank: int, world_size: int) -> list[int]:
            idx = used(schedule, step)
            per = len(idx) // world_size
            return idx[rank * per : (rank + 1) * per]

        run = run_on_chip(
            workdir / f"{self.name}-{trial}",
            serial=f"{self.serial}-{trial}",
            scale=scale,
            batches=seam,
            data_seed=300 + trial,
        )
        return Attempt(
            run=run,
            data={
                "deviating_steps": len(chosen),
                "first_step": min(chosen),
                "batches": trained_batches(used),
            },
        )

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """`verify_transcript` with the Prover answering challenges from its own trajectory."""
        return verify_attempt(attempt, policy, rng)

    def formula(self, fraction: float, scale: Scale = SCALE) -> float:
        """Detection by step audits alone at audit fraction `fraction`: ``1 - (1 - c)^m``."""
        return 1.0 - miss_probability(fraction, len(self.steps(0, scale)))


def _interior_interval(trial: int, scale: Scale, salt: int) -> list[int]:
    """The steps of one interior checkpoint interval, drawn per trial."""
    ckpts = scale.checkpoints
    intervals = list(itertools.pairwise(ckpts[1:-1])) or [(ckpts[0], ckpts[1])]
    rng = np.random.default_rng(salt + trial)
    a, b = intervals[int(rng.integers(len(intervals)))]
    return list(range(a, b))


def _shifted(schedule: DataSchedule, step: int) -> list[int]:
    return [(i + 1) % schedule.dataset_size for i in schedule.indices(step)]


class ConcentratedSubstitution(_IntervalLie):
    """Every step of one interior checkpoint interval trains on other points."""

    name = "concentrated-substitution"
    threat = "§5: substituted data, all of it inside one checkpoint interval"
    serial = "CW-CS"

    def steps(self, trial: int, scale: Scale) -> list[int]:
        """The interval's steps."""
        return _interior_interval(trial, scale, 20_000)

    def indices(self, chosen: Sequence[int]) -> Callable[[DataSchedule, int], list[int]]:
        """The next data point instead of each scheduled one, in the chosen steps."""
        bad = set(chosen)
        return lambda schedule, step: (
            _shifted(schedule, step) if step in bad else schedule.indices(step)
        )


class InIntervalReordering(_IntervalLie):
    """The committed batches of one interval, trained in a cyclic shift of their order."""

    name = "in-interval-reordering"
    threat = "§5: the committed batches of one interval trained in another order"
    serial = "CW-IR"

    def steps(self, trial: int, scale: Scale) -> list[int]:
        """The interval's steps (all of them move)."""
        return _interior_interval(trial, scale, 30_000)

    def indices(self, chosen: Sequence[int]) -> Callable[[DataSchedule, int], list[int]]:
        """Step ``chosen[k]`` trains on the batch of ``chosen[k + 1]`` (cyclically)."""
        order = list(chosen)
        moved = {s: order[(k + 1) % len(order)] for k, s in enumerate(order)}
        return lambda schedule, step: schedule.indices(moved.get(step, step))


class SingleStepSubstitution(_IntervalLie):
    """δ3: one step, anywhere, trains on other points; below what sampling sees."""

    name = "single-step-substitution"
    threat = "PoTT δ3: one substituted step is caught only if that step is replayed"
    serial = "CW-SS"

    def steps(self, trial: int, scale: Scale) -> list[int]:
        """One step, drawn per trial over the whole run."""
        return [int(np.random.default_rng(40_000 + trial).integers(scale.steps))]

    def indices(self, chosen: Sequence[int]) -> Callable[[DataSchedule, int], list[int]]:
        """The next data point instead of each scheduled one, at that step."""
        bad = set(chosen)
        return lambda schedule, step: (
            _shifted(schedule, step) if step in bad else schedule.indices(step)
        )
