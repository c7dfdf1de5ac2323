r"""The firmware-only log (the paper's on-chip NVRAM, §4).

Every entry is a DSSE envelope of type `LOG_ENTRY_PAYLOAD_TYPE`, signed by
the chip's identity key, whose payload is the canonical JSON::

    {"serial": S, "seq": n, "time_us": t, "kind": k, "body": {...}, "prev": "sha256:..."}

``prev`` is the previous entry's hash (``H(domain ‖ payload)``), or for
``seq`` 0 a genesis value bound to the serial, so entries form a hash chain.
The log's length and head hash are also kept in the secure element (the
``log`` monotonic counter and the sealed state), so deleting, truncating,
reordering, editing, replaying or forking entries is detected, and named,
by `verify_chip_log`.

Only firmware appends (`ChipLog` is private to the chip package); anyone can
read the file and verify it against the chip's public key. The log has a
fixed capacity: when it is full, appends raise `LogFullError` and the chip
refuses to train on (it never drops entries) until the log is archived.

Example::

    >>> from computewatch.chip import Chip, read_chip_log, sign_firmware, verify_chip_log
    >>> from computewatch.crypto import SigningKey
    >>> maker = SigningKey.generate()
    >>> with Chip.provision("chip", "CW-0001", maker.verifying_key) as chip:
    ...     _ = chip.boot(sign_firmware(name="cw", version=1, code=b"", chipmaker=maker))
    ...     public_key = chip.public_key
    >>> envelopes = read_chip_log("chip/nvram.log")
    >>> entries = verify_chip_log(envelopes, public_key, "CW-0001")
    >>> [(e.seq, e.kind) for e in entries]
    [(0, 'firmware-update'), (1, 'boot')]
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch.crypto import (
    Digest,
    Envelope,
    canonical_json,
    hash_bytes,
    sign_envelope,
    verify_envelope,
)
from computewatch.errors import ComputeWatchError, FormatError, IntegrityError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from computewatch.chip._interface import SecureElement
    from computewatch.crypto import VerifyingKey

__all__ = [
    "ENTRY_KINDS",
    "LOG_ENTRY_PAYLOAD_TYPE",
    "LogEntry",
    "LogFullError",
    "genesis_hash",
    "read_chip_log",
    "verify_chip_log",
]

LOG_ENTRY_PAYLOAD_TYPE = "application/vnd.computewatch.chip-log-entry+json"
ENTRY_KINDS = ("boot", "firmware-update", "precommit", "register", "snapshot")
_ENTRY_DOMAIN = b"computewatch/chip-log-entry/v1\x00"
_GENESIS_DOMAIN = b"computewatch/chip-log-genesis/v1\x00"
#: Longest line (one envelope) `read_chip_log` accepts.
MAX_LINE_BYTES = 64 * 1024


class LogFullError(ComputeWatchError):
    """The chip's log is at capacity: the chip halts rather than drop entries."""

    exit_code = 1
    kind = "chip log full"


def genesis_hash(serial: str) -> Digest:
    """The ``prev`` of a chip's first entry."""
    return hash_bytes(serial.encode(), domain=_GENESIS_DOMAIN)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One verified log entry.

    Attributes:
        serial: the chip's serial.
        seq: position in the log, from 0.
        time_us: firmware time in microseconds since the epoch.
        kind: one of `ENTRY_KINDS`.
        body: kind-specific fields.
        prev: hash of the previous entry (or the genesis hash).
        entry_hash: this entry's hash, ``H(domain ‖ payload)``.
        envelope: the signed envelope as stored.
        chip_time: the secure element's own time at the append
            (`ChipTime.to_json`), or None in logs written before it was logged.
    """

    serial: str
    seq: int
    time_us: int
    kind: str
    body: dict[str, Any]
    prev: Digest
    entry_hash: Digest
    envelope: Envelope
    chip_time: dict[str, Any] | None = None

    @property
    def time(self) -> float:
        """Firmware time in seconds."""
        return self.time_us / 1e6


def _entry_hash(payload: bytes) -> Digest:
    return hash_bytes(payload, domain=_ENTRY_DOMAIN)


def read_chip_log(path: str | os.PathLike[str]) -> list[Envelope]:
    """Read a log file as envelopes (one JSON envelope per line).

    Raises:
        FormatError: the file cannot be read.
        IntegrityError: a line is not a well-formed envelope (a log written
            only by firmware never contains one), naming the line.
    """
    envelopes: list[Envelope] = []
    try:
        with Path(path).open("rb") as f:
            for lineno, line in enumerate(f, start=1):
                if len(line) > MAX_LINE_BYTES:
                    msg = f"chip log {path} line {lineno}: longer than {MAX_LINE_BYTES} bytes"
                    raise IntegrityError(msg)
                if not line.endswith(b"\n"):
                    msg = f"chip log {path} line {lineno}: torn final line (incomplete write)"
                    raise IntegrityError(msg)
                try:
                    envelopes.append(Envelope.from_json(line))
                except FormatError as e:
                    msg = f"chip log {path} line {lineno}: not a signed entry ({e.message})"
                    raise IntegrityError(msg) from e
    except OSError as e:
        msg = f"chip log {path}: cannot read ({e.strerror})"
        raise FormatError(msg) from e
    return envelopes


def _parse_entry(envelope: Envelope, key: VerifyingKey, where: str) -> LogEntry:
    verified = verify_envelope(envelope, {key.key_id: key}, payload_type=LOG_ENTRY_PAYLOAD_TYPE)
    try:
        doc = json.loads(verified.payload)
        if not isinstance(doc["seq"], int) or not isinstance(doc["time_us"], int):
            msg = f"{where}: seq and time_us must be integers"
            raise IntegrityError(msg)
        entry = LogEntry(
            serial=doc["serial"],
            seq=doc["seq"],
            time_us=doc["time_us"],
            kind=doc["kind"],
            body=doc["body"],
            prev=Digest.parse(doc["prev"]),
            entry_hash=_entry_hash(verified.payload),
            envelope=envelope,
            chip_time=doc.get("chip_time"),
        )
    except (ValueError, KeyError, TypeError, FormatError) as e:
        msg = f"{where}: signed payload is malformed ({e})"
        raise IntegrityError(msg) from e
    if entry.kind not in ENTRY_KINDS or not isinstance(entry.body, dict):
        msg = f"{where}: unknown entry kind {entry.kind!r}"
        raise IntegrityError(msg)
    return entry


def _check_chip_time(entry: LogEntry, previous: LogEntry | None, where: str) -> None:
    """The element's clock never goes back between entries of one power cycle."""
    now: object = entry.chip_time
    if now is None:
        return
    if not isinstance(now, dict) or not all(
        isinstance(now.get(k), int) and not isinstance(now.get(k), bool)
        for k in ("clock_ms", "resets", "restarts")
    ):
        msg = f"{where}: chip_time is malformed"
        raise IntegrityError(msg)
    before = previous.chip_time if previous is not None else None
    if not isinstance(before, dict):
        return
    if now["resets"] < before["resets"]:
        msg = f"{where}: the secure element's reset count goes backwards (state restored?)"
        raise IntegrityError(msg)
    if now["resets"] == before["resets"] and now["clock_ms"] < before["clock_ms"]:
        msg = (
            f"{where}: the secure element's clock goes backwards "
            f"({now['clock_ms']} < {before['clock_ms']} ms)"
        )
        raise IntegrityError(msg)


def verify_chip_log(
    envelopes: Sequence[Envelope],
    public_key: VerifyingKey,
    serial: str,
    *,
    expected_size: int | None = None,
    expected_head: Digest | None = None,
) -> list[LogEntry]:
    """Verify a chip's whole log and return its entries.

    Every entry must be signed by ``public_key``, name ``serial``, have
    ``seq`` equal to its position, chain to its predecessor by ``prev`` and
    not go back in time. ``expected_size`` and ``expected_head`` come from
    the chip's secure element or a signed attestation; with them, truncation
    and forks are detected too.

    Raises:
        IntegrityError: naming the first bad entry and what is wrong with it.
    """
    entries: list[LogEntry] = []
    prev = genesis_hash(serial)
    last_time = -1
    for i, env in enumerate(envelopes):
        where = f"chip S/N {serial} log entry seq {i}"
        try:
            entry = _parse_entry(env, public_key, where)
        except IntegrityError as e:
            if "required keys" in e.message:
                msg = (
                    f"{where}: signature does not verify against the chip key "
                    f"{public_key.key_id} (edited, forged, or the key was substituted)"
                )
                raise IntegrityError(msg) from e
            raise
        if entry.serial != serial:
            msg = (
                f"{where}: serial mismatch (expected {serial!r}, got {entry.serial!r}; "
                "replayed from another chip)"
            )
            raise IntegrityError(msg)
        if entry.seq != i:
            msg = (
                f"{where}: seq mismatch (expected {i}, got {entry.seq}; "
                "entries deleted, reordered or replayed)"
            )
            raise IntegrityError(msg)
        if entry.prev != prev:
            msg = (
                f"{where}: prev-hash mismatch "
                f"(expected {prev.hex[:12]}…, got {entry.prev.hex[:12]}…)"
            )
            raise IntegrityError(msg)
        if entry.time_us < last_time:
            msg = f"{where}: time goes backwards ({entry.time_us} < {last_time})"
            raise IntegrityError(msg)
        _check_chip_time(entry, entries[-1] if entries else None, where)
        entries.append(entry)
        prev = entry.entry_hash
        last_time = entry.time_us
    if expected_size is not None and len(entries) != expected_size:
        what = "truncated" if len(entries) < expected_size else "has entries the chip never counted"
        msg = (
            f"chip S/N {serial} log {what}: the secure element counts {expected_size} "
            f"entries, the log holds {len(entries)}"
        )
        raise IntegrityError(msg)
    if expected_head is not None and entries and entries[-1].entry_hash != expected_head:
        msg = (
            f"chip S/N {serial} log head mismatch (expected {expected_head.hex[:12]}…, got "
            f"{entries[-1].entry_hash.hex[:12]}…; the log was replaced or forked)"
        )
        raise IntegrityError(msg)
    return entries


class ChipLog:
    """The firmware's writer of the log file (private to the chip package)."""

    def __init__(self, path: Path, se: SecureElement, capacity: int) -> None:
        """Open the log at ``path``; `recover` must run before appends."""
        self._path = path
        self._se = se
        self._capacity = capacity
        self._lock = threading.Lock()
        self._size = 0
        self._head = genesis_hash(se.serial)

    @property
    def size(self) -> int:
        """Entries in the log."""
        return self._size

    @property
    def head(self) -> Digest:
        """Hash of the last entry (the genesis hash when empty)."""
        return self._head

    @property
    def capacity(self) -> int:
        """The most entries the log holds."""
        return self._capacity

    def load(self) -> None:
        """Take the SE's count as the log's size, writing nothing (for inspection).

        The file is not read here: whoever inspects verifies it against the
        count (`entries`, or an attestation's), so a torn, cut or emptied
        file is reported as tampering there, and the evidence stays as found.
        """
        self._size = self._se.read_counter("log")
        self._head = genesis_hash(self._se.serial)
        try:  # the head as the file has it; its signature is checked by whoever verifies
            envelopes = read_chip_log(self._path) if self._path.exists() else []
        except ComputeWatchError:
            return
        if envelopes:
            self._head = _entry_hash(envelopes[-1].payload)

    def recover(self) -> list[LogEntry]:
        """Verify the file against the SE's counter, finishing an interrupted append.

        An append writes the entry, then counts it in the secure element. A
        crash in between leaves one signed, chained entry the SE has not
        counted: it is committed now. A torn final line was never counted
        and is cut off. Anything else that disagrees is tampering. Only the
        firmware that goes on to write the log recovers it; inspection uses
        `load`, which writes nothing.
        """
        counted = self._se.read_counter("log")
        if not self._path.exists():
            self._path.touch(mode=0o644)
        self._cut_torn_tail()
        envelopes = read_chip_log(self._path)
        entries = verify_chip_log(envelopes, self._se.public_key, self._se.serial)
        if len(entries) == counted + 1:
            self._se.increment_counter("log")
            counted += 1
        verify_chip_log(
            envelopes,
            self._se.public_key,
            self._se.serial,
            expected_size=counted,
        )
        self._size = counted
        self._head = entries[-1].entry_hash if entries else genesis_hash(self._se.serial)
        return entries

    def _cut_torn_tail(self) -> None:
        data = self._path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with self._path.open("r+b") as f:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())

    def append(self, kind: str, body: dict[str, Any], time_us: int) -> LogEntry:
        """Sign and durably append an entry; raise `LogFullError` at capacity."""
        if kind not in ENTRY_KINDS:
            msg = f"chip log: unknown entry kind {kind!r}"
            raise FormatError(msg)
        with self._lock:
            if self._size >= self._capacity:
                msg = (
                    f"chip S/N {self._se.serial}: log full at {self._capacity} entries; "
                    "training is halted until an inspector archives the log"
                )
                raise LogFullError(msg)
            chip_time = self._se.read_clock().to_json()
            doc = {
                "serial": self._se.serial,
                "seq": self._size,
                "time_us": int(time_us),
                "chip_time": chip_time,
                "kind": kind,
                "body": body,
                "prev": str(self._head),
            }
            payload = canonical_json(doc)
            envelope = sign_envelope(LOG_ENTRY_PAYLOAD_TYPE, payload, [self._se])
            line = envelope.to_json() + b"\n"
            with self._path.open("ab") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self._se.increment_counter("log")
            entry = LogEntry(
                serial=self._se.serial,
                seq=self._size,
                time_us=int(time_us),
                kind=kind,
                body=body,
                prev=self._head,
                entry_hash=_entry_hash(payload),
                envelope=envelope,
                chip_time=chip_time,
            )
            self._size += 1
            self._head = entry.entry_hash
            return entry

    def entries(self) -> list[LogEntry]:
        """Read and verify the whole log against the SE (a deleted file is an empty log)."""
        return verify_chip_log(
            read_chip_log(self._path) if self._path.exists() else [],
            self._se.public_key,
            self._se.serial,
            expected_size=self._se.read_counter("log"),
        )
