"""Inspections and audits (paper §3, §3.1, Appendix D).

Per monitoring period and Prover: draw the chip sample with randomness
neither party controls alone (`draw_sample`), inspect each sampled chip
(`inspect_chip`), have the trusted cluster verify every run the chips' logs
name and evaluate the rules on it, and write the report. The audit runs as
files, step by step against a live registry service (the `computewatch
audit` commands, and the demo through the same functions): `plan_audit`,
`commit`, `start`, `reveal`, `sample` (the commit-reveal order checked in
the registry's log, each checkpoint accepted under the plan's tlog-policy
and never older than one an earlier step accepted: `AuditTrust`,
`audit_registry`;
`check_commit_reveal`), `inspect`, `verify`, `check_verdicts` (each verdict
bound to the run it is filed under) and `write_folder_report` (JSON,
Markdown and a self-contained HTML page), over an `AuditFolder`.

Example::

    >>> from computewatch.inspection import commit_nonce
    >>> str(commit_nonce("verifier", bytes(32))).startswith("sha256:")
    True
"""

from typing import TYPE_CHECKING

from computewatch._lazy import lazy_exports

if TYPE_CHECKING:
    from computewatch.inspection._audit_steps import check_verdicts, inspect, verify
    from computewatch.inspection._checkpoints import AuditTrust, audit_registry
    from computewatch.inspection._commitments import (
        CommitRevealError,
        Reveals,
        check_commit_reveal,
        sample_request,
    )
    from computewatch.inspection._evidence import (
        check_chip_clock,
        check_claims,
        check_firmware_history,
        check_run_against_transcript,
        check_snapshot_rate,
        compare_attestations,
        expected_snapshots,
    )
    from computewatch.inspection._folder import AuditFolder, Submission
    from computewatch.inspection._folder_report import FOLDER_REPORT_FORMAT, write_folder_report
    from computewatch.inspection._html import render_html
    from computewatch.inspection._inspect import (
        ChipInspection,
        DirectoryRecord,
        Evidence,
        Finding,
        inspect_chip,
    )
    from computewatch.inspection._period import (
        commit,
        committed_checkpoint,
        load_plan,
        plan_audit,
        plan_policy,
        reveal,
        sample,
        start,
    )
    from computewatch.inspection._receipts import HeldReceipts, check_receipts, receipts_beside
    from computewatch.inspection._sampling import SampleDraw, commit_nonce, draw_sample, verify_draw

if not TYPE_CHECKING:  # every name is imported from its module on first use (ADR 0043)
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "check_verdicts": "computewatch.inspection._audit_steps",
            "inspect": "computewatch.inspection._audit_steps",
            "verify": "computewatch.inspection._audit_steps",
            "AuditTrust": "computewatch.inspection._checkpoints",
            "audit_registry": "computewatch.inspection._checkpoints",
            "CommitRevealError": "computewatch.inspection._commitments",
            "Reveals": "computewatch.inspection._commitments",
            "check_commit_reveal": "computewatch.inspection._commitments",
            "sample_request": "computewatch.inspection._commitments",
            "check_chip_clock": "computewatch.inspection._evidence",
            "check_claims": "computewatch.inspection._evidence",
            "check_firmware_history": "computewatch.inspection._evidence",
            "check_run_against_transcript": "computewatch.inspection._evidence",
            "check_snapshot_rate": "computewatch.inspection._evidence",
            "compare_attestations": "computewatch.inspection._evidence",
            "expected_snapshots": "computewatch.inspection._evidence",
            "AuditFolder": "computewatch.inspection._folder",
            "Submission": "computewatch.inspection._folder",
            "FOLDER_REPORT_FORMAT": "computewatch.inspection._folder_report",
            "write_folder_report": "computewatch.inspection._folder_report",
            "render_html": "computewatch.inspection._html",
            "ChipInspection": "computewatch.inspection._inspect",
            "DirectoryRecord": "computewatch.inspection._inspect",
            "Evidence": "computewatch.inspection._inspect",
            "Finding": "computewatch.inspection._inspect",
            "inspect_chip": "computewatch.inspection._inspect",
            "commit": "computewatch.inspection._period",
            "committed_checkpoint": "computewatch.inspection._period",
            "load_plan": "computewatch.inspection._period",
            "plan_audit": "computewatch.inspection._period",
            "plan_policy": "computewatch.inspection._period",
            "reveal": "computewatch.inspection._period",
            "sample": "computewatch.inspection._period",
            "start": "computewatch.inspection._period",
            "HeldReceipts": "computewatch.inspection._receipts",
            "check_receipts": "computewatch.inspection._receipts",
            "receipts_beside": "computewatch.inspection._receipts",
            "SampleDraw": "computewatch.inspection._sampling",
            "commit_nonce": "computewatch.inspection._sampling",
            "draw_sample": "computewatch.inspection._sampling",
            "verify_draw": "computewatch.inspection._sampling",
        },
    )

__all__ = [
    "FOLDER_REPORT_FORMAT",
    "AuditFolder",
    "AuditTrust",
    "ChipInspection",
    "CommitRevealError",
    "DirectoryRecord",
    "Evidence",
    "Finding",
    "HeldReceipts",
    "Reveals",
    "SampleDraw",
    "Submission",
    "audit_registry",
    "check_chip_clock",
    "check_claims",
    "check_commit_reveal",
    "check_firmware_history",
    "check_receipts",
    "check_run_against_transcript",
    "check_snapshot_rate",
    "check_verdicts",
    "commit",
    "commit_nonce",
    "committed_checkpoint",
    "compare_attestations",
    "draw_sample",
    "expected_snapshots",
    "inspect",
    "inspect_chip",
    "load_plan",
    "plan_audit",
    "plan_policy",
    "receipts_beside",
    "render_html",
    "reveal",
    "sample",
    "sample_request",
    "start",
    "verify",
    "verify_draw",
    "write_folder_report",
]
