"""Training programs: the code part of the transcript's metadata `M`.

A `TrainingProgram` says how to build the model and optimizer from the
run's configuration, what the data points are, and what the loss is. The
Prover writes one per kind of run; the transcript stores a copy of its
source file and its hash, and the trusted cluster loads that copy (after
checking the hash) to replay segments of the run.

Example::

    >>> from computewatch.datacenter import load_program
    >>> program, code_hash = load_program("examples/tinygpt.py")  # doctest: +SKIP
"""

from __future__ import annotations

import abc
import importlib.abc
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch.crypto import Digest, hash_bytes
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import torch

__all__ = ["MAX_PROGRAM_BYTES", "TrainingProgram", "load_program", "program_code_hash"]

_CODE_DOMAIN = b"computewatch/training-code/v1\x00"
#: Largest program source file accepted.
MAX_PROGRAM_BYTES = 1 << 20


class TrainingProgram(abc.ABC):
    """What a run trains, on what, with what loss (hyperparameters are `config`)."""

    #: A short name for reports.
    name: str = "program"

    @abc.abstractmethod
    def build_model(self, config: Mapping[str, Any]) -> torch.nn.Module:
        """Build the model (its initial values are replaced by the seeded init)."""

    @abc.abstractmethod
    def build_optimizer(
        self, params: Sequence[torch.nn.Parameter], config: Mapping[str, Any]
    ) -> torch.optim.Optimizer:
        """Build the optimizer over `params` (elementwise optimizers only: SGD, Adam...)."""

    @abc.abstractmethod
    def dataset_size(self, config: Mapping[str, Any]) -> int:
        """How many data points the training set has."""

    @abc.abstractmethod
    def data_point(self, config: Mapping[str, Any], index: int) -> torch.Tensor:
        """Data point `index` as a tensor (it is hashed into the transcript)."""

    @abc.abstractmethod
    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """Mean loss of `model` on a batch of stacked data points."""

    def learning_rate(self, config: Mapping[str, Any], step: int) -> float:
        """The learning rate at `step` (default: `config["lr"]`, constant)."""
        del step
        return float(config["lr"])

    def flops_per_point(self, config: Mapping[str, Any], n_params: int) -> float:
        """Training FLOPs per data point (default 6 x parameters x tokens of 1)."""
        del config
        return 6.0 * n_params


class _HashedSourceLoader(importlib.abc.SourceLoader):
    """Loads a module from source bytes already read and hashed (no re-read)."""

    def __init__(self, path: str, source: bytes) -> None:
        self._path = path
        self._source = source

    def get_filename(self, fullname: str) -> str:
        del fullname
        return self._path

    def get_data(self, path: str) -> bytes:
        del path
        return self._source


def program_code_hash(source: bytes) -> Digest:
    """The hash of a program's source, as recorded in the manifest."""
    return hash_bytes(source, domain=_CODE_DOMAIN)


def load_program(path: str | Path, attr: str = "PROGRAM") -> tuple[TrainingProgram, Digest]:
    """Load the `TrainingProgram` named `attr` from the Python file at `path`.

    Returns the program and the hash of the exact bytes that were executed.
    The file is read once, hashed, and executed from those bytes (no second
    read that could differ).

    Raises:
        FormatError: missing, too large, or not defining a `TrainingProgram`.
    """
    file = Path(path)
    try:
        source = file.read_bytes()
    except OSError as e:
        msg = f"training program {file}: cannot read ({e.strerror})"
        raise FormatError(msg) from e
    if len(source) > MAX_PROGRAM_BYTES:
        msg = f"training program {file}: larger than {MAX_PROGRAM_BYTES} bytes"
        raise FormatError(msg)
    digest = program_code_hash(source)
    name = f"computewatch_program_{digest.hex[:16]}"
    loader = _HashedSourceLoader(str(file), source)
    spec = importlib.util.spec_from_loader(name, loader=loader, origin=str(file))
    if spec is None:  # pragma: no cover - spec_from_loader always returns one
        msg = f"training program {file}: cannot create a module spec"
        raise FormatError(msg)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module through it
    try:
        loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        msg = f"training program {file}: failed to load ({type(e).__name__}: {e})"
        raise FormatError(msg) from e
    program = getattr(module, attr, None)
    if not isinstance(program, TrainingProgram):
        msg = f"training program {file}: expected a TrainingProgram named {attr!r}"
        raise FormatError(msg)
    return program, digest
