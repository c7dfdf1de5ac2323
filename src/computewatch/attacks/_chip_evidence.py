"""Attacks on what chip evidence takes from the host (issue 16), each with its honest twin.

Every attack is built on a real provisioned chip (file secure element,
signed firmware, logged snapshots; no training, so a trial costs
milliseconds) and checked by the real defence: `inspect_chip` (the log
against the count the chip attests under a fresh nonce), `Chip.boot`, or
the pure evidence checks of `computewatch.inspection` that the verifier
runs. `honest` builds the same chip without the cheat, so the benchmark
measures false findings over the same trials.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from scipy.stats import poisson

from computewatch.attacks._elements import advance_element_clock, current_elements
from computewatch.attacks._harness import SCALE, Attempt, Detection, Scale, maker_key
from computewatch.chip import (
    Chip,
    FileSecureElement,
    ManualClock,
    check_attestation,
    read_chip_log,
    sign_firmware,
    verify_attested_log,
)
from computewatch.crypto import Digest, json_digest
from computewatch.errors import ComputeWatchError
from computewatch.inspection import (
    DirectoryRecord,
    Finding,
    check_firmware_history,
    check_run_against_transcript,
    inspect_chip,
)
from computewatch.testing import claims_report

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    import numpy as np

    from computewatch.attacks._harness import HonestRun
    from computewatch.crypto import Envelope
    from computewatch.datacenter import ProverReport
    from computewatch.verification import VerificationPolicy

__all__ = [
    "CodeHashLie",
    "EmptiedLog",
    "FirmwareUpdateBeforeInspection",
    "HugeFirmwareVersion",
    "PrecommitmentLie",
    "SlowedHostClock",
    "StepNumberLie",
    "TruncatedLog",
]

_NONCE = bytes(range(7, 39))
_CODE = str(json_digest({"code": "train.py"}))
_STEP_S = 60.0
_SLOW_STEPS = 1000
_SLOW_KSTEP = 10.0  # expected snapshots per 1,000 steps from work
_UPDATE_AT = 4  # the step after which the cheat boots new firmware
_SLOW_PER_DAY = 14.4  # and 0.01 per chip-minute step from time


def _commitment(trial: int, run: str = "run-a") -> str:
    return str(json_digest({"trial": trial, "run": run}))


def _image(version: int = 2, **kw: Any) -> Any:
    return sign_firmware(
        name="fw", version=version, code=b"fw%d" % version, chipmaker=maker_key(), **kw
    )


class _Chipset:
    """A chip with a simulated element clock (chip-minutes per step), host clock apart.

    On the file element the element's clock is a `ManualClock`; on a TPM
    (`use_elements`) it is the TPM's own clock, moved forward by
    TPM2_ClockSet while the chip is open.
    """

    def __init__(self, folder: Path, serial: str) -> None:
        self.folder = folder
        self.serial = serial
        self.chip_clock = ManualClock(start=0.0)
        self.host = ManualClock()
        self.uri = current_elements().uri(folder, serial)
        self._open: Chip | None = None
        maker = maker_key().verifying_key
        Chip.provision(folder, serial, maker, se_uri=self.uri, clock=self.host).close()

    def open(self, receipts: Callable[[Envelope], Any] | None = None) -> Chip:
        if self.uri is not None:
            self._open = Chip.open(self.folder, clock=self.host, receipts=receipts)
            return self._open
        se = FileSecureElement.open(
            self.folder / "se", ticker=lambda: int(self.chip_clock.now() * 1e9)
        )
        return Chip(self.folder, se, clock=self.host, receipts=receipts)

    def tick(self, chip_s: float = _STEP_S, host_s: float = _STEP_S) -> None:
        self.chip_clock.advance(chip_s)
        self.host.advance(host_s)
        if self.uri is not None and self._open is not None:
            self._open.flush()  # the firmware worker is done with the TPM's one context
            advance_element_clock(self._open._se, chip_s)  # noqa: SLF001 - the simulated chip time


def _logged(
    folder: Path,
    serial: str,
    trial: int,
    *,
    runs: Sequence[str] = ("run-a",),
    steps: int = 20,
    registered_code: str = _CODE,
    step_claim: int = 1,
    forced: bool = False,
) -> _Chipset:
    """Boot v2; per run: precommit, register, train `steps` steps (about 0.63 snapshots a step).

    The host passes ``step * step_claim`` as the step number (1: the truth);
    ``forced`` adds one inspector-triggered snapshot at the end of each run.
    """
    cs = _Chipset(folder, serial)
    with cs.open() as chip:
        chip.boot(_image(snapshot_rate_per_kstep=1000.0))
        for run in runs:
            chip.precommit(run, Digest.parse(_commitment(trial, run)))
            w = torch.zeros(8)
            chip.register(run, {"w": w}, Digest.parse(registered_code), folder.parent / "omega")
            for step in range(1, steps + 1):
                cs.tick()
                w.add_(1.0)
                chip.on_step(step * step_claim)
            if forced:
                chip.snapshot_now(steps * step_claim)
    return cs


def _entries(folder: Path, serial: str) -> tuple[list[Any], dict[str, Any]]:
    """The log as the Verifier reads it: against a fresh attestation, read-only."""
    with Chip.open(folder, read_only=True) as chip:
        claims = check_attestation(chip.attest(_NONCE), chip.public_key, serial, _NONCE)
        key = chip.public_key
    path = folder / "nvram.log"
    envelopes = read_chip_log(path) if path.exists() else []
    return verify_attested_log(envelopes, claims, key, serial), claims


def _reports(
    entries: Sequence[Any], serial: str, runs: Sequence[str] | None = None
) -> list[ProverReport]:
    """One report per run (every run the log names by default), claiming its snapshots."""
    by_run: dict[str, list[Any]] = {}
    for e in entries:
        if e.kind == "snapshot":
            by_run.setdefault(str(e.body["run_id"]), []).append(e)
    names = list(by_run) if runs is None else list(runs)
    return [claims_report(r, serial, by_run.get(r, [])) for r in names]


def _from_findings(findings: Sequence[Finding]) -> Detection:
    kinds = tuple(sorted({f.kind for f in findings}))
    return Detection(bool(findings), kinds, detail="; ".join(f.detail for f in findings)[:200])


def _from_error(e: ComputeWatchError) -> Detection:
    detail = " ".join(e.message.split())[:200]
    return Detection(detected=True, checks=(type(e).__name__,), detail=detail)


class _EvidenceAttack:
    """Base: `create` builds the cheat, `honest` the same chip without it, `detect` checks."""

    name = ""
    threat = ""
    expected: tuple[str, ...] = ()
    needs_base = False

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Build the attack on a fresh chip (no training run, no scale)."""
        del bases, scale  # chip-level attacks train no run
        return self.build(workdir / f"{self.name}-{trial}" / "chip", trial, cheat=True)

    def honest(self, workdir: Path, trial: int) -> Attempt:
        """The same chip and evidence without the cheat (for false findings)."""
        return self.build(workdir / f"{self.name}-honest-{trial}" / "chip", trial, cheat=False)

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """Build the chip and what the Verifier is shown (subclasses)."""
        raise NotImplementedError

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """Run the defence on the attempt."""
        del policy, rng  # the chip-level checks take no verification policy
        return self.check(attempt)

    def check(self, attempt: Attempt) -> Detection:
        """The defence (subclasses)."""
        raise NotImplementedError


class _Inspected(_EvidenceAttack):
    """Checked by `inspect_chip` with every snapshot reported."""

    def check(self, attempt: Attempt) -> Detection:
        """`inspect_chip`: the log against the count attested under a fresh nonce."""
        d = attempt.data
        result = inspect_chip(
            d["folder"],
            d["record"],
            expected_owner="lab-a",
            nonce=_NONCE,
            reports=d["reports"],
            earlier=d.get("earlier"),
            elapsed_ms=d.get("elapsed_ms"),
        )
        return _from_findings(result.findings)


def _found(cs: _Chipset) -> dict[str, Any]:
    entries, _ = _entries(cs.folder, cs.serial)
    with Chip.open(cs.folder, read_only=True) as chip:
        record = DirectoryRecord(cs.serial, "lab-a", chip.public_key)
    return {"folder": cs.folder, "record": record, "reports": _reports(entries, cs.serial)}


class TruncatedLog(_Inspected):
    """The newest log entries deleted, so the last snapshots vanish."""

    name = "truncated-log"
    threat = "§4: a chip log cut short (newest entries removed) to hide snapshots"
    expected = ("log-tampered",)

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """Cut 1-3 entries off the end after the Prover's report is drawn up."""
        cs = _logged(folder, f"CW-TL-{trial}", trial, steps=8)
        data = _found(cs)
        if cheat:
            log = folder / "nvram.log"
            lines = log.read_bytes().splitlines(keepends=True)
            log.write_bytes(b"".join(lines[: -1 - trial % 3]))
            kept = len(lines) - 1 - trial % 3
            data["reports"] = [  # and report only what is left
                replace(r, snapshots=tuple(c for c in r.snapshots if c.seq < kept))
                for r in data["reports"]
            ]
        return Attempt(data=data)


class EmptiedLog(_Inspected):
    """The whole log emptied (or deleted): no snapshot, nothing to report."""

    name = "emptied-log"
    threat = "§4: a chip log emptied so the chip looks unused"
    expected = ("log-tampered",)

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """Empty or delete the log file and report nothing."""
        cs = _logged(folder, f"CW-EL-{trial}", trial, steps=4)
        data = _found(cs)
        if cheat:
            log = folder / "nvram.log"
            if trial % 2:
                log.unlink()
            else:
                log.write_bytes(b"")
            data["reports"] = []
        return Attempt(data=data)


class SlowedHostClock(_EvidenceAttack):
    """The host clock slowed tenfold, paused or stepped back, to thin out snapshots."""

    name = "slowed-host-clock"
    threat = "§4: the host clock slowed so fewer snapshots fall per unit of training"
    expected = ("schedule-held",)

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """1,000 chip-minute steps; the host clock runs at a tenth of the speed (or stops)."""
        cs = _Chipset(folder, f"CW-SC-{trial}")
        host_s = (_STEP_S / 10, 0.0)[trial % 2] if cheat else _STEP_S
        taken = 0
        with cs.open() as chip:
            chip.boot(
                _image(snapshot_rate_per_day=_SLOW_PER_DAY, snapshot_rate_per_kstep=_SLOW_KSTEP)
            )
            chip.register("run-a", {"w": torch.zeros(4)}, Digest.parse(_CODE), folder.parent / "o")
            for step in range(1, _SLOW_STEPS + 1):
                cs.tick(host_s=host_s)
                taken += chip.on_step(step)
        return Attempt(data={"taken": taken})

    def check(self, attempt: Attempt) -> Detection:
        """The attack fails if the count stays above the honest rate's 0.1 % quantile."""
        per_step = 0.01 + _SLOW_KSTEP / 1000.0
        low = float(poisson.ppf(0.001, per_step * _SLOW_STEPS * 0.99))
        taken = int(attempt.data["taken"])
        held = taken >= low
        detail = f"{taken} snapshots in {_SLOW_STEPS} steps (honest 0.1 % bound {low:g})"
        if not attempt.data.get("honest_view"):
            return Detection(held, ("schedule-held",) if held else (), detail=detail)
        return Detection(not held, () if held else ("too-few-snapshots",), detail=detail)

    def honest(self, workdir: Path, trial: int) -> Attempt:
        """An honest chip: a finding is a count below the bound (a false alarm)."""
        attempt = super().honest(workdir, trial)
        attempt.data["honest_view"] = True
        return attempt


class _Transcript(_EvidenceAttack):
    """Checked by `check_run_against_transcript` against what the transcript claims."""

    def check(self, attempt: Attempt) -> Detection:
        """The logged code hash, precommitment and steps against the transcript's."""
        d = attempt.data
        entries, _ = _entries(d["folder"], d["serial"])
        return _from_findings(
            check_run_against_transcript(
                entries,
                serial=d["serial"],
                run_id="run-a",
                code_hash=d["code_hash"],
                precommitment=d["precommitment"],
                steps=d["steps"],
            )
        )


class StepNumberLie(_Transcript):
    """The host passes the firmware step numbers it did not train (skipping ahead)."""

    name = "step-number-lie"
    threat = "§4: the chip logs whatever step number the host passes"
    expected = ("step-mismatch",)

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """Claim step 2k (or 3k) at the k-th step; the transcript claims the inflated count."""
        claim = 2 + trial % 2 if cheat else 1
        _logged(folder, f"CW-SN-{trial}", trial, step_claim=claim)
        return Attempt(
            data={
                "folder": folder,
                "serial": f"CW-SN-{trial}",
                "code_hash": _CODE,
                "precommitment": _commitment(trial),
                "steps": 20 * claim,
            }
        )


class CodeHashLie(_Transcript):
    """The chip ran other code than the transcript claims."""

    name = "code-hash-lie"
    threat = "§4: the code hash logged with each snapshot is never compared with the transcript"
    expected = ("code-hash-mismatch",)

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """Register code B; the transcript names code A."""
        code = str(json_digest({"code": "secret.py", "trial": trial})) if cheat else _CODE
        _logged(folder, f"CW-CH-{trial}", trial, steps=4, registered_code=code)
        return Attempt(
            data={
                "folder": folder,
                "serial": f"CW-CH-{trial}",
                "code_hash": _CODE,
                "precommitment": _commitment(trial),
                "steps": 4,
            }
        )


class PrecommitmentLie(_Transcript):
    """A transcript that claims another precommitment than the one the chip logged."""

    name = "precommitment-lie"
    threat = "§4: a run id bound to one precommitment, claimed under another"
    expected = ("precommitment-mismatch",)

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """Precommit X on the chip (a second precommitment is refused); claim Y."""
        cs = _logged(folder, f"CW-PL-{trial}", trial, steps=4)
        if cheat:
            with cs.open() as chip:
                chip.boot(_image(snapshot_rate_per_kstep=1000.0))
                with contextlib.suppress(ComputeWatchError):  # refused: the run id is bound
                    chip.precommit("run-a", Digest.parse(_commitment(trial + 10_000)))
        claimed = _commitment(trial + 10_000) if cheat else _commitment(trial)
        return Attempt(
            data={
                "folder": folder,
                "serial": f"CW-PL-{trial}",
                "code_hash": _CODE,
                "precommitment": claimed,
                "steps": 4,
            }
        )


class HugeFirmwareVersion(_EvidenceAttack):
    """A signed firmware with a huge version: hours of counter climb, a chip left between."""

    name = "huge-firmware-version"
    threat = "§4: anti-rollback climb one increment at a time (slow, bricks if cut)"
    expected = ("IntegrityError",)

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """A chip on v2, and a genuine signed image of a version far beyond."""
        _logged(folder, f"CW-HV-{trial}", trial, steps=1)
        version = 1_000_000 - trial if cheat else 3
        return Attempt(data={"folder": folder, "image": _image(version)})

    def check(self, attempt: Attempt) -> Detection:
        """`Chip.boot` refuses before the counter moves (and the chip still boots v2)."""
        folder = attempt.data["folder"]
        with Chip.open(folder) as chip:
            try:
                chip.boot(attempt.data["image"])
            except ComputeWatchError as e:
                chip.boot(_image(2, snapshot_rate_per_kstep=1000.0))
                return _from_error(e)
        return Detection(detected=False, detail="the chip booted the image")


class FirmwareUpdateBeforeInspection(_EvidenceAttack):
    """New firmware booted just before an inspection (and during a run)."""

    name = "update-before-inspection"
    threat = "§4: firmware swapped shortly before an inspection or during a run"
    expected = ("update-before-inspection", "update-during-run")

    def build(self, folder: Path, trial: int, *, cheat: bool) -> Attempt:
        """Mid-run update to v3 a chip-hour before the inspection (honest: updated 30 days ago)."""
        serial = f"CW-UB-{trial}"
        cs = _Chipset(folder, serial)
        with cs.open() as chip:
            chip.boot(_image(2, snapshot_rate_per_kstep=1000.0))
            if not cheat:
                chip.boot(_image(3, snapshot_rate_per_kstep=1000.0))
                cs.tick(chip_s=30 * 86_400.0)
            chip.precommit("run-a", Digest.parse(_commitment(trial)))
            chip.register("run-a", {"w": torch.zeros(4)}, Digest.parse(_CODE), folder.parent / "o")
            for step in range(1, 9):
                cs.tick()
                chip.on_step(step)
                if cheat and step == _UPDATE_AT:
                    chip.boot(_image(3, snapshot_rate_per_kstep=1000.0))
                    chip.register(
                        "run-a", {"w": torch.zeros(4)}, Digest.parse(_CODE), folder.parent / "o"
                    )
            chip.snapshot_now(9)
            cs.tick(chip_s=3600.0)
        return Attempt(data={"folder": folder, "serial": serial})

    def check(self, attempt: Attempt) -> Detection:
        """`check_firmware_history` against the inspection's attested chip time."""
        d = attempt.data
        entries, claims = _entries(d["folder"], d["serial"])
        now = int(claims["chip_time"]["clock_ms"])
        return _from_findings(
            check_firmware_history(entries, serial=d["serial"], inspection_clock_ms=now)
        )
