"""Benchmarks: scores of the final model, computed inside the trusted cluster.

A rule such as "if RL-for-code exceeds X FLOPs, the score on Z must stay
below Y" (paper §2.1) needs the final model's score on an agreed benchmark.
The Verifier's trusted cluster holds the weights (the Prover's never leave
it), runs each `Benchmark` and passes the scores to the rules as
`benchmarks.<name>`.

`HeldOutBitsPerByte` is the one shipped for the demo: the mean next-byte
cross-entropy, in bits, of a byte-level language model on a fixed,
documented set of points of its own training program's dataset.

Example::

    >>> from computewatch.rules import Benchmark, HeldOutBitsPerByte
    >>> bench = HeldOutBitsPerByte(points=64)
    >>> bench.name, isinstance(bench, Benchmark)
    ('bits_per_byte', True)
    >>> bench.score(model, program, config)  # doctest: +SKIP
    2.87...
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from computewatch._validate import int_in_range
from computewatch.errors import CheckUnavailable, FormatError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["Benchmark", "HeldOutBitsPerByte"]

_MAX_POINTS = 1 << 20


@runtime_checkable
class Benchmark(Protocol):
    """Scores a trained model (pluggable); the score is `benchmarks.<name>`."""

    #: The score's name in the rules.
    name: str

    def score(self, model: Any, program: Any, config: Mapping[str, Any]) -> float:
        """Score `model`, built and trained by `program` with `config`."""
        ...


class HeldOutBitsPerByte:
    """Mean cross-entropy in bits per byte on the last `points` data points.

    The model is scored on points `n - points .. n - 1` of the program's
    dataset (`n = program.dataset_size(config)`; all of them if `n <
    points`), in batches of `batch_size`, under `torch.no_grad()` and in
    eval mode (the model's mode is restored afterwards). The score is the
    points-weighted mean of `program.loss(model, batch)` divided by ln 2, so
    the program's loss must be the mean next-byte cross-entropy in nats, as
    for a byte-level language model (`examples/tinygpt.py`).

    The points are "held out" only if the run did not train on them: the
    choice is fixed and documented so the Prover cannot pick it, and a
    regime that needs a truly unseen set must exclude those indices from
    the run's data schedule.

    Args:
        points: How many of the dataset's last points to score (>= 1).
        batch_size: Points per forward pass (>= 1).
    """

    name = "bits_per_byte"

    def __init__(self, points: int = 64, batch_size: int = 64) -> None:
        """Validate and keep the sizes."""
        self.points = int_in_range("points", points, 1, _MAX_POINTS)
        self.batch_size = int_in_range("batch_size", batch_size, 1, _MAX_POINTS)

    def indices(self, program: Any, config: Mapping[str, Any]) -> range:
        """The dataset indices this benchmark scores."""
        size: object = program.dataset_size(config)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            msg = f"benchmark {self.name}: expected dataset_size >= 1, got {size!r}"
            raise FormatError(msg)
        return range(max(0, size - self.points), size)

    def score(self, model: Any, program: Any, config: Mapping[str, Any]) -> float:
        """Mean loss over the scored points, in bits per byte.

        Raises:
            FormatError: the program's dataset is empty.
            CheckUnavailable: the loss is not a finite number.
        """
        import torch  # noqa: PLC0415 - torch is heavy; only benchmarks need it

        indices = self.indices(program, config)
        was_training = bool(model.training)
        model.eval()
        total = 0.0
        try:
            with torch.no_grad():
                for start in range(0, len(indices), self.batch_size):
                    chunk = indices[start : start + self.batch_size]
                    batch = torch.stack([program.data_point(config, i) for i in chunk])
                    loss = float(program.loss(model, batch))
                    if not math.isfinite(loss):
                        msg = (
                            f"benchmark {self.name}: expected a finite loss, got {loss} "
                            f"on points {chunk.start}..{chunk.stop - 1}"
                        )
                        raise CheckUnavailable(msg)
                    total += loss * len(chunk)
        finally:
            model.train(was_training)
        return total / len(indices) / math.log(2)
