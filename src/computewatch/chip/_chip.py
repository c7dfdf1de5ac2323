"""The emulated ML chip: firmware over a secure element (paper §4).

A `Chip` is a folder: ``chip.json`` (serial and secure-element URI),
``nvram.log`` (the firmware-only log) and, for the ``file:`` backend, the
sealed secure element in ``se/``. The training code talks to the chip
through four verbs:

* `Chip.boot` with a chipmaker-signed firmware image (anti-rollback enforced);
* `Chip.precommit` to log a commitment to a run's metadata and data order;
* `Chip.register` of the tensors that hold the chip's weight shard ω, with
  the hash of the training code;
* `Chip.on_step` at every optimizer step: the firmware's chance to snapshot.

A snapshot freezes the step only for a copy of ω into a host buffer; hashing
it, writing the copy to Prover storage (safetensors) and signing the log
entry run on a firmware worker thread, off the training's critical path.
The next `on_step` waits for that work (and, if receipts are required, for
the receipt server's acknowledgement) before training may go on: a chip that
cannot log stalls training with an error, it never trains on unlogged. That
pipeline is `computewatch.chip._snapshot.SnapshotPipeline`; the folder and
the sealed firmware state are `computewatch.chip._chip_folder`.

Inspectors use `Chip.attest` (a signed statement with their nonce) and
`Chip.log_entries` (the verified log).

Example::

    >>> import torch
    >>> from computewatch.chip import ManualClock, sign_firmware
    >>> from computewatch.crypto import SigningKey, json_digest
    >>> maker, clock = SigningKey.generate(), ManualClock()
    >>> chip = Chip.provision("chips/CW-0001", "CW-0001", maker.verifying_key, clock=clock)
    >>> image = sign_firmware(name="cw", version=1, code=b"fw", chipmaker=maker,
    ...                       snapshot_rate_per_day=86400.0)  # about one a second
    >>> _ = chip.boot(image)
    >>> shard = torch.zeros(4)
    >>> _ = chip.register("run-1", {"w": shard}, json_digest({"train.py": "v1"}), "snapshots")
    >>> for step in range(20):
    ...     shard += 1.0  # the training step
    ...     clock.advance(1.0)
    ...     _ = chip.on_step(step)
    >>> chip.flush()
    >>> 0 < len(chip.snapshots) <= 20
    True
    >>> chip.snapshots[0].path.parent.name
    'snapshots'
    >>> chip.close()
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from computewatch._validate import text
from computewatch.chip._attested import ATTESTATION_PAYLOAD_TYPE
from computewatch.chip._chip_folder import (
    DEFAULT_CAPACITY,
    LOG_FILE,
    create_chip_folder,
    open_chip_folder,
    read_state,
    write_state,
)
from computewatch.chip._chiplog import ChipLog, LogEntry
from computewatch.chip._clock import Clock, SystemClock
from computewatch.chip._eat import attestation_claims
from computewatch.chip._firmware import FirmwareImage, verify_firmware
from computewatch.chip._scheduler import PoissonScheduler
from computewatch.chip._snapshot import (
    ChipError,
    Registration,
    SnapshotPipeline,
    SnapshotRecord,
    SnapshotStalledError,
    describe_regions,
)
from computewatch.crypto import (
    Digest,
    Envelope,
    VerifyingKey,
    canonical_json,
    json_digest,
    sign_envelope,
)
from computewatch.errors import IntegrityError, ParameterError

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping

    import torch

    from computewatch.chip._interface import ChipSerial, SecureElement

__all__ = [
    "ATTESTATION_PAYLOAD_TYPE",
    "Chip",
    "ChipError",
    "SnapshotRecord",
    "SnapshotStalledError",
]

_REGIONS_DOMAIN = b"computewatch/regions/v1\x00"
#: The most versions one firmware update may skip (bounds the anti-rollback raise).
MAX_FIRMWARE_JUMP = 1024
_MIN_NONCE = 8
_MAX_NONCE = 256
_MAX_RUN_ID = 128


class Chip:
    """One emulated chip: its firmware, log and secure element."""

    def __init__(
        self,
        folder: Path,
        se: SecureElement,
        *,
        clock: Clock | None = None,
        receipts: Callable[[Envelope], Any] | None = None,
        receipt_timeout: float = 30.0,
        read_only: bool = False,
    ) -> None:
        """Use `provision` or `open`.

        ``receipts``, if given, is called with every signed snapshot entry and
        must return an acknowledgement (a receipt) once a Verifier-trusted
        server holds the entry durably, or raise; the chip keeps training
        stalled until it returns. Firmware whose image names its receipt log
        (`ReceiptLog`) refuses to register a run without ``receipts`` and
        checks each receipt itself: one that does not prove the entry just
        written under that log's key halts training. A ``read_only`` chip writes nothing (not
        its log, not its secure element): it attests and shows its log, as
        an inspection needs, and refuses to boot or train.
        """
        self._folder = folder
        self._se = se
        self._clock = clock or SystemClock()
        self._read_only = read_only
        state = self._state()
        self._log = ChipLog(folder / LOG_FILE, se, int(state["cap"]))
        # What the firmware itself holds of each run: the one precommitment a
        # run id is bound to, and the optimizer steps it counted since register.
        self._commitments: dict[str, str] = {}
        self._fw_steps = 0
        if read_only:
            self._log.load()
        else:
            for entry in self._log.recover():
                if entry.kind == "precommit":
                    self._commitments.setdefault(
                        str(entry.body.get("run_id")), str(entry.body.get("commitment"))
                    )
        self._firmware: FirmwareImage | None = None
        self._scheduler: PoissonScheduler | None = None
        self._pipeline = SnapshotPipeline(
            str(se.serial),
            self._log,
            self._now_us,
            receipts=receipts,
            receipt_timeout=receipt_timeout,
        )

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def provision(
        cls,
        folder: str | os.PathLike[str],
        serial: str,
        chipmaker: VerifyingKey,
        *,
        se_uri: str | None = None,
        capacity: int = DEFAULT_CAPACITY,
        clock: Clock | None = None,
    ) -> Chip:
        """Manufacture a chip: burn its serial, seal the chipmaker key (the fab's act)."""
        path = Path(folder)
        se = create_chip_folder(path, serial, chipmaker, se_uri=se_uri, capacity=capacity)
        return cls(path, se, clock=clock)

    @classmethod
    def open(
        cls,
        folder: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        receipts: Callable[[Envelope], Any] | None = None,
        receipt_timeout: float = 30.0,
        read_only: bool = False,
    ) -> Chip:
        """Open a provisioned chip; its log is verified against the secure element.

        With ``read_only`` (every inspection and verification) nothing is
        written and nothing is repaired: a torn, cut or emptied log is left
        as found, to be reported as tampering by `log_entries` or by
        whoever checks it against `attest`.
        """
        path = Path(folder)
        se = open_chip_folder(path)
        return cls(
            path,
            se,
            clock=clock,
            receipts=receipts,
            receipt_timeout=receipt_timeout,
            read_only=read_only,
        )

    def close(self) -> None:
        """Finish pending firmware work and release the secure element."""
        try:
            self.flush()
        finally:
            self._pipeline.shutdown()
            self._se.close()

    def __enter__(self) -> Self:
        """Use the chip as a context manager that closes it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the chip."""
        self.close()

    # -- identity ----------------------------------------------------------

    @property
    def serial(self) -> ChipSerial:
        """The burned-in serial."""
        return self._se.serial

    @property
    def public_key(self) -> VerifyingKey:
        """The identity public key."""
        return self._se.public_key

    @property
    def folder(self) -> Path:
        """The chip's folder."""
        return self._folder

    @property
    def log_path(self) -> Path:
        """The log file (readable by anyone)."""
        return self._folder / LOG_FILE

    @property
    def firmware(self) -> FirmwareImage | None:
        """The booted firmware, if any."""
        return self._firmware

    def _state(self) -> dict[str, Any]:
        return read_state(self._se)

    def _write_state(self, state: dict[str, Any]) -> None:
        write_state(self._se, state)

    def _now_us(self) -> int:
        return round(self._clock.now() * 1e6)

    @property
    def chipmaker_key(self) -> VerifyingKey:
        """The chipmaker key sealed in at manufacture."""
        return VerifyingKey.from_raw(bytes.fromhex(self._state()["maker"]))

    # -- firmware ----------------------------------------------------------

    def boot(self, firmware: Envelope | bytes | str) -> FirmwareImage:
        """Boot signed firmware; refuses unsigned, non-logging or rolled-back images."""
        self._require_writable()
        self._pipeline.wait_idle()  # the worker's pending entry first: one user of the element
        image = verify_firmware(firmware, self.chipmaker_key)
        floor = self._se.read_counter("firmware")
        if image.version < floor:
            msg = (
                f"chip S/N {self.serial}: firmware rollback refused (image {image.name} "
                f"v{image.version} is older than the anti-rollback floor v{floor})"
            )
            raise IntegrityError(msg)
        if image.version - floor > MAX_FIRMWARE_JUMP:
            # Refused before any counter moves: a signed image with a huge
            # version must not start a climb that takes hours on a TPM and,
            # cut short, leaves the chip between versions.
            msg = (
                f"chip S/N {self.serial}: firmware {image.name} v{image.version} jumps more "
                f"than {MAX_FIRMWARE_JUMP} versions over the anti-rollback floor v{floor}; "
                "refused (update through intermediate versions)"
            )
            raise IntegrityError(msg)
        state = self._state()
        previous = state.get("fw")
        self._se.raise_counter("firmware", image.version)
        current = {"name": image.name, "v": image.version, "h": str(image.code_hash)}
        if previous != current:
            self._log.append(
                "firmware-update",
                {"from": previous, "to": current},
                self._now_us(),
            )
            state["fw"] = current
            self._write_state(state)
        boots = self._se.increment_counter("boot")
        self._log.append("boot", {"firmware": current, "boot_count": boots}, self._now_us())
        self._firmware = image
        self._pipeline.receipt_log = image.receipt_log
        self._scheduler = PoissonScheduler(
            image.snapshot_rate_per_day,
            self._se,
            self._clock,
            rate_per_kstep=image.snapshot_rate_per_kstep,
        )
        return image

    def _require_writable(self) -> None:
        if self._read_only:
            msg = (
                f"chip S/N {self.serial}: opened read-only for inspection; it cannot boot or train"
            )
            raise ChipError(msg)

    def _require_booted(self) -> FirmwareImage:
        self._require_writable()
        if self._firmware is None:
            msg = f"chip S/N {self.serial}: not booted; call boot() with signed firmware first"
            raise ChipError(msg)
        return self._firmware

    # -- training hooks ----------------------------------------------------

    def precommit(self, run_id: str, commitment: Digest) -> LogEntry:
        """Log a run's precommitment (to M and the data order) before step 0.

        A run id is bound to the first commitment logged for it: another
        commitment under the same id is refused (one run, one claim of what
        it trains on).
        """
        self._require_booted()
        _check_run_id(run_id)
        self._pipeline.wait_idle()
        bound = self._commitments.get(run_id)
        if bound is not None and bound != str(commitment):
            msg = (
                f"chip S/N {self.serial}: run {run_id!r} is already bound to precommitment "
                f"{bound[:19]}…; refusing another"
            )
            raise ChipError(msg)
        self._commitments[run_id] = str(commitment)
        return self._log.append(
            "precommit", {"run_id": run_id, "commitment": str(commitment)}, self._now_us()
        )

    def register(
        self,
        run_id: str,
        regions: Mapping[str, torch.Tensor],
        code_hash: Digest,
        snapshot_dir: str | os.PathLike[str],
    ) -> LogEntry:
        """Register the tensors holding this chip's weight shard ω.

        ω is the concatenation of the regions, flattened, in the given order;
        all must share one dtype. The region descriptor (names, dtypes,
        shapes, offsets) and the training-code hash are logged.
        """
        image = self._require_booted()
        _check_run_id(run_id)
        if image.receipt_log is not None and not self._pipeline.has_receipts:
            msg = (
                f"chip S/N {self.serial}: firmware {image.name} v{image.version} trains only "
                f"with receipts from {image.receipt_log.origin}; open the chip with receipts="
            )
            raise ChipError(msg)
        self.flush()
        descriptor, dtype = describe_regions(regions)
        numel = sum(spec["numel"] for spec in descriptor)
        out_dir = Path(snapshot_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        descriptor_hash = json_digest(descriptor, domain=_REGIONS_DOMAIN)
        entry = self._log.append(
            "register",
            {
                "run_id": run_id,
                "regions": descriptor_hash.__str__(),
                "region_count": len(descriptor),
                "numel": numel,
                "dtype": str(dtype).removeprefix("torch."),
                "code_hash": str(code_hash),
            },
            self._now_us(),
        )
        self._fw_steps = 0
        self._pipeline.arm(
            Registration(
                run_id=run_id,
                tensors=tuple(regions.items()),
                descriptor=descriptor,
                descriptor_hash=descriptor_hash,
                code_hash=code_hash,
                numel=numel,
                dtype=dtype,
                snapshot_dir=out_dir,
                seq=entry.seq,
            )
        )
        return entry

    def on_step(self, step: int) -> bool:
        """The firmware's chance to snapshot at an optimizer step.

        Returns whether a snapshot was taken. Raises `SnapshotStalledError`
        if the previous snapshot could not be logged or acknowledged, and
        `LogFullError` when the log is full: training must not go on.
        """
        self._require_booted()
        reg = self._pipeline.registration
        if reg is None:
            msg = f"chip S/N {self.serial}: on_step before register(); nothing to monitor"
            raise ChipError(msg)
        self.flush()
        self._fw_steps += 1
        if self._scheduler is None or not self._scheduler.poll():
            return False
        self._pipeline.freeze_and_submit(reg, int(step), self._facts(reg.run_id))
        return True

    def _facts(self, run_id: str, trigger: str = "schedule") -> dict[str, Any]:
        """What the firmware knows at a snapshot, logged beside the host's step number."""
        image = self._firmware
        facts: dict[str, Any] = {
            "trigger": trigger,
            "fw_steps": self._fw_steps,
            "commitment": self._commitments.get(run_id),
            "fw": None if image is None else {"v": image.version, "h": str(image.code_hash)},
        }
        if image is not None and image.receipt_log is not None:  # this entry waits for a receipt
            facts["receipt_log"] = image.receipt_log.origin
        return facts

    def snapshot_now(self, step: int) -> SnapshotRecord:
        """Take a snapshot at once, as an inspector-triggered or test snapshot would."""
        self._require_booted()
        reg = self._pipeline.registration
        if reg is None:
            msg = f"chip S/N {self.serial}: snapshot before register()"
            raise ChipError(msg)
        self.flush()
        self._pipeline.freeze_and_submit(reg, int(step), self._facts(reg.run_id, "now"))
        self.flush()
        return self._pipeline.records[-1]

    def flush(self) -> None:
        """Wait for the firmware's pending snapshot work; raise if it failed."""
        self._pipeline.flush()

    @property
    def snapshots(self) -> list[SnapshotRecord]:
        """Records of the snapshots taken so far (after `flush`)."""
        return self._pipeline.records

    # -- inspection --------------------------------------------------------

    def log_entries(self) -> list[LogEntry]:
        """The whole log, verified against the chip key and the SE's count."""
        return self._log.entries()

    def break_seal(self) -> None:
        """Emulate opening the tamper-evident packaging (irreversible)."""
        self._require_writable()
        state = self._state()
        state["intact"] = False
        self._write_state(state)

    def attest(self, nonce: bytes) -> Envelope:
        """A signed statement of identity, firmware, counters, log head and seal."""
        _check_nonce(nonce)
        self.flush()
        doc = attestation_claims(
            self._se,
            self._state(),
            nonce=nonce,
            time_us=self._now_us(),
            booted=self._firmware is not None,
            log_head=str(self._log.head),
            oemid=self.chipmaker_key.key_id,
        )
        return sign_envelope(ATTESTATION_PAYLOAD_TYPE, canonical_json(doc), [self._se])


def _check_run_id(run_id: object) -> None:
    text("run id", run_id, max_len=_MAX_RUN_ID)


def _check_nonce(nonce: object) -> None:
    if not isinstance(nonce, bytes) or not _MIN_NONCE <= len(nonce) <= _MAX_NONCE:
        msg = f"attestation nonce: expected {_MIN_NONCE}-{_MAX_NONCE} bytes, got {nonce!r:.40}"
        raise ParameterError(msg)
