"""Spoofs that hide under the replay tolerance ε (Fang et al. 2023; noise under ε).

The Verifier accepts a replayed segment when ``|W' - W| <= ε``, with ε the
safety factor times the distance between the replay and its noise twin.
These attacks try to live inside that slack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from computewatch.attacks._harness import (
    SCALE,
    Attempt,
    Detection,
    HonestRun,
    Scale,
    recommit,
    verify_attempt,
)
from computewatch.attacks._transcript import replace_weights
from computewatch.datacenter import TranscriptPaths, load_checkpoint
from computewatch.verification import (
    Tolerance,
    TranscriptReader,
    VerificationPolicy,
    replay_pair,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy as np

__all__ = ["NoiseUnderEpsilon", "SmallUpdateSpoof"]


class NoiseUnderEpsilon:
    """A perturbation of the final weights of norm just below the measured ε.

    The spoofer measures ε for the last segment exactly as the Verifier would
    (it can run the public verifier on its own transcript), then adds a
    random direction (standing in for a payload such as a backdoor) of norm
    ``fraction * ε`` to the final checkpoint and recommits.
    """

    name = "noise-under-epsilon"
    threat = "§5 / App. A: weights nudged inside the replay tolerance"
    expected = ("segment",)
    needs_base = True

    def __init__(self, fraction: float = 0.9) -> None:
        """Perturb by ``fraction`` times the measured ε."""
        self.fraction = fraction

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Measure ε of the last segment, perturb checkpoint 24 below it."""
        run = bases[0].copy(workdir / f"{self.name}-{trial}")
        paths = TranscriptPaths(run.run_dir)
        # the Verifier's ε for the last segment, measured as the Verifier would
        last = scale.checkpoints[-2]
        reader = TranscriptReader.open(run.run_dir, paths.report)
        main, twin, _ = replay_pair(reader, last, scale.steps, {scale.steps})
        replayed = main[scale.steps]
        eps = Tolerance(safety=VerificationPolicy().safety).epsilon(
            float((replayed - twin[scale.steps]).norm()),
            float((replayed - reader.checkpoint(last).weights).norm()),
        )
        final = load_checkpoint(paths.checkpoint(scale.steps)).weights
        gen = torch.Generator().manual_seed(1000 + trial)
        direction = torch.randn(final.shape, generator=gen, dtype=final.dtype)
        noise = direction * (self.fraction * eps / float(direction.norm()))
        replace_weights(paths, scale.steps, final + noise)
        recommit(run.run_dir)
        return Attempt(run=run, data={"epsilon": eps, "noise_norm": float(noise.norm())})

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """`verify_transcript` with the policy."""
        return verify_attempt(attempt, policy, rng)


class SmallUpdateSpoof:
    """Fang et al. 2023: tiny updates that hide under the tolerance.

    The fabricated trajectory starts at the genuine W_0 and moves toward
    the final weights in updates far smaller than real training makes
    (each interior segment moves ``step_fraction`` of the way), so a
    Verifier whose tolerance were loose enough would accept every sampled
    segment; the remaining distance is hidden in the last segment, which a
    random-segment verifier samples only with probability 1/4.
    """

    name = "small-update-fang"
    threat = "App. A (Fang et al. 2023): tiny steps under the tolerance"
    expected = ("segment", "snapshot")
    needs_base = True

    def __init__(self, step_fraction: float = 1e-3) -> None:
        """Move ``step_fraction`` of the way at each interior segment."""
        self.step_fraction = step_fraction

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Rewrite checkpoints 6, 12, 18 as tiny steps from W_0 toward W_T."""
        run = bases[0].copy(workdir / f"{self.name}-{trial}")
        paths = TranscriptPaths(run.run_dir)
        w0 = load_checkpoint(paths.checkpoint(0)).weights
        wt = load_checkpoint(paths.checkpoint(scale.steps)).weights
        for i, step in enumerate(scale.interior, start=1):
            replace_weights(paths, step, w0 + (i * self.step_fraction) * (wt - w0))
        recommit(run.run_dir)
        return Attempt(run=run)

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """`verify_transcript` with the policy."""
        return verify_attempt(attempt, policy, rng)
