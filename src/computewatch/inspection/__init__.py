"""Inspections and audits (paper §3, §3.1, Appendix D).

Per monitoring period and Prover: draw the chip sample with randomness
neither party controls alone (`draw_sample`), inspect each sampled chip
(`inspect_chip`), have the trusted cluster verify every run the chips' logs
name and evaluate the rules on it (`audit_prover`), and write the report
(`write_report`).

Example::

    >>> from computewatch.inspection import commit_nonce
    >>> str(commit_nonce("verifier", bytes(32))).startswith("sha256:")
    True
"""

from computewatch.inspection._audit import (
    ChipDirectory,
    ProverAudit,
    ProverSubmission,
    audit_prover,
)
from computewatch.inspection._evidence import (
    check_claims,
    check_firmware_history,
    check_run_against_transcript,
    check_snapshot_rate,
    compare_attestations,
    expected_snapshots,
)
from computewatch.inspection._inspect import (
    ChipInspection,
    DirectoryRecord,
    Evidence,
    Finding,
    inspect_chip,
)
from computewatch.inspection._receipts import check_receipts
from computewatch.inspection._report import AuditPlan, ReportPaths, detection_curve, write_report
from computewatch.inspection._sampling import SampleDraw, commit_nonce, draw_sample, verify_draw

__all__ = [
    "AuditPlan",
    "ChipDirectory",
    "ChipInspection",
    "DirectoryRecord",
    "Evidence",
    "Finding",
    "ProverAudit",
    "ProverSubmission",
    "ReportPaths",
    "SampleDraw",
    "audit_prover",
    "check_claims",
    "check_firmware_history",
    "check_receipts",
    "check_run_against_transcript",
    "check_snapshot_rate",
    "commit_nonce",
    "compare_attestations",
    "detection_curve",
    "draw_sample",
    "expected_snapshots",
    "inspect_chip",
    "verify_draw",
    "write_report",
]
