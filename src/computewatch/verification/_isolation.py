"""The trusted cluster's isolation layers and sandbox errors (see `_sandbox`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from computewatch.errors import CheckUnavailable

__all__ = [
    "Isolation",
    "IsolationUnavailable",
    "Layer",
    "SandboxError",
    "SandboxFailed",
    "SandboxOutputTooLarge",
    "SandboxTimeout",
]


class Layer(StrEnum):
    """One isolation layer of the trusted cluster (see the module docstring)."""

    NETWORK = "network"
    READONLY_INPUTS = "readonly_inputs"
    READONLY_FS = "readonly_fs"
    SCRATCH_TMPFS = "scratch_tmpfs"
    PROCESSES = "processes"
    NO_CAPABILITIES = "no_capabilities"


class SandboxError(CheckUnavailable):
    """The sandboxed command could not produce a result (exit status 1)."""

    kind = "trusted cluster"


class IsolationUnavailable(SandboxError):  # noqa: N818 - reads as a state, like CheckUnavailable
    """Strict mode refused to run: an isolation layer cannot be set up here.

    Exit status 2, not 1: the host (not root, no user namespaces, no
    ``unshare``, mounts denied in a container) cannot provide the promised
    isolation. That is for the operator to fix, and says nothing about the
    Prover's evidence.
    """

    exit_code = 2
    kind = "isolation unavailable"


class SandboxTimeout(SandboxError):  # noqa: N818 - reads as a state
    """The sandboxed command ran past its wall-clock limit and was killed."""

    kind = "trusted cluster timeout"


class SandboxOutputTooLarge(SandboxError):  # noqa: N818 - reads as a state
    """The sandboxed command wrote more than the stdout cap and was killed."""

    kind = "trusted cluster output too large"


class SandboxFailed(SandboxError):  # noqa: N818 - the name is the verdict
    """The sandboxed command exited with a non-zero status."""

    kind = "trusted cluster command failed"


@dataclass(frozen=True, slots=True)
class Isolation:
    """Which isolation layers were active for one run, as checked from inside.

    Attributes:
        network: No network namespace access beyond a down loopback.
        readonly_inputs: Every input was a read-only bind mount.
        readonly_fs: Every mount reachable by path was read-only.
        scratch_tmpfs: HOME/TMPDIR/caches were a private tmpfs.
        processes: Own PID (with its own /proc) and IPC namespaces.
        no_capabilities: Empty capability sets and ``no_new_privs``.
        method: How the namespaces were made, e.g. ``"unshare(1) as root"``.
        reasons: ``(layer, why it is missing)`` for each missing layer.
    """

    network: bool
    readonly_inputs: bool
    readonly_fs: bool
    scratch_tmpfs: bool
    processes: bool
    no_capabilities: bool
    method: str
    reasons: tuple[tuple[str, str], ...] = ()

    @property
    def missing(self) -> tuple[Layer, ...]:
        """The layers that were not active, in `Layer` order."""
        return tuple(layer for layer in Layer if not getattr(self, layer.value))

    @property
    def complete(self) -> bool:
        """Whether every layer was active."""
        return not self.missing

    def summary(self) -> str:
        """Return one line such as ``network=on readonly_fs=off ... (unshare(1) as root)``."""
        flags = " ".join(f"{layer}={'on' if getattr(self, layer) else 'off'}" for layer in Layer)
        return f"{flags} ({self.method})"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready record of the run's isolation (for a verdict)."""
        return {
            "layers": {layer.value: bool(getattr(self, layer.value)) for layer in Layer},
            "method": self.method,
            "reasons": dict(self.reasons),
        }

    @classmethod
    def none(cls, method: str, reason: str) -> Isolation:
        """Return the isolation of a run with no layer at all, for `reason`."""
        return cls(
            **dict.fromkeys(Layer, False),
            method=method,
            reasons=tuple((layer.value, reason) for layer in Layer),
        )
