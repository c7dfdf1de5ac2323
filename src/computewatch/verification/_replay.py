"""Replaying segments of a run in-process, and the tolerance replays are held to.

`Replayer` and `replay_pair` load the transcript's program into the calling
process: they are tools for attackers, tests and analyses of programs one
trusts. `verify_transcript` never uses them; it runs the same replay (the
`Trainer` step, micro-batches, noise twin) in sandboxed replay workers
(`_worker`) and keeps only `Tolerance` from here.

The replayer rebuilds the run's model from the transcript's committed
program and configuration in a single process (`Trainer` with one chip,
the global batch cut into the run's `R` per-chip micro-batches whose
gradients are averaged as the chips' all-reduce does, so only the
all-reduce's summation order differs), loads a checkpoint, and replays
optimizer steps on the raw data points, each checked against its committed
hash before use (the trusted cluster receives raw inputs from the Prover
and checks them against the hashes it was given).

Tolerance (paper §5, PoL's ε): honest replays differ from the recorded run
only by floating-point reduction order. That noise grows with the number of
steps and the size of the updates, and adaptive optimizers amplify it where
gradients are near zero, so it is measured per segment: `replay_pair`
replays each segment twice, the second time with another CPU thread count
and the chips' gradients summed in reverse order, and the segment is
accepted within ``eps = max(floor, safety * noise, safety * 1e-6 * U)``
where `noise` is the twins' distance on the compared values and `U` how far
the replay moved them. A fixed threshold would let tiny spoofed updates
hide under it; this one is only as wide as the measured noise. In exact
mode (one chip, same threads and torch build) it is zero: replays must be
bitwise equal.

Example::

    >>> main, twin, steps = replay_pair(reader, 0, 10, capture=[7])  # doctest: +SKIP
    >>> Tolerance().epsilon(float((main[7] - twin[7]).norm()), 0.3)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.datacenter import Trainer, point_hash, set_determinism
from computewatch.errors import IntegrityError

if TYPE_CHECKING:
    from collections.abc import Iterable

    import torch

    from computewatch.verification._reader import TranscriptReader

__all__ = ["Replayer", "Tolerance", "replay_pair"]

_CACHED_BATCHES = 64  # bounded cache of checked batches


class Replayer:
    """Replays optimizer steps of a transcript in one process."""

    def __init__(
        self, reader: TranscriptReader, *, threads: int | None = None, perturb: bool = False
    ) -> None:
        """Set the run's determinism (with `threads` if given) and build its model.

        With `perturb`, gradients of the per-chip micro-batches are summed in
        reverse order: a replay that differs from the true one only by
        rounding, for measuring replay noise.
        """
        self.reader = reader
        self.perturb = perturb
        det = reader.determinism
        self.threads = threads or det.threads
        set_determinism(det.seed, self.threads)
        reduction = reader.reduction
        self.trainer = Trainer(
            reader.program,
            reader.config,
            reduction=reduction,
            replay_shards=reader.world_size if reduction is not None else 1,
            replay_slices=reader.replay_slices,
        )
        self.steps_replayed = 0
        self._batches: dict[int, torch.Tensor] = {}

    def batch(self, step: int) -> torch.Tensor:
        """The global batch of `step`, each raw point checked against its hash."""
        import torch  # noqa: PLC0415

        if step in self._batches:
            return self._batches[step]
        reader = self.reader
        committed = reader.points(step)
        indices = reader.schedule.indices(step)
        if len(indices) != len(committed):
            msg = f"step {step}: {len(committed)} committed points, the schedule has {len(indices)}"
            raise IntegrityError(msg)
        points = []
        for j, (i, digest) in enumerate(zip(indices, committed, strict=True)):
            point = reader.program.data_point(reader.config, i)
            if point_hash(point) != digest:
                msg = f"step {step} point {j}: the raw data does not match its committed hash"
                raise IntegrityError(msg)
            points.append(point)
        batch = torch.stack(points)
        if len(self._batches) < _CACHED_BATCHES:
            self._batches[step] = batch
        return batch

    def run(
        self, start: int, stop: int, capture: Iterable[int] = ()
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Replay steps [start, stop) from the checkpoint at `start`.

        Returns the flat weights after `stop` steps and copies of the
        weights after each step count in `capture`.
        """
        self.trainer.load(self.reader.checkpoint(start))
        return self.advance(start, stop, capture)

    def advance(
        self, start: int, stop: int, capture: Iterable[int] = ()
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Replay steps [start, stop) from the state the trainer holds (after `start` steps)."""
        wanted = set(capture)
        captured = {}
        if start in wanted:
            captured[start] = self.trainer.flat.clone()
        for step in range(start, stop):
            self.trainer.step(
                step,
                self.batch(step),
                micro_batches=self.reader.micro_batches,
                reverse_sum=self.perturb,
            )
            self.steps_replayed += 1
            if step + 1 in wanted:
                captured[step + 1] = self.trainer.flat.clone()
        return self.trainer.flat.clone(), captured

    def loss_at(self, checkpoint_step: int) -> float:
        """The loss of the checkpoint's weights on the batch of that step (forward only)."""
        import torch  # noqa: PLC0415

        self.trainer.load(self.reader.checkpoint(checkpoint_step))
        parts = self.batch(checkpoint_step).chunk(self.reader.micro_batches)
        with torch.no_grad():
            total = sum(float(self.trainer.loss(p).item()) for p in parts)
        return total / len(parts)


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far an honest replay may land from the recorded weights.

    Attributes:
        safety: multiplier on the measured noise.
        floor: smallest tolerance (absolute, L2).
        rate_floor: smallest relative noise assumed (float32 round-off of
            the update itself).
        exact: replays must be bitwise equal.
    """

    safety: float = 10.0
    floor: float = 1e-7
    rate_floor: float = 1e-6
    exact: bool = False

    def epsilon(self, noise: float, update_magnitude: float) -> float:
        """The L2 tolerance for a replay.

        Args:
            noise: the measured distance between the replay and its
                perturbed twin on the compared values.
            update_magnitude: how far the replay moved the compared values.
        """
        if self.exact:
            return 0.0
        return max(
            self.floor, self.safety * noise, self.safety * self.rate_floor * update_magnitude
        )

    def to_json(self) -> dict[str, Any]:
        """For the verdict's metrics."""
        return {
            "safety": self.safety,
            "floor": self.floor,
            "rate_floor": self.rate_floor,
            "exact": self.exact,
        }


def replay_pair(
    reader: TranscriptReader, start: int, stop: int, capture: Iterable[int] = ()
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], int]:
    """Replay [start, stop) twice: as recorded, and perturbed (noise twin).

    The twin uses another CPU thread count and sums the chips' gradients in
    reverse order, so the distance between the two measures this segment's
    floating-point noise where it is compared (adaptive optimizers amplify
    rounding where gradients are near zero, so noise is segment-specific).
    Returns the captures of both and the steps replayed.
    """
    wanted = set(capture) | {stop}
    threads = reader.determinism.threads
    other = threads + 1 if threads == 1 else threads - 1
    main = Replayer(reader, threads=threads)
    _, a = main.run(start, stop, capture=wanted)
    twin = Replayer(reader, threads=other, perturb=True)
    _, b = twin.run(start, stop, capture=wanted)
    set_determinism(reader.determinism.seed, threads)
    return a, b, main.steps_replayed + twin.steps_replayed
