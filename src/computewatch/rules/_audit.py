"""A rule file's demand on step audits: a higher audit fraction near a threshold (ADR 0037).

A regime may want runs close to a reporting threshold checked harder than
the Verifier's default, since a lie there moves a run across it. The rule
file's optional ``audit`` block says so::

    audit:
      fraction: 0.2      # audit each step with this probability (0 < f <= 1)
      min_steps: 400     # for runs of at least this many optimizer steps

The Verifier audits at ``max(policy.audit_fraction, fraction)`` for a run
of at least `min_steps` steps (`verify_transcript`; a run's step count is
the committed one, known before any audit is drawn). A step count is the
stand-in for training compute here: at the fixed batch and model of a
transcript the two are proportional.

Example::

    >>> demand = parse_audit("rules.yaml", {"fraction": 0.2, "min_steps": 400})
    >>> demand.fraction_for(480), demand.fraction_for(100)
    (0.2, 0.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from computewatch.errors import FormatError

__all__ = ["AuditDemand", "parse_audit"]

_KEYS = ("fraction", "min_steps")
_MAX_STEPS = 10**12


@dataclass(frozen=True, slots=True)
class AuditDemand:
    """The audit fraction a rule file demands for runs of at least `min_steps` steps."""

    fraction: float
    min_steps: int = 0

    def fraction_for(self, steps: int) -> float:
        """The demanded fraction for a run of `steps` steps (0 below `min_steps`)."""
        return self.fraction if steps >= self.min_steps else 0.0


def parse_audit(where: str, doc: object) -> AuditDemand:
    """Read the ``audit`` block (`FormatError` naming `where` and the field)."""
    at = f"{where} field 'audit'"
    if not isinstance(doc, dict):
        msg = f"{at}: expected a mapping with fraction and min_steps, got {type(doc).__name__}"
        raise FormatError(msg)
    extra = sorted(str(k) for k in doc if k not in _KEYS)
    if extra:
        msg = f"{at}.{extra[0]:.40}: unknown key; expected one of {', '.join(_KEYS)}"
        raise FormatError(msg)
    fraction = doc.get("fraction")
    if (
        not isinstance(fraction, int | float)
        or isinstance(fraction, bool)
        or not math.isfinite(fraction)
        or not 0 < fraction <= 1
    ):
        msg = f"{at}.fraction: expected a number in (0, 1], got {fraction!r:.60}"
        raise FormatError(msg)
    steps = doc.get("min_steps", 0)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 0 <= steps <= _MAX_STEPS:
        msg = f"{at}.min_steps: expected an integer in [0, {_MAX_STEPS}], got {steps!r:.60}"
        raise FormatError(msg)
    return AuditDemand(float(fraction), steps)
