"""When firmware snapshots: a Poisson process in chip time and in work done (paper §4).

At every optimizer step the firmware asks `PoissonScheduler.poll`. It draws
fresh bits from the *secure element's* random number generator and takes a
snapshot with probability ``1 - exp(-(f * dt + g))``, where ``f`` is the
rate per chip-day, ``dt`` the time since the previous poll and ``g`` the
rate per optimizer step (the firmware counts the steps itself). The
decisions at successive polls are independent, so snapshots form a Poisson
process in time and in work. Nothing is scheduled in advance: there is no
"next snapshot time" anywhere for the Prover to read, and the bits that
decide come from outside anything the Prover seeds (Python's, NumPy's or
PyTorch's generators play no part).

The host does not own time here. ``dt`` is the larger of what the host
clock and the secure element's own clock (`SecureElement.read_clock`: the
TPM's clock, the file element's monotonic clock) say has passed, so a
Prover who slows, pauses, steps or rewinds the host clock cannot lower the
snapshot rate, and the per-step part ``g`` does not look at any clock.

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
from computewatch.errors import ParameterError

if TYPE_CHECKING:
    from computewatch.chip._clock import Clock
    from computewatch.chip._interface import SecureElement

__all__ = ["SECONDS_PER_DAY", "PoissonScheduler"]

SECONDS_PER_DAY = 86_400.0
_DRAW_BITS = 53
_MAX_PER_KSTEP = 1000.0  # at most one snapshot per step on average


class PoissonScheduler:
    """Decides, at each poll, whether the firmware snapshots now."""

    def __init__(
        self,
        rate_per_day: float,
        se: SecureElement,
        clock: Clock,
        *,
        rate_per_kstep: float = 0.0,
    ) -> None:
        """A scheduler of ``rate_per_day`` per chip-day and ``rate_per_kstep`` per 1,000 steps."""
        self._rate = positive("snapshot rate (per day)", rate_per_day) / SECONDS_PER_DAY
        if not 0.0 <= rate_per_kstep <= _MAX_PER_KSTEP:
            msg = (
                f"snapshot rate (per 1,000 steps): expected 0-{_MAX_PER_KSTEP:g}, "
                f"got {rate_per_kstep!r}"
            )
            raise ParameterError(msg)
        self._per_step = float(rate_per_kstep) / 1000.0
        self._se = se
        self._clock = clock
        self._last = clock.now()
        self._chip_last = se.read_clock()

    @property
    def rate_per_day(self) -> float:
        """Expected snapshots per chip-day."""
        return self._rate * SECONDS_PER_DAY

    @property
    def rate_per_kstep(self) -> float:
        """Expected snapshots per 1,000 optimizer steps (besides the time-driven ones)."""
        return self._per_step * 1000.0

    def _uniform(self) -> float:
        """A uniform draw in [0, 1) from the secure element's randomness."""
        bits = int.from_bytes(self._se.random_bytes(8), "big") >> (64 - _DRAW_BITS)
        return bits / float(1 << _DRAW_BITS)

    def _elapsed(self) -> float:
        """Seconds since the last poll: the larger of the host's and the element's say."""
        now = self._clock.now()
        host_dt = max(0.0, now - self._last)
        self._last = now
        chip = self._se.read_clock()
        chip_dt = 0.0
        if chip.reset_count == self._chip_last.reset_count:
            chip_dt = max(0, chip.clock_ms - self._chip_last.clock_ms) / 1000.0
        self._chip_last = chip
        return max(host_dt, chip_dt)

    def poll(self) -> bool:
        """Return whether to snapshot now (at most one snapshot per poll = per step)."""
        hazard = self._rate * self._elapsed() + self._per_step
        if hazard == 0.0:
            return False
        return self._uniform() < -math.expm1(-hazard)
