"""Spoofs built while training: restart chains and substituted data (paper §5).

These attacks change what the training loop does (not only the files
afterwards): the Prover trains on the real chip, so every snapshot the
firmware logs is of the weights really trained.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from computewatch.attacks._harness import (
    SCALE,
    Attempt,
    Detection,
    HonestRun,
    Scale,
    run_on_chip,
    verify_attempt,
)
from computewatch.attacks._step_audit import trained_batches
from computewatch.datacenter import DataSchedule, TranscriptPaths, load_checkpoint
from computewatch.verification import miss_probability

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from computewatch.verification import VerificationPolicy

__all__ = ["DataSubstitution", "RestartChain"]


class RestartChain:
    """One long run reported as several short runs.

    Part 2 secretly continues from part 1's final weights instead of the
    seeded W_0 its precommitment implies (each part alone stays under a
    reporting threshold).
    """

    name = "restart-chain"
    threat = "§5: a long run split into short runs that continue each other"
    expected = ("init",)
    needs_base = True

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Train part 2 on its own chip, starting from part 1's final weights."""
        carried = load_checkpoint(TranscriptPaths(bases[0].run_dir).checkpoint(scale.steps)).weights
        second = run_on_chip(
            workdir / f"{self.name}-{trial}",
            name="part-2",
            serial=f"CW-RC-{trial}",
            scale=scale,
            init=lambda *_a, **_k: carried.clone(),  # part 1's weights, not the seeded W_0
            data_seed=100 + trial,
        )
        return Attempt(run=second)

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """`verify_transcript` on part 2."""
        return verify_attempt(attempt, policy, rng)


class DataSubstitution:
    """Precommit the scheduled data, train on other points in some steps.

    A fraction of the steps (at least one) is drawn at random per trial; in
    those steps every point is replaced by the next point of the data set.
    The Prover answers challenges with the states it really trained through.
    """

    threat = "§5: training data other than the precommitted data"
    expected = ("audit", "snapshot", "segment", "heuristic")
    needs_base = False

    def __init__(self, fraction: float) -> None:
        """Substitute the data of ``fraction`` of the steps."""
        self.fraction = fraction
        self.name = f"data-substitution-{fraction:.0%}"

    def steps(self, trial: int, scale: Scale = SCALE) -> set[int]:
        """The substituted steps of a trial."""
        count = max(1, round(self.fraction * scale.steps))
        rng = np.random.default_rng(10_000 + trial)
        return {int(s) for s in rng.choice(scale.steps, size=count, replace=False)}

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Train with the substituted batches on a fresh chip."""
        del bases  # trained from scratch
        chosen = self.steps(trial, scale)

        def used(schedule: DataSchedule, step: int) -> list[int]:
            idx = schedule.indices(step)
            return [(i + 1) % schedule.dataset_size for i in idx] if step in chosen else idx

        def substituted(schedule: DataSchedule, step: int, rank: int, world_size: int) -> list[int]:
            idx = used(schedule, step)
            per = len(idx) // world_size
            return idx[rank * per : (rank + 1) * per]

        run = run_on_chip(
            workdir / f"{self.name}-{trial}",
            serial=f"CW-DS-{trial}",
            scale=scale,
            batches=substituted,
            data_seed=200 + trial,
        )
        # a capable cheater answers step audits from the trajectory it really trained
        return Attempt(
            run=run, data={"substituted_steps": sorted(chosen), "batches": trained_batches(used)}
        )

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """`verify_transcript` with the policy."""
        return verify_attempt(attempt, policy, rng)

    def formula(self, fraction: float, scale: Scale = SCALE) -> float:
        """Detection by step audits alone at audit fraction `fraction`: ``1 - (1 - c)^m``."""
        return 1.0 - miss_probability(fraction, len(self.steps(0, scale)))
