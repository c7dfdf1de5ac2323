"""Replaying segments of a run, and the tolerance replays are held to.

The replayer rebuilds the run's model from the transcript's committed
program and configuration in a single process (`Trainer` with one chip:
the flat ZeRO-1 step on `R` chips equals a single-process step with the
global batch, up to reduction order), loads a checkpoint, and replays
optimizer steps on the raw data points, each checked against its committed
hash before use (the trusted cluster receives raw inputs from the Prover
and checks them against the hashes it was given).

Tolerance (paper §5, PoL's ε): honest replays differ from the recorded run
only by floating-point reduction order, and that noise grows with the size
of the updates replayed. `calibrate` measures it: it replays one segment
twice with different CPU thread counts and takes the drift relative to the
segment's update magnitude as the noise *rate*; a segment of update
magnitude `U` is then accepted within ``eps = max(floor, safety * rate * U)``.
Scaling with `U` keeps tiny spoofed updates from hiding under a fixed
threshold. In exact mode (one chip, same threads and torch) the tolerance
is zero: replays must be bitwise equal.

Example::

    >>> tol = calibrate(reader, start=0, steps=4)  # doctest: +SKIP
    >>> tol.epsilon(update_magnitude=0.3)  # doctest: +SKIP
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

__all__ = ["Replayer", "Tolerance", "calibrate"]

_CACHED_BATCHES = 64  # bounded cache of checked batches


class Replayer:
    """Replays optimizer steps of a transcript in one process."""

    def __init__(self, reader: TranscriptReader, *, threads: int | None = None) -> None:
        """Set the run's determinism (with `threads` if given) and build its model."""
        self.reader = reader
        det = reader.determinism
        self.threads = threads or det.threads
        set_determinism(det.seed, self.threads)
        self.trainer = Trainer(reader.program, reader.config)
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
        wanted = set(capture)
        self.trainer.load(self.reader.checkpoint(start))
        captured = {}
        if start in wanted:
            captured[start] = self.trainer.flat.clone()
        for step in range(start, stop):
            self.trainer.step(step, self.batch(step))
            self.steps_replayed += 1
            if step + 1 in wanted:
                captured[step + 1] = self.trainer.flat.clone()
        return self.trainer.flat.clone(), captured

    def loss_at(self, checkpoint_step: int) -> float:
        """The loss of the checkpoint's weights on the batch of that step (forward only)."""
        import torch  # noqa: PLC0415

        self.trainer.load(self.reader.checkpoint(checkpoint_step))
        with torch.no_grad():
            value = self.reader.program.loss(self.trainer.model, self.batch(checkpoint_step))
        return float(value.item())


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How far an honest replay may land from the recorded weights.

    Attributes:
        rate: measured drift per unit of update magnitude.
        safety: multiplier on the measured rate.
        floor: smallest tolerance (absolute, L2).
        exact: replays must be bitwise equal.
    """

    rate: float
    safety: float
    floor: float
    exact: bool = False

    def epsilon(self, update_magnitude: float) -> float:
        """The L2 tolerance for a replay whose updates total `update_magnitude`."""
        if self.exact:
            return 0.0
        return max(self.floor, self.safety * self.rate * update_magnitude)

    def to_json(self) -> dict[str, Any]:
        """For the verdict's metrics."""
        return {"rate": self.rate, "safety": self.safety, "floor": self.floor, "exact": self.exact}


def calibrate(
    reader: TranscriptReader,
    *,
    start: int,
    steps: int,
    safety: float = 10.0,
    floor: float = 1e-7,
) -> tuple[Tolerance, int]:
    """Measure replay noise on `steps` steps from checkpoint `start`.

    Returns the tolerance and the number of steps replayed to measure it.
    """
    threads = reader.determinism.threads
    other = threads + 1 if threads == 1 else threads - 1
    a = Replayer(reader, threads=threads)
    w_a, _ = a.run(start, start + steps)
    b = Replayer(reader, threads=other)
    w_b, _ = b.run(start, start + steps)
    w_0 = reader.checkpoint(start).weights
    magnitude = float((w_a - w_0).norm())
    drift = float((w_a - w_b).norm())
    rate = drift / magnitude if magnitude > 0 else 0.0
    # never below float32 round-off of the update itself
    rate = max(rate, 1e-6)
    set_determinism(reader.determinism.seed, threads)
    return Tolerance(rate=rate, safety=safety, floor=floor), 2 * steps
