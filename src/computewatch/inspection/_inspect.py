"""Inspecting one sampled chip (paper §3.1).

With the chip in hand, the inspector: (1) confirms its burned-in serial is
the one sampled, that the directory names the Prover as its owner and that
its identity key is the registered one; (2) asks for an attestation over a
fresh nonce and checks it against the registered key (firmware version,
counters, log size and head); (3) checks the tamper seal; (4) reads the
firmware log and verifies it entry by entry against the registered key and
the attested size and head; (5) checks that every snapshot hash the chip
logged appears in one of the Prover's reports: an unreported snapshot is
itself a finding. The runs the chip's log names are then verified in the
trusted cluster (`verify` in `_audit_steps`).

Example::

    >>> result = inspect_chip(folder, record, expected_owner="lab-a",
    ...                       nonce=nonce, reports=reports)  # doctest: +SKIP
    >>> result.passed, [f.kind for f in result.findings]  # doctest: +SKIP
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from computewatch.chip import (
    ATTESTATION_PAYLOAD_TYPE,
    Chip,
    read_chip_log,
    verify_attested_log,
)
from computewatch.crypto import verify_envelope
from computewatch.errors import (
    CheckUnavailable,
    ComputeWatchError,
    IntegrityError,
    VerificationFailed,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from computewatch.chip import LogEntry
    from computewatch.crypto import VerifyingKey
    from computewatch.datacenter import ProverReport
    from computewatch.inspection._receipts import HeldReceipts
    from computewatch.supplychain import HighWater, LocationCheck

__all__ = ["ChipInspection", "DirectoryRecord", "Evidence", "Finding", "inspect_chip"]


@dataclass(frozen=True, slots=True)
class DirectoryRecord:
    """What the chip-owner directory says of a chip."""

    serial: str
    owner: str
    public_key: VerifyingKey


class Evidence(enum.Enum):
    """What an error said about the evidence it was raised on (errors.py's four kinds)."""

    TAMPERED = "tampered"  # IntegrityError
    MALFORMED = "malformed"  # FormatError
    FAILED = "failed"  # VerificationFailed
    UNAVAILABLE = "unavailable"  # CheckUnavailable

    @classmethod
    def of(cls, error: ComputeWatchError) -> Evidence:
        """The kind of `error`; any other `ComputeWatchError` counts as malformed input."""
        if isinstance(error, IntegrityError):
            return cls.TAMPERED
        if isinstance(error, VerificationFailed):
            return cls.FAILED
        if isinstance(error, CheckUnavailable):
            return cls.UNAVAILABLE
        return cls.MALFORMED


@dataclass(frozen=True, slots=True)
class Finding:
    """Something an inspection found wrong.

    Attributes:
        serial: the chip.
        kind: ``serial-mismatch``, ``owner-mismatch``, ``key-substituted``,
            ``attestation``, ``seal-broken``, ``hidden-snapshot``,
            ``unreported-run``, ``chip-missing``,
            ``outside-licensed-region``; for a finding made from an
            error, the part that failed and what the error says of it:
            ``chip-tampered``/``chip-malformed`` (the chip would not open),
            ``log-tampered``/``log-malformed``, ``transcript-tampered``,
            ``transcript-malformed``, ``verification-unavailable``,
            ``report-malformed`` (a Prover report that does not parse;
            serial ``-``);
            ``verdict-mismatch`` (a verdict that is not its run's).
        detail: one line.
        evidence: for a finding made from an error, the error's kind.
    """

    serial: str
    kind: str
    detail: str
    evidence: Evidence | None = None

    @classmethod
    def from_error(cls, serial: str, part: str, error: ComputeWatchError) -> Finding:
        """A finding on `part` ("chip", "log", ...) that keeps `error`'s kind.

        >>> from computewatch.errors import IntegrityError
        >>> f = Finding.from_error("CW-1", "log", IntegrityError("seq 3: truncated line"))
        >>> f.kind, f.evidence.value
        ('log-tampered', 'tampered')
        """
        evidence = Evidence.of(error)
        return cls(serial, f"{part}-{evidence.value}", " ".join(error.message.split()), evidence)

    def to_json(self) -> dict[str, str]:
        """For reports."""
        out = {"serial": self.serial, "kind": self.kind, "detail": self.detail}
        if self.evidence is not None:
            out["evidence"] = self.evidence.value
        return out


@dataclass(frozen=True)
class ChipInspection:
    """The outcome of inspecting one chip.

    Attributes:
        serial: the chip.
        findings: what was wrong (empty if nothing).
        attestation: the verified attestation's payload.
        log_size: entries in its verified log.
        snapshots: (seq, run_id, step, h) of every logged snapshot.
        runs: run ids the log names (precommitments and snapshots).
    """

    serial: str
    findings: tuple[Finding, ...]
    attestation: dict[str, Any] = field(default_factory=dict)
    log_size: int = 0
    snapshots: tuple[tuple[int, str, int, str], ...] = ()
    runs: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """No findings."""
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        """For reports."""
        return {
            "serial": self.serial,
            "passed": self.passed,
            "findings": [f.to_json() for f in self.findings],
            "firmware": self.attestation.get("firmware"),
            "seal_intact": self.attestation.get("seal", {}).get("intact"),
            "log_size": self.log_size,
            "snapshots": [
                {"seq": s, "run_id": r, "step": t, "h": h} for s, r, t, h in self.snapshots
            ],
            "runs": list(self.runs),
        }


def _claimed(reports: Sequence[ProverReport]) -> set[tuple[str, int, str]]:
    return {(c.serial, c.seq, c.h) for rep in reports for c in rep.snapshots}


def _attestation_findings(
    att: dict[str, Any], serial: str, nonce: bytes, min_firmware: int
) -> list[Finding]:
    found = []
    if att.get("nonce") != nonce.hex() or att.get("serial") != serial:
        found.append(Finding(serial, "attestation", "nonce or serial in the attestation is wrong"))
    fw = att.get("firmware") or {}
    if int(fw.get("v", 0)) < min_firmware:
        found.append(
            Finding(
                serial, "attestation", f"firmware v{fw.get('v')} below the required v{min_firmware}"
            )
        )
    if not att.get("seal", {}).get("intact", False):
        found.append(Finding(serial, "seal-broken", "the tamper-evident seal was opened"))
    return found


def _snapshot_findings(
    entries: Sequence[LogEntry],
    serial: str,
    reports: Sequence[ProverReport],
    findings: list[Finding],
) -> tuple[list[tuple[int, str, int, str]], list[str]]:
    """The log's snapshots and runs; an unreported snapshot is a finding."""
    claimed = _claimed(reports)
    snapshots = []
    runs: list[str] = []
    for entry in entries:
        run = entry.body.get("run_id")
        if entry.kind in ("precommit", "snapshot") and run not in runs:
            runs.append(str(run))
        if entry.kind == "snapshot":
            item = (entry.seq, str(run), int(entry.body.get("step", -1)), str(entry.body.get("h")))
            snapshots.append(item)
            if (serial, entry.seq, item[3]) not in claimed:
                findings.append(
                    Finding(
                        serial,
                        "hidden-snapshot",
                        f"log entry seq {entry.seq} (run {run!r}, step {item[2]}) is in no report",
                    )
                )
    return snapshots, runs


def _history_findings(
    entries: Sequence[LogEntry],
    serial: str,
    att: Mapping[str, Any],
    earlier: Mapping[str, Any] | None,
    elapsed_ms: int | None,
) -> list[Finding]:
    """Firmware history against the attested chip time; the attestation against an earlier one.

    With ``elapsed_ms`` (the Verifier's own time since ``earlier``) the chip
    clock's advance is checked against it and an update's age is bounded by it.
    """
    from computewatch.inspection._evidence import (  # noqa: PLC0415 - _evidence imports Finding
        check_chip_clock,
        check_firmware_history,
        compare_attestations,
    )

    clock = (att.get("chip_time") or {}).get("clock_ms")
    since = None
    if earlier is not None and elapsed_ms is not None:
        size = (earlier.get("log") or {}).get("size")
        since = (size, elapsed_ms) if isinstance(size, int) and not isinstance(size, bool) else None
    found = check_firmware_history(
        entries,
        serial=serial,
        inspection_clock_ms=clock if isinstance(clock, int) else None,
        trusted_since=since,
    )
    if earlier is not None:
        found.extend(compare_attestations(earlier, att, serial=serial))
        if elapsed_ms is not None:
            found.extend(check_chip_clock(earlier, att, serial=serial, elapsed_ms=elapsed_ms))
    return found


def _high_water_findings(mark: HighWater, att: Mapping[str, Any], serial: str) -> list[Finding]:
    """The fresh attestation against the registry's high-water mark for the chip."""
    from computewatch.inspection._evidence import compare_attestations  # noqa: PLC0415

    if mark.serial != serial:
        return [Finding(serial, "high-water-foreign", f"the mark is chip {mark.serial!r}'s")]
    return [
        replace(f, detail=f"{f.detail} (registry high-water: log entry {mark.log_index})")
        for f in compare_attestations(mark.as_attestation(), att, serial=serial)
    ]


def _receipt_findings(
    entries: Sequence[LogEntry], held: HeldReceipts, serial: str
) -> list[Finding]:
    """Every snapshot logged as waiting for a receipt holds one for that very entry."""
    from computewatch.inspection._receipts import check_receipts  # noqa: PLC0415

    waited = [e for e in entries if e.kind == "snapshot" and e.body.get("receipt_log")]
    return check_receipts(waited, held.receipts, held.trusted, held.origin, serial=serial)


def inspect_chip(
    folder: Path,
    record: DirectoryRecord,
    *,
    expected_owner: str,
    nonce: bytes,
    reports: Sequence[ProverReport],
    min_firmware: int = 1,
    location: LocationCheck | None = None,
    earlier: Mapping[str, Any] | None = None,
    elapsed_ms: int | None = None,
    high_water: HighWater | None = None,
    receipts: HeldReceipts | None = None,
) -> ChipInspection:
    """Inspect the chip in `folder` against its directory record and the Prover's reports.

    ``reports`` are parsed Prover reports (`ProverReport.from_dict`): a
    malformed report is the caller's finding, never an exception here.

    ``location``, the chip's latest location check if it has a licensed
    region, is a finding unless it proved the chip inside.
    ``earlier`` is an attestation the Verifier holds from before (delivery,
    the last inspection, or the registry's high-water mark): a counter, log
    size or reset count lower now is a finding (``state-rolled-back``). The
    log's firmware history is checked too (no update during a run or just
    before this inspection). ``elapsed_ms`` is the Verifier's own time
    since it took ``earlier``: a chip clock that ran further is
    ``chip-clock-jump`` (set forward by its owner), and an update logged
    since then is judged by it rather than by the chip clock.
    ``high_water`` is the registry's mark for the chip (its newest logged
    entry, `RegistryClient.high_water`): an attested log size, ``log`` or
    ``firmware`` counter or reset count below it is ``state-rolled-back``.
    """
    serial = record.serial
    findings: list[Finding] = []
    if location is not None and (location.serial != serial or not location.inside):
        findings.append(Finding(serial, "outside-licensed-region", location.summary))
    if record.owner != expected_owner:
        findings.append(
            Finding(
                serial,
                "owner-mismatch",
                f"directory owner {record.owner!r}, inspected at {expected_owner!r}",
            )
        )
    try:
        chip = Chip.open(folder, read_only=True)  # inspecting never writes the evidence
    except ComputeWatchError as e:  # a truncated log or broken seal says tampered
        findings.append(Finding.from_error(serial, "chip", e))
        return ChipInspection(serial, tuple(findings))
    with chip:
        if chip.serial != serial:
            findings.append(
                Finding(serial, "serial-mismatch", f"burned-in serial is {chip.serial!r}")
            )
        if chip.public_key != record.public_key:
            findings.append(
                Finding(
                    serial, "key-substituted", "the chip's identity key is not the registered one"
                )
            )
        try:
            env = chip.attest(nonce)
            verified = verify_envelope(
                env,
                {record.public_key.key_id: record.public_key},
                payload_type=ATTESTATION_PAYLOAD_TYPE,
            )
            att = json.loads(verified.payload)
        except ComputeWatchError as e:
            evidence = Evidence.of(e)
            findings.append(Finding(serial, "attestation", " ".join(e.message.split()), evidence))
            return ChipInspection(serial, tuple(findings))
        findings.extend(_attestation_findings(att, serial, nonce, min_firmware))
        try:
            log_path = chip.log_path
            envelopes = read_chip_log(log_path) if log_path.exists() else []
            entries = verify_attested_log(envelopes, att, record.public_key, serial)
        except ComputeWatchError as e:
            findings.append(Finding.from_error(serial, "log", e))
            return ChipInspection(serial, tuple(findings), attestation=att)
    snapshots, runs = _snapshot_findings(entries, serial, reports, findings)
    findings.extend(_history_findings(entries, serial, att, earlier, elapsed_ms))
    if high_water is not None:
        findings.extend(_high_water_findings(high_water, att, serial))
    if receipts is not None:
        findings.extend(_receipt_findings(entries, receipts, serial))
    return ChipInspection(
        serial,
        tuple(findings),
        attestation=att,
        log_size=len(entries),
        snapshots=tuple(snapshots),
        runs=tuple(runs),
    )
