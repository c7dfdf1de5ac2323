"""Benchmarks: scores of the final model, computed inside the trusted cluster.

A rule such as "if RL-for-code exceeds X FLOPs, the score on Z must stay
below Y" (paper §2.1) needs the final model's score on an agreed benchmark.
The Verifier's trusted cluster holds the weights (the Prover's never leave
it), runs each `Benchmark` and passes the scores to the rules as
`benchmarks.<name>`.

The rule file declares which benchmarks run, by kind (`BENCHMARK_KINDS`,
built by `make_benchmark`); nothing else picks one:

* ``held-out-bits-per-byte`` (`HeldOutBitsPerByte`): the mean next-byte
  cross-entropy, in bits, of a byte-level language model on a fixed,
  documented set of points of its own training program's dataset;
* ``file-bits-per-byte`` (`FileBitsPerByte`): the same score on a held-out
  file the rule file references (pinned by sha256), cut into windows the
  size of the program's data points. The file's bytes reach the replay
  worker only as a staged job input.

Example::

    >>> from computewatch.rules import Benchmark, HeldOutBitsPerByte
    >>> bench = HeldOutBitsPerByte(points=64)
    >>> bench.name, isinstance(bench, Benchmark)
    ('bits_per_byte', True)
    >>> bench.score(model, program, config)  # doctest: +SKIP
    2.87...
    >>> make_benchmark("file-bits-per-byte", "text_bpb", points=8, data=b"held out").points
    8
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from computewatch._validate import int_in_range
from computewatch.errors import CheckUnavailable, FormatError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = [
    "BENCHMARK_KINDS",
    "Benchmark",
    "FileBitsPerByte",
    "HeldOutBitsPerByte",
    "make_benchmark",
]

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
        indices = self.indices(program, config)
        return _bits_per_byte(
            self.name,
            model,
            program,
            len(indices),
            lambda k: program.data_point(config, indices[k]),
            self.batch_size,
        )


class FileBitsPerByte:
    """Mean cross-entropy in bits per byte on a held-out file's bytes.

    The file is cut into consecutive windows of as many bytes as one of the
    program's data points holds elements (``program.data_point(config, 0)``
    gives the shape and dtype; a trailing partial window is dropped); the
    first `points` windows are scored like `HeldOutBitsPerByte`. The program
    must be a byte-level language model (points are byte values).

    Args:
        name: The score's name (``benchmarks.<name>``).
        data: The held-out bytes (checked against their pinned digest by
            whoever read the file).
        points: Most windows scored (>= 1).
        batch_size: Windows per forward pass (>= 1).
    """

    def __init__(self, name: str, data: bytes, points: int = 256, batch_size: int = 64) -> None:
        """Validate and keep the sizes and the bytes."""
        self.name = name
        self.data = bytes(data)
        self.points = int_in_range("points", points, 1, _MAX_POINTS)
        self.batch_size = int_in_range("batch_size", batch_size, 1, _MAX_POINTS)

    def score(self, model: Any, program: Any, config: Mapping[str, Any]) -> float:
        """Mean loss over the file's windows, in bits per byte.

        Raises:
            CheckUnavailable: the file is shorter than one window, or the
                loss is not a finite number.
        """
        import torch  # noqa: PLC0415

        like = program.data_point(config, 0)
        width = int(like.numel())
        windows = min(self.points, len(self.data) // width) if width else 0
        if windows == 0:
            msg = (
                f"benchmark {self.name}: the held-out file ({len(self.data)} bytes) is shorter "
                f"than one data point ({width} values)"
            )
            raise CheckUnavailable(msg)

        def window(k: int) -> Any:
            raw = bytearray(self.data[k * width : (k + 1) * width])
            return torch.frombuffer(raw, dtype=torch.uint8).to(like.dtype).reshape(like.shape)

        return _bits_per_byte(self.name, model, program, windows, window, self.batch_size)


def _bits_per_byte(  # noqa: PLR0917 - one score's parts
    name: str,
    model: Any,
    program: Any,
    count: int,
    point: Callable[[int], Any],
    batch_size: int,
) -> float:
    """The points-weighted mean of ``program.loss`` over points ``point(0..count-1)``, / ln 2."""
    import torch  # noqa: PLC0415

    was_training = bool(model.training)
    model.eval()
    total = 0.0
    try:
        with torch.no_grad():
            for start in range(0, count, batch_size):
                chunk = range(start, min(count, start + batch_size))
                batch = torch.stack([point(k) for k in chunk])
                loss = float(program.loss(model, batch))
                if not math.isfinite(loss):
                    msg = (
                        f"benchmark {name}: expected a finite loss, got {loss} "
                        f"on points {start}..{start + len(chunk) - 1}"
                    )
                    raise CheckUnavailable(msg)
                total += loss * len(chunk)
    finally:
        model.train(was_training)
    return total / count / math.log(2)


#: The benchmark kinds a rule file may declare.
BENCHMARK_KINDS = ("held-out-bits-per-byte", "file-bits-per-byte")


def make_benchmark(
    kind: str, name: str, *, points: int, data: bytes | None = None
) -> HeldOutBitsPerByte | FileBitsPerByte:
    """The benchmark of `kind` (one of `BENCHMARK_KINDS`) called `name`.

    Raises:
        FormatError: an unknown kind, or a file kind without its bytes.
    """
    if kind == "held-out-bits-per-byte":
        bench = HeldOutBitsPerByte(points=points)
        bench.name = name
        return bench
    if kind == "file-bits-per-byte":
        if data is None:
            msg = f"benchmark {name}: kind {kind} needs its held-out file's bytes"
            raise FormatError(msg)
        return FileBitsPerByte(name, data, points=points)
    msg = f"benchmark {name} kind: expected one of {', '.join(BENCHMARK_KINDS)}, got {kind!r:.60}"
    raise FormatError(msg)
