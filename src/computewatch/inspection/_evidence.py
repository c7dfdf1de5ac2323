"""Checks of chip evidence that trust nothing the host told the chip (pure functions).

Each function takes verified log entries (`verify_attested_log`), plain
values from a transcript or a report, and returns `Finding` objects; none
reads files or talks to anything, so the verifier, the inspection and the
attack corpus call the same code.

* `check_run_against_transcript`: the code hash, precommitment and step
  numbers the chip logged agree with what the transcript claims, and the
  host's step numbers agree with the steps the firmware counted itself.
* `check_snapshot_rate`: a run has about as many scheduled snapshots as its
  steps and its chip time (the secure element's clock) call for.
* `check_claims`: across all of a Prover's reports for a period, every
  logged snapshot is claimed by exactly one run, no claim names a snapshot
  that was not logged, and every run a log names is reported.
* `check_firmware_history`: no firmware update during a run, nor shortly
  before an inspection; every snapshot names the firmware it ran under.
* `compare_attestations`: a chip attested at delivery (or at the last
  inspection, or the registry's high-water mark) and now: nothing that only
  grows has shrunk, nothing fixed has changed.
* `check_chip_clock`: the chip clock advanced no more between an earlier
  attestation and now than the Verifier's own clock allows (the Prover, as
  the TPM's owner, can move its clock forward with TPM2_ClockSet).

Example::

    >>> check_claims({}, [])
    []
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from computewatch.chip import SECONDS_PER_DAY
from computewatch.inspection._inspect import Finding
from computewatch.verification import run_mismatches

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from computewatch.chip import LogEntry
    from computewatch.datacenter import ProverReport

__all__ = [
    "check_chip_clock",
    "check_claims",
    "check_firmware_history",
    "check_run_against_transcript",
    "check_snapshot_rate",
    "compare_attestations",
    "expected_snapshots",
]

#: Chip milliseconds before an inspection in which a firmware update is a finding.
QUIET_BEFORE_INSPECTION_MS = 7 * 24 * 3600 * 1000
#: How much faster than the Verifier's clock a chip clock may run (TPM clocks drift).
CLOCK_DRIFT = 0.15
#: And by how much more it may lead (the Verifier's clock readings are not instants).
CLOCK_SLACK_MS = 3600 * 1000
#: False-alarm rate of the snapshot-count test per run.
RATE_ALPHA = 1e-6


def _snapshots(entries: Sequence[LogEntry], run_id: str | None = None) -> list[LogEntry]:
    return [
        e
        for e in entries
        if e.kind == "snapshot" and (run_id is None or e.body.get("run_id") == run_id)
    ]


def check_run_against_transcript(
    entries: Sequence[LogEntry],
    *,
    serial: str,
    run_id: str,
    code_hash: str,
    precommitment: str,
    steps: int,
) -> list[Finding]:
    """What chip ``serial`` logged of ``run_id`` against its transcript's claims.

    Findings: ``precommitment-mismatch`` (the run's logged precommitment is
    not the transcript's, or the run id carries two), ``code-hash-mismatch``
    (the code registered or snapshotted is not the transcript's),
    ``step-mismatch`` (a snapshot's step is outside the run, or the host's
    step numbers do not advance with the steps the firmware counted). The
    verifier runs the same check (`verify_transcript`'s ``chip-run`` checks).
    """
    return [
        Finding(serial, kind, detail)
        for kind, detail in run_mismatches(
            entries,
            run_id=run_id,
            code_hash=code_hash,
            precommitment=precommitment,
            steps=steps,
        )
    ]


def expected_snapshots(
    entries: Sequence[LogEntry], *, run_id: str, rate_per_day: float, rate_per_kstep: float
) -> tuple[float, int]:
    """Expected scheduled snapshots of ``run_id`` from its counted steps and chip time.

    Returns (expected, observed). Steps are the firmware's own counts (the
    largest ``fw_steps`` of each registration), time is the secure
    element's clock between each registration and its last snapshot.
    """
    regs = {e.seq: e for e in entries if e.kind == "register" and e.body.get("run_id") == run_id}
    steps: dict[int, int] = defaultdict(int)
    span_ms: dict[int, int] = defaultdict(int)
    observed = 0
    for e in _snapshots(entries, run_id):
        if e.body.get("trigger") != "schedule":
            continue
        observed += 1
        reg_seq = e.body.get("register_seq")
        if not isinstance(reg_seq, int) or reg_seq not in regs:
            continue
        fw = e.body.get("fw_steps")
        if isinstance(fw, int):
            steps[reg_seq] = max(steps[reg_seq], fw)
        start, now = regs[reg_seq].chip_time, e.chip_time
        if start and now and start.get("resets") == now.get("resets"):
            span_ms[reg_seq] = max(span_ms[reg_seq], int(now["clock_ms"]) - int(start["clock_ms"]))
    hazard = sum(steps.values()) * rate_per_kstep / 1000.0
    hazard += sum(span_ms.values()) / 1000.0 / SECONDS_PER_DAY * rate_per_day
    return hazard, observed


def check_snapshot_rate(
    entries: Sequence[LogEntry],
    *,
    serial: str,
    run_id: str,
    rate_per_day: float,
    rate_per_kstep: float,
    alpha: float = RATE_ALPHA,
) -> list[Finding]:
    """``too-few-snapshots`` if the run's scheduled snapshots fall below the Poisson bound.

    The steps and chip time a run's snapshots report are themselves only
    known up to the last snapshot, so the test is conservative: a Prover
    who suppressed snapshots also suppressed the evidence of the steps
    after them; the transcript's step count (`check_run_against_transcript`)
    covers the rest.
    """
    mean, observed = expected_snapshots(
        entries, run_id=run_id, rate_per_day=rate_per_day, rate_per_kstep=rate_per_kstep
    )
    if mean <= 0 or math.isnan(mean):
        return []
    from scipy.stats import poisson  # noqa: PLC0415 - slow to import; only this check needs it

    p = float(poisson.cdf(observed, mean))
    if p < alpha:
        return [
            Finding(
                serial,
                "too-few-snapshots",
                f"run {run_id!r}: {observed} scheduled snapshots where its steps and chip time "
                f"call for {mean:.1f} (P = {p:.1e})",
            )
        ]
    return []


def check_claims(
    logs: Mapping[str, Sequence[LogEntry]], reports: Sequence[ProverReport]
) -> list[Finding]:
    """One snapshot, one claim: across every report of a period, against every chip's log.

    ``logs`` maps serial to verified entries; ``reports`` are parsed Prover
    reports (`ProverReport`: their run ids and snapshot claims are read).
    Findings: ``hidden-snapshot`` (claimed by no report), ``double-claim``
    (claimed by more than one run or twice), ``phantom-claim`` (a claim of a
    snapshot no log holds), ``unreported-run`` (a run a log names with no
    report).
    """
    found: list[Finding] = []
    claims, claimants = _tally(reports)
    reported_runs = {r.run_id for r in reports}
    logged: set[tuple[str, int, str]] = set()
    for serial, entries in sorted(logs.items()):
        runs: list[str] = []
        for e in entries:
            run = e.body.get("run_id")
            if e.kind in ("precommit", "register", "snapshot") and str(run) not in runs:
                runs.append(str(run))
            if e.kind != "snapshot":
                continue
            key = (serial, e.seq, str(e.body.get("h")))
            logged.add(key)
            if claims[key] == 0:
                found.append(
                    Finding(
                        serial, "hidden-snapshot", f"log seq {e.seq} (run {run!r}) is in no report"
                    )
                )
            elif claims[key] > 1:
                found.append(
                    Finding(
                        serial,
                        "double-claim",
                        f"log seq {e.seq} is claimed {claims[key]} times (runs {claimants[key]})",
                    )
                )
        found.extend(
            Finding(serial, "unreported-run", f"the log names run {run!r}, which no report covers")
            for run in runs
            if reports and run not in reported_runs
        )
    found.extend(
        Finding(key[0], "phantom-claim", f"a report claims seq {key[1]}, not in the log")
        for key in sorted(set(claims) - logged)
        if key[0] in logs
    )
    return found


def _tally(
    reports: Sequence[ProverReport],
) -> tuple[Counter[tuple[str, int, str]], dict[tuple[str, int, str], list[str]]]:
    """How often each (serial, seq, h) is claimed, and by which runs."""
    claims: Counter[tuple[str, int, str]] = Counter()
    claimants: dict[tuple[str, int, str], list[str]] = defaultdict(list)
    for rep in reports:
        for c in rep.snapshots:
            key = (c.serial, c.seq, c.h)
            claims[key] += 1
            claimants[key].append(rep.run_id)
    return claims, claimants


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def check_firmware_history(
    entries: Sequence[LogEntry],
    *,
    serial: str,
    inspection_clock_ms: int | None = None,
    quiet_ms: int = QUIET_BEFORE_INSPECTION_MS,
    trusted_since: tuple[int, int] | None = None,
) -> list[Finding]:
    """Firmware changes the log shows: none during a run, none just before an inspection.

    ``inspection_clock_ms`` is the chip clock the inspection's attestation
    reported. The Prover can move that clock forward (TPM2_ClockSet), so
    ``trusted_since`` bounds an update's age by time it cannot move: the
    log size of an attestation the Verifier took earlier and the Verifier's
    own milliseconds since then; an update logged at or after that size
    happened within that time, whatever the chip clock says. Findings:
    ``update-during-run`` (an update between a run's registration and its
    last snapshot), ``update-before-inspection``, ``firmware-unknown`` (a
    snapshot that does not name the firmware it ran under, or names another
    than the one booted).
    """
    found: list[Finding] = []
    updates = [e for e in entries if e.kind == "firmware-update"]
    running: dict[str, Any] | None = None
    first_reg: dict[str, int] = {}
    last_snap: dict[str, int] = {}
    for e in entries:
        if e.kind == "boot":
            running = e.body.get("firmware")
        elif e.kind == "register":
            first_reg.setdefault(str(e.body.get("run_id")), e.seq)
        elif e.kind == "snapshot":
            run = str(e.body.get("run_id"))
            last_snap[run] = e.seq
            fw = e.body.get("fw")
            if not isinstance(fw, dict) or running is None or fw.get("v") != running.get("v"):
                found.append(
                    Finding(
                        serial,
                        "firmware-unknown",
                        f"snapshot seq {e.seq}: logs firmware {fw!r}, booted {running!r}",
                    )
                )
    for run, start in sorted(first_reg.items()):
        end = last_snap.get(run)
        found.extend(
            Finding(
                serial,
                "update-during-run",
                f"firmware updated at seq {u.seq} while run {run!r} ran (seq {start}..{end})",
            )
            for u in updates
            if end is not None and start < u.seq < end
        )
    if updates and updates[-1].seq > 0:
        found.extend(
            _recent_update(updates[-1], serial, inspection_clock_ms, quiet_ms, trusted_since)
        )
    return found


def _recent_update(
    last: LogEntry,
    serial: str,
    clock_ms: int | None,
    quiet_ms: int,
    trusted_since: tuple[int, int] | None,
) -> list[Finding]:
    """The latest update, if it is younger than ``quiet_ms`` by the chip's or trusted time."""
    t = (last.chip_time or {}).get("clock_ms")
    if clock_ms is not None and isinstance(t, int) and 0 <= clock_ms - t < quiet_ms:
        age = f"{(clock_ms - t) / 3_600_000:.1f} chip-hours"
    elif trusted_since is not None and last.seq >= trusted_since[0] and trusted_since[1] < quiet_ms:
        age = f"at most {trusted_since[1] / 3_600_000:.1f} hours by the Verifier's clock"
    else:
        return []
    detail = f"firmware updated at seq {last.seq}, {age} before the inspection"
    return [Finding(serial, "update-before-inspection", detail)]


def check_chip_clock(
    before: Mapping[str, Any],
    now: Mapping[str, Any],
    *,
    serial: str,
    elapsed_ms: int,
    drift: float = CLOCK_DRIFT,
    slack_ms: int = CLOCK_SLACK_MS,
) -> list[Finding]:
    """An earlier attestation's chip clock and now's, against the Verifier's elapsed time.

    The secure element's clock only runs forward, but its owner can set it
    ahead (TPM2_ClockSet; the file element's ticker is the host's), which
    would age every entry in the log. A chip clock that advanced more than
    ``elapsed_ms * (1 + drift) + slack_ms`` since ``before`` is
    ``chip-clock-jump``. A clock that advanced less (powered off, or a
    reset) ages nothing and is not a finding here.
    """
    b = _int((before.get("chip_time") or {}).get("clock_ms"))
    n = _int((now.get("chip_time") or {}).get("clock_ms"))
    if b < 0 or n < 0:
        return []
    allowed = max(0, elapsed_ms) * (1.0 + drift) + slack_ms
    if n - b <= allowed:
        return []
    detail = (
        f"the chip clock advanced {(n - b) / 3_600_000:.1f} h since the earlier attestation, "
        f"the Verifier's {elapsed_ms / 3_600_000:.1f} h (set forward?)"
    )
    return [Finding(serial, "chip-clock-jump", detail)]


def compare_attestations(
    before: Mapping[str, Any], now: Mapping[str, Any], *, serial: str
) -> list[Finding]:
    """An earlier attestation (delivery, last inspection, registry high-water) against now.

    Findings: ``identity-changed`` (serial or key), ``state-rolled-back``
    (a counter, the log size or the element's reset count is lower than
    before: an older copy of the chip's state was restored),
    ``firmware-downgraded``.
    """
    found = [
        Finding(serial, "identity-changed", f"{field} differs from before")
        for field in ("serial", "public_key")
        if before.get(field) is not None and before.get(field) != now.get(field)
    ]
    grown: list[tuple[str, int, int]] = []
    b_counters = before.get("counters") or {}
    n_counters = now.get("counters") or {}
    for name, value in sorted(b_counters.items()):
        grown.append((f"counter {name}", _int(value), _int(n_counters.get(name, 0))))
    grown.append(
        (
            "log size",
            _int((before.get("log") or {}).get("size", 0)),
            _int((now.get("log") or {}).get("size", 0)),
        )
    )
    b_time, n_time = before.get("chip_time") or {}, now.get("chip_time") or {}
    if "resets" in b_time:
        grown.append(("element resets", _int(b_time.get("resets")), _int(n_time.get("resets", -1))))
    for what, old, new in grown:
        if new < old:
            found.append(Finding(serial, "state-rolled-back", f"{what} was {old}, is now {new}"))
    b_fw, n_fw = before.get("firmware") or {}, now.get("firmware") or {}
    if _int(n_fw.get("v", 0)) < _int(b_fw.get("v", 0)):
        found.append(
            Finding(serial, "firmware-downgraded", f"v{b_fw.get('v')} before, v{n_fw.get('v')} now")
        )
    return found
