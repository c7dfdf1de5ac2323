"""The audit's evidence steps: inspect, verify, rules (after `sample`).

* `inspect`: every sampled chip of the Prover's submission is inspected
  (`inspect_chip`) against its holding at the committed checkpoint (owner,
  registered key), with an attestation nonce derived from the Verifier's
  revealed nonce (rerunnable, and unknown to the Prover before the reveal);
  each chip's fresh attestation is also held against the registry's
  high-water mark for it (`RegistryClient.high_water`: the newest log
  entry the chip posted for a receipt), so restored chip state is
  ``state-rolled-back``, and every snapshot logged as waiting for a
  receipt must have its own beside its ω copy in the submission, proving
  that very entry in the registry's log (`check_receipts`);
  every run's Prover report is read through its parser (`ProverReport`),
  and one that does not parse is a ``report-malformed`` finding naming the
  file and the field (the Prover's fault, never a crash of the audit);
* `verify`: every run the sampled chips' logs name goes to the trusted
  cluster (`cluster_verify`) under exactly the plan's verification policy
  (every field; the verdict records it) and with its rule file; a run with
  no submitted transcript is a finding;
* `rules`: every verdict file is read back under the cluster's key and
  checked to be *the verdict of the run it is filed under*: its run id is
  that run's, its commitment is the commitment of that run's submitted
  report, and no two runs share a verdict. A verdict filed under another
  run (say a benign run's verdict copied over a rule-breaking run's) is
  refused as tampering (`IntegrityError`). The rule outcomes are then
  taken from the checked verdicts only.

Example::

    >>> inspect(folder, submissions, "lab-a")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from computewatch.crypto import VerifyingKey
from computewatch.datacenter import ProverReport
from computewatch.errors import ComputeWatchError, FormatError, IntegrityError
from computewatch.inspection._checkpoints import audit_registry
from computewatch.inspection._folder import AuditFolder, Submission, read_json, write_json
from computewatch.inspection._inspect import DirectoryRecord, Finding, inspect_chip
from computewatch.inspection._period import load_plan, plan_policy
from computewatch.inspection._receipts import HeldReceipts, receipts_beside
from computewatch.rules import load_rules
from computewatch.verification import (
    ChipInput,
    ClusterJob,
    cluster_verify,
    read_verdict,
    write_verdict,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from computewatch.crypto import Policy, Signer
    from computewatch.supplychain import HighWater

__all__ = ["check_verdicts", "inspect", "verify"]


def _derived(secret: bytes, label: str, n: int) -> bytes:
    return hashlib.sha256(b"computewatch/audit-derive/v1\x00" + secret + label.encode()).digest()[
        :n
    ]


def _sample_doc(folder: AuditFolder, prover: str) -> dict[str, Any]:
    doc = read_json(folder.step("sample", prover), "audit sample")
    if doc.get("prover") != prover:
        msg = f"audit sample {folder.step('sample', prover)}: for {doc.get('prover')!r:.40}"
        raise FormatError(msg)
    return doc


def _reports(sub: Submission) -> tuple[dict[str, ProverReport], list[Finding]]:
    """Each run's Prover report through its parser; a malformed one is a finding, not a report."""
    out, findings = {}, []
    for run, transcript in sub.runs.items():
        try:
            doc = read_json(transcript / "report.json", "Prover report")
            out[run] = ProverReport.from_dict(doc, f"run {run!r} report.json")
        except FormatError as e:
            findings.append(Finding.from_error("-", "report", e))
    return out, findings


def _commitment(reports: dict[str, ProverReport], run: str) -> str:
    report = reports.get(run)
    return report.commitment if report is not None else ""


def _registry_evidence(
    folder: AuditFolder, serials: list[str]
) -> tuple[dict[str, HighWater | None], tuple[Policy, str] | None, str]:
    """Each chip's high-water mark and the receipt trust, from the plan's live registry.

    A folder without a plan (an inspection run on its own) checks neither,
    and says so in the step's file.
    """
    if not folder.plan.exists():
        return {}, None, "no audit plan: high-water marks and receipts not checked"
    with audit_registry(folder) as registry:  # each chip's mark, receipt-proved
        marks = {s: registry.high_water(s) for s in serials}
        trust = (registry.policy, registry.origin)
    return marks, trust, f"high-water marks and receipts checked against {trust[1]}"


def inspect(folder: AuditFolder, submissions: Path, prover: str) -> dict[str, Any]:
    """Inspect the sampled chips (``inspect/PROVER.json``)."""
    sampled = _sample_doc(folder, prover)
    sub = Submission.load(submissions, prover)
    holdings = {h["serial"]: h for h in sampled["holdings"]}
    v_nonce = bytes.fromhex(sampled["draw"]["verifier_nonce"])
    typed, findings = _reports(sub)
    reports = list(typed.values())
    inspections = []
    marks, trust, registry_note = _registry_evidence(
        folder, [s for s in sampled["draw"]["chips"] if s in sub.chips]
    )
    snapshot_dirs = [run / "snapshots" for run in sub.runs.values()]
    for serial in sampled["draw"]["chips"]:
        folder_of_chip = sub.chips.get(serial)
        if folder_of_chip is None:
            findings.append(
                Finding(serial, "chip-missing", "the Prover did not present the sampled chip")
            )
            continue
        record = DirectoryRecord(
            serial, prover, VerifyingKey.from_raw(bytes.fromhex(holdings[serial]["key"]))
        )
        result = inspect_chip(
            folder_of_chip,
            record,
            expected_owner=prover,
            nonce=_derived(v_nonce, f"attest/{serial}", 16),
            reports=reports,
            high_water=marks.get(serial),
            receipts=(
                None
                if trust is None
                else HeldReceipts(receipts_beside(snapshot_dirs, serial), *trust)
            ),
        )
        inspections.append(result.to_json())
        findings.extend(result.findings)
    doc = {
        "prover": prover,
        "inspections": inspections,
        "findings": [f.to_json() for f in findings],
        "registry": registry_note,
    }
    write_json(folder.step("inspect", prover), doc)
    return doc


def verify(
    folder: AuditFolder,
    submissions: Path,
    prover: str,
    *,
    cluster_key: Signer,
    strict: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Verify every run the sampled chips name in the trusted cluster (``verify/PROVER.json``)."""
    say = progress or (lambda _m: None)
    plan = load_plan(folder)
    policy = plan_policy(folder, plan)
    sampled = _sample_doc(folder, prover)
    inspected = read_json(folder.step("inspect", prover), "audit inspection")
    sub = Submission.load(submissions, prover)
    reports, _ = _reports(sub)  # a malformed report is the inspect step's finding
    holdings = {h["serial"]: h for h in sampled["holdings"]}
    keys_dir = folder.root / "verdicts" / prover / "keys"
    runs: dict[str, list[ChipInput]] = {}
    for item in inspected["inspections"]:
        serial = item["serial"]
        key_file = keys_dir / f"{serial}.pub"
        if not key_file.exists():
            keys_dir.mkdir(parents=True, exist_ok=True)
            VerifyingKey.from_raw(bytes.fromhex(holdings[serial]["key"])).save(key_file)
        for run in item["runs"]:
            runs.setdefault(run, []).append(
                ChipInput(serial, key_file, sub.chips[serial] / "nvram.log")
            )
    rules = plan["verification"].get("rules")
    if rules is not None:
        load_rules(folder.root / rules)  # the Verifier's own file: a fault here is not a finding
    v_nonce = bytes.fromhex(sampled["draw"]["verifier_nonce"])
    filed: dict[str, Any] = {}
    findings = []
    for run, chips in sorted(runs.items()):
        if run not in sub.runs:
            findings.append(
                Finding(chips[0].serial, "unreported-run", f"run {run!r} has no transcript")
            )
            continue
        say(f"{prover}: trusted cluster verifying run {run!r} ({len(chips)} sampled chips)")
        job = ClusterJob(
            transcript=sub.runs[run],
            report=sub.runs[run] / "report.json",
            chips=tuple(chips),
            seed=int.from_bytes(_derived(v_nonce, f"segments/{run}", 8), "big"),
            rules=folder.root / rules if rules is not None else None,
            declared=dict(sub.declared.get(run, {"reported": False, "approvals": []})),
            policy=policy,
        )
        try:
            envelope, _verdict = cluster_verify(job, key=cluster_key, strict=strict)
        except ComputeWatchError as e:
            findings.append(
                Finding(chips[0].serial, "verification-unavailable", " ".join(e.message.split()))
            )
            continue
        out = folder.verdict(prover, run)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_verdict(out, envelope)
        filed[run] = {
            "verdict": folder.relative(out),
            "report_commitment": _commitment(reports, run),
        }
    doc = {"prover": prover, "runs": filed, "findings": [f.to_json() for f in findings]}
    write_json(folder.step("verify", prover), doc)
    return doc


def check_verdicts(
    folder: AuditFolder, submissions: Path, prover: str, cluster_pub: VerifyingKey
) -> dict[str, Any]:
    """Read every filed verdict back and bind it to its run (``rules/PROVER.json``).

    Raises:
        IntegrityError: A verdict not signed by the cluster, not the verdict
            of the run it is filed under, or one verdict filed for two runs.
    """
    filed = read_json(folder.step("verify", prover), "audit verification")
    sub = Submission.load(submissions, prover)
    reports, _ = _reports(sub)
    seen: dict[str, str] = {}
    out = {}
    for run, entry in sorted(filed.get("runs", {}).items()):
        path = folder.root / str(entry["verdict"])
        try:
            data = path.read_bytes()
        except OSError as e:
            msg = f"verdict {path}: cannot read ({e.strerror})"
            raise FormatError(msg) from e
        verdict = read_verdict(data, cluster_pub)
        expected = _commitment(reports, run)
        if verdict.run_id != run or verdict.commitment != expected:
            msg = (
                f"verdict {folder.relative(path)}: filed under run {run!r} (report commitment "
                f"{expected[:19]}…) but it is the verdict of run {verdict.run_id!r} "
                f"(commitment {verdict.commitment[:19]}…)"
            )
            raise IntegrityError(msg)
        if verdict.commitment in seen:
            msg = (
                f"verdict {folder.relative(path)}: the same transcript's verdict stands for "
                f"runs {seen[verdict.commitment]!r} and {run!r}"
            )
            raise IntegrityError(msg)
        seen[verdict.commitment] = run
        out[run] = {
            "verdict_file": folder.relative(path),
            "verdict": verdict.to_json(),
        }
    doc = {"prover": prover, "runs": out, "findings": filed.get("findings", [])}
    write_json(folder.step("rules", prover), doc)
    return doc
