"""Prover reports that claim given chip-log snapshots, for inspection tests (private).

Chip inspections (`inspect_chip`, `check_claims`) read a report's run id
and its snapshot claims only; `claims_report` builds a real, parseable
`ProverReport` holding those claims, with zero digests for the parts a
chip inspection never reads.

Example::

    >>> report = claims_report("run-1", "CW-1", [])
    >>> report.run_id, report.snapshots
    ('run-1', ())
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from computewatch.datacenter import REPORT_FORMAT, ClaimRecord, ProverReport

if TYPE_CHECKING:
    from collections.abc import Iterable

    from computewatch.chip import LogEntry

__all__ = ["claims_report"]

_ZERO = "sha256:" + "0" * 64


def claims_report(run_id: str, serial: str, entries: Iterable[LogEntry]) -> ProverReport:
    """A report of `run_id` claiming chip `serial`'s snapshot `entries` (other kinds skipped)."""
    claims = tuple(
        ClaimRecord(serial, e.seq, int(e.body["step"]), str(e.body["h"]), (0, 0), run_id)
        for e in entries
        if e.kind == "snapshot"
    )
    return ProverReport(
        format=REPORT_FORMAT,
        run_id=run_id,
        commitment=_ZERO,
        precommitment=_ZERO,
        code_hash=_ZERO,
        data_root=_ZERO,
        checkpoints=(),
        snapshots=claims,
    )
