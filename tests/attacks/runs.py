"""Honest runs for the attack tests that need their chip to have logged a snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from computewatch.attacks import HonestRun, run_on_chip

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["run_with_a_snapshot"]


def run_with_a_snapshot(
    root: Path, name: str, serial: str, *, attempts: int = 6, **kw: Any
) -> HonestRun:
    """`run_on_chip`, again on a fresh chip while the chip logged no snapshot.

    A chip's snapshot times are its own Poisson draw over the run's real
    time, and the test runs last about a second, so a run can log none
    (about 1 in 20 at the tiny scale); a test that compares against a
    snapshot then has nothing to compare.
    """
    for attempt in range(attempts):
        where = root if attempt == 0 else root / str(attempt)
        run = run_on_chip(where, name, serial if attempt == 0 else f"{serial}-{attempt}", **kw)
        if any(e.kind == "snapshot" for e in run.chip.log_entries()):
            return run
    pytest.fail(f"{attempts} runs in a row logged no snapshot")  # pragma: no cover
