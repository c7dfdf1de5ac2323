"""`Registry`: the directory and receipt service's core, independent of HTTP.

All writes go through one writer thread that takes whatever is queued (up
to ``max_batch``), checks each request or chip entry against the rules in a
batch overlay of the directory, then persists the batch's directory
changes and appends its entries to the Merkle log in *one* transaction
(group commit: one fsync for the batch). Only after that transaction has
committed does it sign a checkpoint for the new tree and answer every
accepted write with its `Receipt`; a refused write is answered with its
error and leaves no trace. A write is therefore acknowledged only once it
is durable, and a crash loses only unacknowledged writes.

With witnesses (a `WitnessPool`), a second thread, the witness stage, does
the answering: it takes the newest committed checkpoint, has the witnesses
cosign it and answers every write committed until then against it, while
the writer goes on committing the next batches (one witness round trip per
stage cycle, however many batches it covers).

One registry process writes to a database at a time (the writer's caches
assume it; a second writer is detected by the log store as a stale head).
Reads (directory lookups, checkpoints, proofs) run on any thread.

Example:
    >>> registry = Registry(store, NoteSigner.from_skey(skey))  # doctest: +SKIP
    >>> with registry:                                         # doctest: +SKIP
    ...     ack = registry.write(envelope.to_json())           # doctest: +SKIP
    ...     verify_receipt(ack.receipt, [registry.verifier], registry.origin)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from computewatch.chip import LOG_ENTRY_PAYLOAD_TYPE
from computewatch.crypto import MerkleLog, Receipt
from computewatch.errors import CheckUnavailable, ComputeWatchError, FormatError, IntegrityError
from computewatch.supplychain._directory import Directory
from computewatch.supplychain._entries import check_receipt
from computewatch.supplychain._memo import Memo
from computewatch.supplychain._model import Overloaded
from computewatch.supplychain._rules import (
    Effects,
    ReceiptEffects,
    ReceiptRecord,
    check_request,
)
from computewatch.supplychain._tables import WRITE

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Callable
    from types import TracebackType

    from computewatch.crypto import NoteSigner, NoteVerifier, SignedCheckpoint
    from computewatch.supplychain._store import RegistryStore
    from computewatch.supplychain._witnessing import WitnessPool

__all__ = ["Acknowledgement", "Registry"]

_log = logging.getLogger("computewatch.registry")
#: How a canonical chip log entry envelope names its payload type.
_ENTRY_MARK = f'"payloadType":"{LOG_ENTRY_PAYLOAD_TYPE}"'.encode()
_US = 1_000_000


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """A durable write: its log index and an offline-verifiable receipt.

    Attributes:
        index: The entry's index in the transparency log.
        receipt: The receipt (tlog-proof) against a checkpoint that includes it.
        duplicate: True if the entry was already logged (a chip's retry).
    """

    index: int
    receipt: Receipt
    duplicate: bool = False


@dataclass(slots=True)
class _Job:
    data: bytes
    is_entry: bool
    future: Future[Acknowledgement]


#: A committed batch waiting for the witness stage: its checkpoint and its writes.
_Pending = tuple["SignedCheckpoint", list[tuple[_Job, "Effects | ReceiptEffects"]]]


def _check_start(got: int, planned: int, expected: int) -> None:
    if got != expected or planned != expected:
        msg = f"registry: log append at {got} (planned {planned}), expected {expected}"
        raise IntegrityError(msg)


class Registry:
    """The registry service: a writer thread with group commit, and the log's reads."""

    def __init__(
        self,
        store: RegistryStore,
        signer: NoteSigner,
        *,
        clock: Callable[[], float] = time.time,
        max_skew_s: float = 300.0,
        max_batch: int = 512,
        queue_limit: int = 10_000,
        witnesses: WitnessPool | None = None,
    ) -> None:
        """Open the log in ``store`` and prepare the writer (call `start`).

        Args:
            store: The registry database.
            signer: The log's note key; its name must be the store's origin.
            clock: Seconds since the epoch (for request freshness).
            max_skew_s: How far a request's time may be from ``clock``.
            max_batch: Most writes committed in one transaction.
            queue_limit: Most writes waiting; more are refused with `Overloaded`.
            witnesses: If given, every new checkpoint is pushed to these
                witnesses and served (and put in receipts) with their
                cosignatures; the registry closes the pool.

        Raises:
            IntegrityError: The log's stored tree does not check out.
            FormatError: The signer's name is not the store's origin.
        """
        if signer.name != store.origin:
            msg = f"registry log key: expected the name {store.origin!r}, got {signer.name!r}"
            raise FormatError(msg)
        self.store = store
        self.origin = store.origin
        self._signer = signer
        self._clock = clock
        self._max_skew_us = round(max_skew_s * _US)
        self._max_batch = max_batch
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_limit)
        self._lock = threading.RLock()  # the MerkleLog object and the checkpoint
        self.log = MerkleLog(store.log_store)
        self._memo = Memo(store)
        self._checkpoint = self.log.checkpoint(signer, origin=self.origin)
        self._witnesses = witnesses
        self._pending: queue.Queue[_Pending | None] = queue.Queue()
        self._witness_thread: threading.Thread | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def verifier(self) -> NoteVerifier:
        """The log's public note key."""
        return self._signer.verifier

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> Self:
        """Start the writer thread."""
        if self._thread is None:
            if self._witnesses is not None:
                self._witness_thread = threading.Thread(
                    target=self._witness_run, name="registry-witness", daemon=True
                )
                self._witness_thread.start()
            self._thread = threading.Thread(target=self._run, name="registry-writer", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Finish the queued writes, stop the writer and close the store."""
        if not self._closed:
            self._closed = True
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
            if self._witness_thread is not None:
                self._pending.put(None)
                self._witness_thread.join()
            if self._witnesses is not None:
                self._witnesses.close()
            self.store.close()

    def __enter__(self) -> Self:
        """Start the writer; close on exit."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the registry."""
        self.close()

    # --- writing ---------------------------------------------------------------

    def submit(self, data: bytes, *, entry: bool | None = None) -> Future[Acknowledgement]:
        """Queue a signed request or chip log entry; the future resolves once it is durable.

        Args:
            data: The envelope's bytes.
            entry: True for a chip log entry, False for a registry request;
                None tells them apart by the envelope's payload type.

        The future's exception is the `ComputeWatchError` that refused it.

        Raises:
            Overloaded: The queue is full or the registry is closing.
        """
        future: Future[Acknowledgement] = Future()
        is_entry = entry if entry is not None else _ENTRY_MARK in data
        if self._closed or self._thread is None:
            msg = "registry: not accepting writes (not started, or shutting down)"
            raise Overloaded(msg)
        try:
            self._queue.put_nowait(_Job(bytes(data), is_entry, future))
        except queue.Full as e:
            msg = f"registry: {self._queue.maxsize} writes are queued; retry later"
            raise Overloaded(msg) from e
        return future

    def write(
        self, data: bytes, *, entry: bool | None = None, timeout: float = 30.0
    ) -> Acknowledgement:
        """Submit and wait for the acknowledgement (or the refusal).

        Raises:
            ComputeWatchError: The write was refused (see `check_request`,
                `check_receipt`), or not durable within ``timeout``.
        """
        try:
            return self.submit(data, entry=entry).result(timeout=timeout)
        except TimeoutError as e:
            msg = f"registry: no acknowledgement within {timeout:g} s"
            raise CheckUnavailable(msg) from e

    def _witness(self, checkpoint: SignedCheckpoint) -> SignedCheckpoint:
        """``checkpoint`` with the witnesses' cosignatures (run without the lock)."""
        if self._witnesses is None:
            return checkpoint
        return self._witnesses.cosign(checkpoint, self.consistency_proof)

    @property
    def witnesses(self) -> WitnessPool | None:
        """The witness pool, if the log is witnessed."""
        return self._witnesses

    def _witness_opening(self) -> None:
        if self._witnesses is None:
            return
        try:
            cosigned = self._witness(self.checkpoint())
        except Exception:  # noqa: BLE001 - witnessing is best effort; serve unwitnessed
            _log.exception("registry writer: witnessing the opening checkpoint failed")
        else:
            with self._lock:
                self._checkpoint = cosigned

    def _run(self) -> None:
        self._witness_opening()
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            try:
                self._process(batch)
            except Exception as e:  # noqa: BLE001 - the writer must outlive any one batch
                _log.exception("registry writer: batch failed")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(
                            CheckUnavailable(f"registry: internal error ({e})")
                        )

    def _process(self, batch: list[_Job]) -> None:
        overlay = Directory(self.origin, None, None, base=self._memo)
        staged: list[tuple[_Job, Effects | ReceiptEffects]] = []
        duplicates: list[tuple[_Job, int]] = []
        next_index = self.log.size
        now_us = round(self._clock() * _US)
        for job in batch:
            try:
                if job.is_entry:
                    fx: Effects | ReceiptEffects | ReceiptRecord = check_receipt(
                        overlay, job.data, index=next_index
                    )
                    if isinstance(fx, ReceiptRecord):
                        duplicates.append((job, fx.index))
                        continue
                else:
                    fx = check_request(
                        overlay,
                        job.data,
                        origin=self.origin,
                        index=next_index,
                        now_us=now_us,
                        max_skew_us=self._max_skew_us,
                    )
            except ComputeWatchError as e:
                job.future.set_exception(e)
                continue
            overlay.apply(fx)
            staged.append((job, fx))
            next_index += 1
        if staged:
            self._commit(staged)
        for job, index in duplicates:
            try:
                receipt = self.receipt(index, entry=job.data)
            except ComputeWatchError as e:
                job.future.set_exception(e)
            else:
                job.future.set_result(Acknowledgement(index, receipt, duplicate=True))

    def _commit(self, staged: list[tuple[_Job, Effects | ReceiptEffects]]) -> None:
        requests = [fx for _, fx in staged if isinstance(fx, Effects)]
        entries = [fx for _, fx in staged if isinstance(fx, ReceiptEffects)]
        log_store = self.store.log_store
        with self._lock:
            start = self.log.size
            try:
                with (
                    self.store.engine.connect().execution_options(**WRITE) as conn,
                    conn.begin(),
                    log_store.bind(conn),
                ):
                    self.store.persist(conn, requests, entries)
                    got = self.log.append_many([job.data for job, _ in staged])
                    _check_start(got.start, staged[0][1].index, start)
            except Exception as e:  # noqa: BLE001 - nothing of the batch was acknowledged
                log_store.rolled_back()
                self._memo.clear()
                self.log.refresh()
                _log.warning("registry writer: batch of %d not written: %s", len(staged), e)
                for job, _ in staged:
                    job.future.set_exception(
                        CheckUnavailable(f"registry: the write was not stored, retry ({e})")
                    )
                return
            log_store.committed()
            for fx in requests:
                self._memo.absorb(fx)
            for rx in entries:
                self._memo.absorb(rx)
            checkpoint = self.log.checkpoint(self._signer, origin=self.origin)
        if self._witnesses is not None:  # the witness stage answers them (see _witness_run)
            self._pending.put((checkpoint, staged))
            return
        self._answer(checkpoint, [staged])

    def _answer(
        self,
        checkpoint: SignedCheckpoint,
        batches: list[list[tuple[_Job, Effects | ReceiptEffects]]],
    ) -> None:
        """Publish ``checkpoint`` and answer every write of ``batches`` against it."""
        with self._lock:
            self._checkpoint = checkpoint
            size = checkpoint.checkpoint.size
            answers = [
                (
                    job,
                    Acknowledgement(
                        fx.index,
                        Receipt(
                            fx.index, self.log.inclusion_proof(fx.index, size), checkpoint, job.data
                        ),
                    ),
                )
                for staged in batches
                for job, fx in staged
            ]
        for job, ack in answers:
            job.future.set_result(ack)

    def _witness_run(self) -> None:
        """The witness stage: cosign the newest committed checkpoint, answer all waiting.

        The writer goes on committing while witnesses answer; everything that
        queued up meanwhile is answered against one cosigned checkpoint (the
        newest), so witnessing costs one round trip per stage cycle, however
        many batches it covers.
        """
        stop = False
        while not stop:
            first = self._pending.get()
            if first is None:
                return
            items = [first]
            while True:
                try:
                    item = self._pending.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                items.append(item)
            batches = [staged for _, staged in items]
            try:
                self._answer(self._witness(items[-1][0]), batches)
            except Exception as e:  # noqa: BLE001 - durable but unanswered: tell them to retry
                _log.exception("registry witness stage failed")
                for staged in batches:
                    for job, _ in staged:
                        if not job.future.done():
                            job.future.set_exception(CheckUnavailable(f"registry: {e}; retry"))

    # --- reading the log ---------------------------------------------------------

    def checkpoint(self) -> SignedCheckpoint:
        """The latest signed checkpoint (every acknowledged write is in it)."""
        with self._lock:
            return self._checkpoint

    def inclusion_proof(self, index: int, size: int | None = None) -> tuple[bytes, ...]:
        """See `MerkleLog.inclusion_proof`."""
        with self._lock:
            return self.log.inclusion_proof(index, size)

    def consistency_proof(self, old: int, new: int | None = None) -> tuple[bytes, ...]:
        """See `MerkleLog.consistency_proof`."""
        with self._lock:
            return self.log.consistency_proof(old, new)

    def entry(self, index: int) -> bytes:
        """See `MerkleLog.entry`."""
        with self._lock:
            return self.log.entry(index)

    def read_lock(self) -> contextlib.AbstractContextManager[bool]:
        """The lock to hold while reading `log` directly (tiles)."""
        return self._lock

    @property
    def size(self) -> int:
        """The committed log size."""
        with self._lock:
            return self.log.size

    def receipt(self, index: int, *, entry: bytes | None = None) -> Receipt:
        """A receipt for log entry ``index`` against the latest checkpoint.

        Args:
            index: The entry's index.
            entry: Its bytes, if the caller has them (saves a read).

        Raises:
            FormatError: ``index`` is not in the log.
        """
        with self._lock:
            checkpoint = self._checkpoint
            if index >= checkpoint.checkpoint.size and index < self.log.size:
                msg = f"registry: entry {index} is durable but not yet witnessed; retry"
                raise CheckUnavailable(msg)
            proof = self.log.inclusion_proof(index, checkpoint.checkpoint.size)
            data = entry if entry is not None else self.log.entry(index)
        return Receipt(index, proof, checkpoint, data)
