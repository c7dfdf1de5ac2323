"""Check results and the verdict (what the trusted cluster outputs).

Every check returns a `CheckResult`: passed, failed or skipped (could not
run, with the reason), with a one-line detail and a few numbers, never data,
weights or hyperparameters. The `Verdict` collects them with the fraction
of training compute that was replayed; it passes only if no check failed
and at least one ran (an empty verification is not a pass).

Example::

    >>> r = CheckResult.ok("commitment", "root matches")
    >>> bool(r), r.status.value
    (True, 'pass')
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["VERDICT_FORMAT", "CheckResult", "CheckStatus", "Verdict"]

VERDICT_FORMAT = "computewatch-verdict/v1"
Number = int | float | str | bool


class CheckStatus(enum.StrEnum):
    """The outcome of one check."""

    PASS = "pass"  # noqa: S105 - a check outcome, not a password
    FAIL = "fail"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome.

    Attributes:
        name: the check, e.g. ``snapshot:CW-0001#17``.
        status: pass, fail or skipped.
        detail: one line: what was compared (numbers and hashes only).
        metrics: numbers behind the detail (distances, tolerances, steps).
    """

    name: str
    status: CheckStatus
    detail: str
    metrics: dict[str, Number] = field(default_factory=dict)

    @classmethod
    def ok(cls, name: str, detail: str, **metrics: Number) -> CheckResult:
        """A passed check."""
        return cls(name, CheckStatus.PASS, detail, dict(metrics))

    @classmethod
    def fail(cls, name: str, detail: str, **metrics: Number) -> CheckResult:
        """A failed check."""
        return cls(name, CheckStatus.FAIL, detail, dict(metrics))

    @classmethod
    def skipped(cls, name: str, reason: str) -> CheckResult:
        """A check that could not run (never counted as a pass)."""
        return cls(name, CheckStatus.SKIPPED, reason, {})

    @property
    def passed(self) -> bool:
        """Whether the check ran and passed."""
        return self.status is CheckStatus.PASS

    def __bool__(self) -> bool:
        """Truthiness is `passed`."""
        return self.passed

    def to_json(self) -> dict[str, Any]:
        """The JSON form in a verdict."""
        return {
            "name": self.name,
            "status": self.status.value,
            "detail": self.detail,
            "metrics": self.metrics,
        }


@dataclass(frozen=True)
class Verdict:
    """The outcome of verifying one transcript.

    Attributes:
        run_id: the run.
        commitment: the transcript commitment that was verified.
        checks: every check's result.
        replayed_steps: optimizer steps the verifier replayed.
        training_steps: optimizer steps of the run.
        isolation: how the trusted cluster was isolated (filled in by it).
        rules: each rule's id, kind and status (compliant, violation,
            not_applicable, error): the outcome only, never the facts.
        policy: the verification policy it was computed under
            (`VerificationPolicy.to_dict`).
    """

    run_id: str
    commitment: str
    checks: tuple[CheckResult, ...]
    replayed_steps: int
    training_steps: int
    isolation: dict[str, Any] = field(default_factory=dict)
    rules: tuple[dict[str, str], ...] = ()
    policy: dict[str, Any] = field(default_factory=dict)

    @property
    def compute_fraction(self) -> float:
        """Replayed steps as a fraction of the run's (same FLOPs per step)."""
        return self.replayed_steps / self.training_steps if self.training_steps else 0.0

    @property
    def failures(self) -> list[CheckResult]:
        """The checks that failed."""
        return [c for c in self.checks if c.status is CheckStatus.FAIL]

    @property
    def violations(self) -> list[dict[str, str]]:
        """Rules violated (or that could not be evaluated: fail closed)."""
        return [r for r in self.rules if r.get("status") in ("violation", "error")]

    @property
    def passed(self) -> bool:
        """No check failed, at least one passed, and no rule was violated."""
        return not self.failures and any(c.passed for c in self.checks) and not self.violations

    def __bool__(self) -> bool:
        """Truthiness is `passed`."""
        return self.passed

    def to_json(self) -> dict[str, Any]:
        """The verdict document (signed by the trusted cluster)."""
        return {
            "format": VERDICT_FORMAT,
            "run_id": self.run_id,
            "commitment": self.commitment,
            "verdict": "pass" if self.passed else "fail",
            "checks": [c.to_json() for c in self.checks],
            "replayed_steps": self.replayed_steps,
            "training_steps": self.training_steps,
            "compute_fraction": self.compute_fraction,
            "isolation": self.isolation,
            "rules": list(self.rules),
            "policy": self.policy,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Verdict:
        """Parse a verdict document (e.g. from the sandboxed child)."""
        return cls(
            run_id=str(doc["run_id"]),
            commitment=str(doc["commitment"]),
            checks=tuple(
                CheckResult(
                    str(c["name"]), CheckStatus(c["status"]), str(c["detail"]), dict(c["metrics"])
                )
                for c in doc["checks"]
            ),
            replayed_steps=int(doc["replayed_steps"]),
            training_steps=int(doc["training_steps"]),
            isolation=dict(doc.get("isolation", {})),
            rules=tuple(
                {"id": str(r["id"]), "kind": str(r["kind"]), "status": str(r["status"])}
                for r in doc.get("rules", [])
            ),
            policy=dict(doc.get("policy", {})),
        )
