"""An audit of one Prover for one monitoring period (paper §3, Appendix D).

`audit_prover` draws the period's sample from the Prover's chips in the
directory (commit-reveal, `draw_sample`), inspects every sampled chip
(`inspect_chip`), and has the trusted cluster verify, and evaluate the rules
on, every run those chips' logs name (`cluster_verify`). A run a sampled
chip worked on but for which the Prover has no report is a finding; so is
any inspection finding; so is any failed check or violated rule. The
result, `ProverAudit`, is compliant only if there is none.

Example::

    >>> audit = audit_prover(submission, directory, sample_size=3, period="p",
    ...                      cluster_key=key, workdir=work)  # doctest: +SKIP
    >>> audit.compliant  # doctest: +SKIP
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from computewatch.errors import CheckUnavailable, ComputeWatchError
from computewatch.inspection._inspect import ChipInspection, DirectoryRecord, Finding, inspect_chip
from computewatch.inspection._sampling import SampleDraw, commit_nonce, draw_sample
from computewatch.verification import ChipInput, ClusterJob, Verdict, cluster_verify, write_verdict

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from computewatch.crypto import Signer

__all__ = ["ChipDirectory", "ProverAudit", "ProverSubmission", "audit_prover"]


class ChipDirectory(Protocol):
    """What an audit needs from the chip-owner directory."""

    def chips_of(self, owner: str) -> list[str]:
        """Serials of the chips the directory says `owner` holds."""
        ...

    def record(self, serial: str) -> DirectoryRecord | None:
        """The directory's record of `serial`."""
        ...

    def checkpoint_root(self) -> bytes:
        """The root hash of the registry's current signed checkpoint."""
        ...


@dataclass(frozen=True)
class ProverSubmission:
    """What a Prover hands over for the period.

    Attributes:
        name: the Prover (the directory's owner id).
        reports: run id -> (report path, transcript folder).
        chips: serial -> the chip's folder (physical access at inspection).
        nonce: the Prover's sampling nonce (revealed at inspection).
        declared: run id -> declarations (``reported``, ``approvals``).
    """

    name: str
    reports: Mapping[str, tuple[Path, Path]]
    chips: Mapping[str, Path]
    nonce: bytes
    declared: Mapping[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProverAudit:
    """The outcome of auditing one Prover.

    Attributes:
        prover: the Prover.
        draw: the sample and how it was drawn.
        inspections: one per sampled chip.
        findings: inspection findings plus unreported runs.
        verdicts: run id -> the trusted cluster's verdict.
        verdict_files: run id -> the signed verdict file.
    """

    prover: str
    draw: SampleDraw
    inspections: tuple[ChipInspection, ...]
    findings: tuple[Finding, ...]
    verdicts: dict[str, Verdict]
    verdict_files: dict[str, str]

    @property
    def compliant(self) -> bool:
        """No finding, every verdict passed, every rule complied."""
        return not self.findings and all(v.passed for v in self.verdicts.values())

    def to_json(self) -> dict[str, Any]:
        """For the audit report."""
        return {
            "prover": self.prover,
            "compliant": self.compliant,
            "sample": self.draw.to_json(),
            "inspections": [i.to_json() for i in self.inspections],
            "findings": [f.to_json() for f in self.findings],
            "verdicts": {run: v.to_json() for run, v in self.verdicts.items()},
            "verdict_files": self.verdict_files,
        }


def _mismatch(run: str, verdict: Verdict, report: dict[str, Any], serial: str) -> Finding | None:
    """A finding unless `verdict` is the verdict of `run` (its id and its report's commitment)."""
    claimed = str(report.get("commitment", ""))
    if verdict.run_id == run and verdict.commitment == claimed:
        return None
    return Finding(
        serial,
        "verdict-mismatch",
        f"the verdict filed under run {run!r} is the verdict of run {verdict.run_id!r} "
        f"(commitment {verdict.commitment[:19]}…, report {claimed[:19]}…)",
    )


def _read_reports(submission: ProverSubmission) -> dict[str, dict[str, Any]]:
    """Each run's report; an unreadable one claims nothing (its chips' snapshots are hidden)."""
    reports: dict[str, dict[str, Any]] = {}
    for run_id, (report_path, _) in submission.reports.items():
        try:
            reports[run_id] = json.loads(report_path.read_text())
        except (OSError, ValueError):
            reports[run_id] = {}
    return reports


def audit_prover(
    submission: ProverSubmission,
    directory: ChipDirectory,
    *,
    sample_size: int,
    period: str,
    cluster_key: Signer,
    workdir: Path,
    rules: Path | None = None,
    budget: float = 0.05,
    max_compute: float | None = None,
    strict: bool = True,
    verifier_nonce: bytes | None = None,
    progress: Callable[[str], None] | None = None,
) -> ProverAudit:
    """Sample, inspect and verify one Prover (see the module docs)."""
    say = progress or (lambda _msg: None)
    workdir.mkdir(parents=True, exist_ok=True)
    v_nonce = verifier_nonce or secrets.token_bytes(32)
    # commitments are exchanged before the period; reveals happen now
    v_commit = commit_nonce("verifier", v_nonce)
    p_commit = commit_nonce("prover", submission.nonce)
    candidates = directory.chips_of(submission.name)
    draw = draw_sample(
        candidates,
        min(sample_size, len(candidates)),
        verifier_nonce=v_nonce,
        verifier_commitment=v_commit,
        prover_nonce=submission.nonce,
        prover_commitment=p_commit,
        registry_root=directory.checkpoint_root(),
        period=period,
    )
    say(f"{submission.name}: sampled {len(draw.chips)} of {len(candidates)} chips")
    reports = _read_reports(submission)
    inspections: list[ChipInspection] = []
    findings: list[Finding] = []
    runs: dict[str, list[ChipInput]] = {}
    for serial in draw.chips:
        record = directory.record(serial)
        folder = submission.chips.get(serial)
        if record is None or folder is None:
            findings.append(
                Finding(serial, "chip-missing", "the Prover did not present the sampled chip")
            )
            continue
        say(f"{submission.name}: inspecting chip {serial}")
        result = inspect_chip(
            folder,
            record,
            expected_owner=submission.name,
            nonce=secrets.token_bytes(16),
            reports=list(reports.values()),
        )
        inspections.append(result)
        findings.extend(result.findings)
        key_file = workdir / f"{serial}.pub"
        if not key_file.exists():
            record.public_key.save(key_file)
        for run in result.runs:
            runs.setdefault(run, []).append(ChipInput(serial, key_file, folder / "nvram.log"))
    verdicts: dict[str, Verdict] = {}
    files: dict[str, str] = {}
    for run, chips in sorted(runs.items()):
        if run not in submission.reports:
            findings.append(
                Finding(
                    chips[0].serial, "unreported-run", f"run {run!r} on sampled chips has no report"
                )
            )
            continue
        report_path, transcript = submission.reports[run]
        say(f"{submission.name}: trusted cluster verifying run {run!r}")
        job = ClusterJob(
            transcript=transcript,
            report=report_path,
            chips=tuple(chips),
            budget=budget,
            max_compute=max_compute,
            rules=rules,
            declared=dict(submission.declared.get(run, {})),
        )
        try:
            envelope, verdict = cluster_verify(job, key=cluster_key, strict=strict)
        except ComputeWatchError as e:  # keeps the kind: tampered, malformed or unavailable
            part = "verification" if isinstance(e, CheckUnavailable) else "transcript"
            findings.append(Finding.from_error(chips[0].serial, part, e))
            continue
        mismatch = _mismatch(run, verdict, reports.get(run, {}), chips[0].serial)
        if mismatch is not None:
            findings.append(mismatch)
            continue
        out = workdir / f"verdict-{submission.name}-{run}.json"
        write_verdict(out, envelope)
        verdicts[run] = verdict
        files[run] = str(out)
    return ProverAudit(
        prover=submission.name,
        draw=draw,
        inspections=tuple(inspections),
        findings=tuple(findings),
        verdicts=verdicts,
        verdict_files=files,
    )
