"""When firmware snapshots: a Poisson process in clock time (paper §4).

At every optimizer step the firmware asks `PoissonScheduler.poll`. It draws
fresh bits from the *secure element's* random number generator and takes a
snapshot with probability ``1 - exp(-f * dt)``, where ``dt`` is the clock
time since the previous poll and ``f`` the rate per chip-day. The decisions
at successive polls are independent, so snapshots form a Poisson process of
rate ``f`` (observed at step boundaries). Nothing is scheduled in advance:
there is no "next snapshot time" anywhere for the Prover to read, and the
bits that decide come from outside anything the Prover seeds (Python's,
NumPy's or PyTorch's generators play no part).

Example::

    >>> from computewatch.chip import ManualClock, PoissonScheduler, provision_secure_element
    >>> se = provision_secure_element("file:se", "CW-0001")
    >>> clock = ManualClock()
    >>> sched = PoissonScheduler(0.1, se, clock)
    >>> sched.poll()  # no clock time has passed: probability 0
    False
    >>> clock.advance(1000 * 86400)  # 1000 chip-days at f = 0.1: probability 1 - e**-100
    >>> sched.poll()
    True
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from computewatch._validate import positive

if TYPE_CHECKING:
    from computewatch.chip._clock import Clock
    from computewatch.chip._interface import SecureElement

__all__ = ["SECONDS_PER_DAY", "PoissonScheduler"]

SECONDS_PER_DAY = 86_400.0
_DRAW_BITS = 53


class PoissonScheduler:
    """Decides, at each poll, whether the firmware snapshots now."""

    def __init__(self, rate_per_day: float, se: SecureElement, clock: Clock) -> None:
        """Start a scheduler of ``rate_per_day`` snapshots per chip-day."""
        self._rate = positive("snapshot rate (per day)", rate_per_day) / SECONDS_PER_DAY
        self._se = se
        self._clock = clock
        self._last = clock.now()

    @property
    def rate_per_day(self) -> float:
        """Expected snapshots per chip-day."""
        return self._rate * SECONDS_PER_DAY

    def _uniform(self) -> float:
        """A uniform draw in [0, 1) from the secure element's randomness."""
        bits = int.from_bytes(self._se.random_bytes(8), "big") >> (64 - _DRAW_BITS)
        return bits / float(1 << _DRAW_BITS)

    def poll(self) -> bool:
        """Return whether to snapshot now (at most one snapshot per poll)."""
        now = self._clock.now()
        dt = max(0.0, now - self._last)
        self._last = now
        if dt == 0.0:
            return False
        return self._uniform() < -math.expm1(-self._rate * dt)
