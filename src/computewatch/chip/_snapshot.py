"""The chip's snapshot pipeline: freeze ω, then hash, store and log it off the step.

`SnapshotPipeline` is the firmware half of `computewatch.chip.Chip` that runs
once a run is registered. A snapshot *freezes* the step only for a copy of
the registered tensors (the chip's weight shard ω) into one host buffer;
hashing the copy, writing it to Prover storage (safetensors, written to a
temporary name then renamed) and appending the signed ``snapshot`` entry to
the firmware-only log run on a single firmware worker thread, off the
training's critical path. `SnapshotPipeline.flush` waits for that work and,
when a receipt server is required, for its acknowledgement (checked by the
firmware itself when the image names its log, `ReceiptLog.check`); any failure
there halts training for good (`SnapshotStalledError`): a chip that cannot
log never trains on unlogged.

`describe_regions` turns the registered tensors into the region descriptor
(names, dtypes, shapes, offsets) whose hash every snapshot entry carries.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.crypto import Digest, shard_hash
from computewatch.errors import ComputeWatchError, ParameterError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    import torch

    from computewatch.chip._chiplog import ChipLog, LogEntry
    from computewatch.chip._receipt_log import ReceiptLog
    from computewatch.crypto import Envelope

__all__ = [
    "ChipError",
    "Registration",
    "SnapshotPipeline",
    "SnapshotRecord",
    "SnapshotStalledError",
    "describe_regions",
]


class ChipError(ComputeWatchError):
    """The chip refuses an operation (not booted, nothing registered, ...)."""

    exit_code = 1
    kind = "chip refused"


class SnapshotStalledError(ChipError):
    """A snapshot could not be logged (or acknowledged); training must stop."""

    kind = "snapshot stalled"


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    """What the Prover learns of a snapshot (ω itself is in its storage).

    Attributes:
        serial: the chip.
        seq: the log entry's position.
        run_id: the registered run.
        step: the optimizer step the snapshot froze.
        time_us: firmware time of the snapshot.
        shard_hash: ``h = Hash(ω)``.
        path: where the firmware wrote the copy of ω (safetensors).
        receipt: the receipt server's acknowledgement, if one was required.
    """

    serial: str
    seq: int
    run_id: str
    step: int
    time_us: int
    shard_hash: Digest
    path: Path
    receipt: Any = None


@dataclass(frozen=True, slots=True)
class Registration:
    """A registered run: what to copy at each snapshot and what to log with it."""

    run_id: str
    tensors: tuple[tuple[str, Any], ...]
    descriptor: list[dict[str, Any]]
    descriptor_hash: Digest
    code_hash: Digest
    numel: int
    dtype: Any
    snapshot_dir: Path
    seq: int


def describe_regions(regions: Mapping[str, torch.Tensor]) -> tuple[list[dict[str, Any]], Any]:
    """The region descriptor of ω (one dict per tensor, in order) and ω's one dtype.

    Raises:
        ParameterError: No regions, a region that is not a tensor, or mixed dtypes.
    """
    import torch  # noqa: PLC0415 - heavy; only chips that train need it

    if not regions:
        msg = "register: expected at least one tensor region, got none"
        raise ParameterError(msg)
    for name, tensor in regions.items():
        _check_tensor(name, tensor, torch.Tensor)
    dtypes = {t.dtype for t in regions.values()}
    if len(dtypes) != 1:
        got = sorted(map(str, dtypes))
        msg = f"register: all regions of a shard must share one dtype, got {got}"
        raise ParameterError(msg)
    descriptor: list[dict[str, Any]] = []
    offset = 0
    for name, tensor in regions.items():
        descriptor.append(
            {
                "name": name,
                "dtype": str(tensor.dtype).removeprefix("torch."),
                "shape": list(tensor.shape),
                "offset": offset,
                "numel": tensor.numel(),
            }
        )
        offset += tensor.numel()
    (dtype,) = dtypes
    return descriptor, dtype


class SnapshotPipeline:
    """Freeze, then hash, store, log and (optionally) acknowledge each snapshot."""

    def __init__(
        self,
        serial: str,
        log: ChipLog,
        now_us: Callable[[], int],
        *,
        receipts: Callable[[Envelope], Any] | None = None,
        receipt_timeout: float = 30.0,
    ) -> None:
        """A pipeline appending to ``log``; ``receipts`` as for `Chip.open`."""
        self.serial = serial
        self._log = log
        self._now_us = now_us
        self._receipts = receipts
        self._receipt_timeout = receipt_timeout
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"fw-{serial}")
        self._pending: Future[SnapshotRecord] | None = None
        self._failure: BaseException | None = None
        self._records: list[SnapshotRecord] = []
        self._buffer: torch.Tensor | None = None
        self._lock = threading.Lock()
        self._last_index = -1
        self.registration: Registration | None = None
        #: The log the booted firmware takes receipts from (None: unchecked, or none required).
        self.receipt_log: ReceiptLog | None = None

    def arm(self, reg: Registration) -> None:
        """Monitor ``reg`` from now on: allocate (and fault in) the host buffer of ω."""
        import torch  # noqa: PLC0415

        buffer = torch.empty(reg.numel, dtype=reg.dtype, device="cpu")
        if torch.cuda.is_available() and any(t.is_cuda for _, t in reg.tensors):
            buffer = buffer.pin_memory()  # fast device-to-host copies
        buffer.zero_()  # fault the pages in now, not during the first freeze
        self.registration = reg
        self._buffer = buffer

    def freeze_and_submit(
        self, reg: Registration, step: int, facts: Mapping[str, Any] | None = None
    ) -> None:
        """Copy ω into the host buffer (the step waits only for this), then log it off-thread.

        ``facts`` are what the firmware itself knows at the freeze (its own
        step count, the run's precommitment, the running firmware), logged
        with the snapshot beside the step number the host claimed.
        """
        import torch  # noqa: PLC0415

        buf = self._buffer
        if buf is None:  # pragma: no cover - set by arm
            msg = "snapshot buffer missing"
            raise ChipError(msg)
        # The freeze: copy ω out of device memory; the step waits only for this.
        with torch.no_grad():
            for spec, (_, tensor) in zip(reg.descriptor, reg.tensors, strict=True):
                buf[spec["offset"] : spec["offset"] + spec["numel"]].copy_(
                    tensor.detach().reshape(-1), non_blocking=False
                )
        time_us = self._now_us()
        # `buf` is reused only after `flush` has waited for this job.
        self._pending = self._worker.submit(
            self._log_snapshot, reg, step, time_us, buf, dict(facts or {})
        )

    def _log_snapshot(
        self,
        reg: Registration,
        step: int,
        time_us: int,
        omega: torch.Tensor,
        facts: dict[str, Any],
    ) -> SnapshotRecord:
        from safetensors.torch import save_file  # noqa: PLC0415

        h = shard_hash(omega)
        seq = self._log.size
        path = reg.snapshot_dir / f"{self.serial}-{seq:08d}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file(
            {"omega": omega},
            str(tmp),
            metadata={
                "serial": str(self.serial),
                "seq": str(seq),
                "run_id": reg.run_id,
                "step": str(step),
                "shard_hash": str(h),
                "regions": str(reg.descriptor_hash),
            },
        )
        tmp.replace(path)
        entry = self._log.append(
            "snapshot",
            {
                "run_id": reg.run_id,
                "step": step,
                "h": str(h),
                "regions": str(reg.descriptor_hash),
                "register_seq": reg.seq,
                "code_hash": str(reg.code_hash),
                **facts,
            },
            time_us,
        )
        receipt = self._acknowledge(entry)
        to_text = getattr(receipt, "to_text", None)
        if callable(to_text):  # kept beside the copy of ω, for the inspector
            path.with_suffix(".receipt").write_text(str(to_text()))
        record = SnapshotRecord(
            serial=str(self.serial),
            seq=entry.seq,
            run_id=reg.run_id,
            step=step,
            time_us=time_us,
            shard_hash=h,
            path=path,
            receipt=receipt,
        )
        with self._lock:
            self._records.append(record)
        return record

    def _acknowledge(self, entry: LogEntry) -> Any:
        """The receipt for the entry just written: checked here if the firmware names a log."""
        log = self.receipt_log
        if self._receipts is None:
            if log is not None:
                msg = f"chip S/N {self.serial}: firmware requires receipts from {log.origin}"
                raise SnapshotStalledError(msg)
            return None
        ack = self._receipts(entry.envelope)
        if log is None:
            return ack
        receipt = log.check(ack, entry, after_index=self._last_index)
        self._last_index = receipt.index
        return receipt

    def wait_idle(self) -> None:
        """Wait until the worker is done with the element; a failure stays for `flush` to raise."""
        pending = self._pending
        if pending is not None:
            with contextlib.suppress(Exception):
                pending.exception(timeout=self._receipt_timeout)

    def flush(self) -> None:
        """Wait for the firmware's pending snapshot work; raise if it failed."""
        if self._failure is not None:
            msg = f"chip S/N {self.serial}: an earlier snapshot was not logged; training is halted"
            raise SnapshotStalledError(msg) from self._failure
        pending, self._pending = self._pending, None
        if pending is None:
            return
        try:
            pending.result(timeout=self._receipt_timeout)
        except TimeoutError as e:
            self._failure = e
            msg = (
                f"chip S/N {self.serial}: no receipt within {self._receipt_timeout:g} s; "
                "training stays stalled rather than continue unlogged"
            )
            raise SnapshotStalledError(msg) from e
        except ComputeWatchError as e:
            self._failure = e
            if isinstance(e, SnapshotStalledError):
                raise
            msg = f"chip S/N {self.serial}: snapshot could not be logged ({e.diagnostics()})"
            raise SnapshotStalledError(msg) from e

    @property
    def has_receipts(self) -> bool:
        """Whether a receipt server was given to the chip."""
        return self._receipts is not None

    @property
    def snapshots(self) -> list[SnapshotRecord]:
        """Records of the snapshots taken so far (after `flush`)."""
        with self._lock:
            return list(self._records)

    @property
    def records(self) -> list[SnapshotRecord]:
        """Records of the snapshots taken so far (after `flush`)."""
        with self._lock:
            return list(self._records)

    def shutdown(self) -> None:
        """Stop the worker thread after its pending job."""
        self._worker.shutdown(wait=True)


def _check_tensor(name: str, tensor: object, kind: type) -> None:
    if not isinstance(tensor, kind):
        msg = f"register: region {name!r} is not a torch.Tensor"
        raise ParameterError(msg)
