"""Clocks for firmware: the wall clock, or one a test or simulation drives.

Firmware reads time only through a `Clock`, so snapshot timing can be tested
over simulated chip-days without sleeping (STYLE: inject the clock).

Example::

    >>> from computewatch.chip import ManualClock
    >>> clock = ManualClock(start=0.0)
    >>> clock.advance(86_400.0)
    >>> clock.now()
    86400.0
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from computewatch.errors import ParameterError

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """A source of time in seconds since the Unix epoch (UTC)."""

    def now(self) -> float:
        """Return the current time in seconds."""
        ...


class SystemClock:
    """Wall-clock time that never goes backwards.

    The time is the wall clock read once at construction plus the
    *monotonic* time elapsed since, so setting the host's clock back (to
    make a snapshot interval look shorter) has no effect on firmware.
    """

    def __init__(self) -> None:
        """Anchor the clock to the wall clock now."""
        self._wall = time.time()
        self._mono = time.monotonic()

    def now(self) -> float:
        """Return the current time in seconds."""
        return self._wall + (time.monotonic() - self._mono)


class ManualClock:
    """A clock that moves only when told to; for tests and simulations."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        """Start the clock at ``start`` seconds."""
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        """Return the clock's current time."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (never backwards)."""
        if not seconds >= 0:
            msg = f"ManualClock.advance: expected seconds >= 0, got {seconds!r}"
            raise ParameterError(msg)
        with self._lock:
            self._now += float(seconds)
