"""The exception hierarchy of computewatch.

Every error the library raises on purpose derives from `ComputeWatchError`.
The subclasses keep apart four things a user must never confuse:

* `IntegrityError`: evidence was *tampered with* (bad signature, broken hash
  chain, root mismatch).
* `FormatError`: input is *malformed* (unparseable, oversized, out of range).
* `VerificationFailed`: a check *ran and failed* (the evidence is authentic
  but shows a violation or does not match).
* `CheckUnavailable`: a check *could not run* (a missing checkpoint); reports
  show it as skipped with its reason, never as a pass.

Messages follow "what: expected X, got Y, at Z". The CLI prints
`diagnostics()` as one line and exits with `exit_code`.
"""

from __future__ import annotations

__all__ = [
    "CheckUnavailable",
    "ComputeWatchError",
    "FormatError",
    "InfeasibleRunError",
    "IntegrityError",
    "ParameterError",
    "VerificationFailed",
]


class ComputeWatchError(Exception):
    """Base of every error computewatch raises on purpose."""

    #: Process exit status the CLI uses for this error (DESIGN: 1 violation or
    #: failed verification, 2 bad input).
    exit_code: int = 2
    #: Short tag printed before the message.
    kind: str = "error"

    def __init__(self, message: str) -> None:
        """Create the error from one formatted message."""
        super().__init__(message)
        self.message = message

    def diagnostics(self) -> str:
        """Return the one-line message the CLI prints."""
        return f"{self.kind}: {' '.join(self.message.split())}"


class FormatError(ComputeWatchError):
    """Input is malformed: unparseable, oversized or of the wrong shape."""

    kind = "bad input"


class ParameterError(FormatError):
    """A numeric or configuration parameter is out of its valid range."""

    kind = "bad parameter"


class InfeasibleRunError(ParameterError):
    """The described training run cannot happen with the given resources.

    For example it needs more chips than the Prover owns (a "-" cell of the
    paper's Table 1).
    """

    kind = "infeasible run"


class IntegrityError(ComputeWatchError):
    """Evidence was tampered with: a signature, hash chain or root is wrong."""

    exit_code = 1
    kind = "tampering detected"


class VerificationFailed(ComputeWatchError):  # noqa: N818 - the name is the verdict
    """A check ran to completion and failed."""

    exit_code = 1
    kind = "verification failed"


class CheckUnavailable(ComputeWatchError):  # noqa: N818 - reads as a state, like the others
    """A check could not run (missing input); reported as skipped, not passed."""

    exit_code = 1
    kind = "check unavailable"
