"""One place for every switch that affects whether a replay matches (STYLE 13).

`set_determinism` sets them all and returns a `Determinism` record that goes
into the transcript's manifest, so the trusted cluster can reproduce the
same numerical conditions. On this CPU a replay with the same thread count
is bitwise identical; a different thread count changes the order of
floating-point reductions and drifts by about 1e-4 (L2) over 20-50 steps,
which is what the verifier's tolerance must absorb.

Example::

    >>> from computewatch.datacenter import set_determinism
    >>> set_determinism(seed=0, threads=1).threads
    1
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from computewatch._validate import int_in_range
from computewatch.errors import FormatError

__all__ = ["Determinism", "cpu_capability", "set_determinism"]


@dataclass(frozen=True, slots=True)
class Determinism:
    """The settings a replay must reproduce.

    Attributes:
        seed: seed of the process-global torch generator (dropout and any
            other draw that does not take an explicit generator).
        threads: intra-op CPU threads (reduction order depends on it).
        deterministic_algorithms: `torch.use_deterministic_algorithms`.
        tf32: whether TF32 matmuls/convolutions were allowed on GPUs.
        torch_version: the torch build that trained.
        cpu_capability: the CPU instruction set torch's kernels dispatched to
            (`torch.backends.cpu.get_cpu_capability()`, e.g. ``AVX2``); None
            in transcripts recorded before ADR 0033.
    """

    seed: int
    threads: int
    deterministic_algorithms: bool
    tf32: bool
    torch_version: str
    cpu_capability: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record for the manifest."""
        doc: dict[str, Any] = {
            "seed": self.seed,
            "threads": self.threads,
            "deterministic_algorithms": self.deterministic_algorithms,
            "tf32": self.tf32,
            "torch_version": self.torch_version,
        }
        if self.cpu_capability is not None:
            doc["cpu_capability"] = self.cpu_capability
        return doc

    def pinned_here(self) -> bool:
        """Whether this process reproduces the pinned environment bit for bit.

        True when the record names a CPU capability (recorded since ADR 0033)
        and this process has the same one and the same torch build; the
        thread count is set from the record by `apply`. A GPU run is never
        pinned here (TF32 or GPU kernels are not this CPU's).
        """
        return (
            self.cpu_capability is not None
            and not self.tf32
            and self.cpu_capability == cpu_capability()
            and self.torch_version == _torch_version()
        )

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Determinism:
        """Parse the manifest record."""
        return cls(
            seed=int_in_range("determinism seed", doc["seed"], 0, 2**63 - 1),
            threads=int_in_range("determinism threads", doc["threads"], 1, 4096),
            deterministic_algorithms=bool(doc["deterministic_algorithms"]),
            tf32=bool(doc["tf32"]),
            torch_version=str(doc["torch_version"]),
            # absent before ADR 0033; present, it must be a name (null is refused)
            cpu_capability=_capability(doc["cpu_capability"]) if "cpu_capability" in doc else None,
        )

    def apply(self) -> None:
        """Set these switches in this process (a replay does this first)."""
        set_determinism(self.seed, self.threads)


def _capability(value: object) -> str:
    if not isinstance(value, str) or not value.isascii() or not 0 < len(value) <= 32:  # noqa: PLR2004
        msg = f"determinism cpu_capability: expected a short ASCII name, got {value!r:.40}"
        raise FormatError(msg)
    return value


def _torch_version() -> str:
    import torch  # noqa: PLC0415

    return str(torch.__version__)


def cpu_capability() -> str:
    """The CPU instruction set this process's torch kernels use (e.g. ``AVX2``)."""
    import torch  # noqa: PLC0415

    return str(torch.backends.cpu.get_cpu_capability())


def set_determinism(seed: int, threads: int) -> Determinism:
    """Set every switch that affects replay, and return the record of them.

    Args:
        seed: seed for torch's process-global generator.
        threads: intra-op threads; replays must use the same number to be
            bitwise identical.
    """
    import torch  # noqa: PLC0415 - keep `import computewatch` light

    int_in_range("seed", seed, 0, 2**63 - 1)
    int_in_range("threads", threads, 1, 4096)
    # Reduction order (and so rounding) depends on the thread count.
    torch.set_num_threads(threads)
    # Refuse kernels without a deterministic implementation instead of
    # silently using a non-deterministic one.
    torch.use_deterministic_algorithms(mode=True)
    # cuBLAS needs a fixed workspace for deterministic GEMMs on GPUs.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # cuDNN: no autotuning (it picks kernels by timing), deterministic kernels.
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    # TF32 changes matmul precision on Ampere+ GPUs; keep full fp32.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # The global generator: only draws without an explicit generator use it.
    torch.manual_seed(seed)
    return Determinism(
        seed=seed,
        threads=threads,
        deterministic_algorithms=True,
        tf32=False,
        torch_version=torch.__version__,
        # kernels pick their vector width (and so rounding) from it; it cannot
        # be changed after torch is imported, so it is recorded, not set
        cpu_capability=cpu_capability(),
    )
