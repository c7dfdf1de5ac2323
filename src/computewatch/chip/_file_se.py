"""The sealed-file secure element (URI ``file:/path``).

The identity key is an Ed25519 PKCS#8 file (mode 0600) and everything else
the element keeps (burned-in serial, public key, monotonic counters, the
firmware's sealed state blob) is a *sealed record*: canonical JSON signed by
the identity key, rewritten atomically on every change, and re-verified on
every read.

What it promises: **tamper-evidence, not secrecy from root.** Code that goes
through computewatch's API cannot read the key or move a counter backwards;
an edit of the sealed record by hand (a counter lowered, the serial changed,
the state rewritten) is detected the next time the element reads it. A
Prover with root can copy the key file, or restore an older copy of the
whole folder; the first is caught when the chip's public key is compared
with the chip-owner directory and the chipmaker's identity certificate, the
second only by the external anchors (receipts, attestations recorded by the
Verifier). Use the TPM backend (``tpm:``) where root is not trusted.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch._validate import int_in_range, text
from computewatch.chip._interface import ChipSerial, ChipTime, SecureElement
from computewatch.crypto import SigningKey, VerifyingKey, canonical_json, hash_bytes
from computewatch.errors import FormatError, IntegrityError, ParameterError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["FileSecureElement"]

_KEY_FILE = "identity.key"
_SEALED_FILE = "sealed.json"
_SEAL_DOMAIN = b"computewatch/se-sealed-record/v1\x00"
_MAX_SEALED_BYTES = 64 * 1024
_MAX_COUNTER_NAME = 32
_MAX_SERIAL = 64


def _check_counter_name(name: object) -> None:
    text("counter name", name, max_len=_MAX_COUNTER_NAME, identifier=True)


class FileSecureElement(SecureElement):
    """A secure element emulated by sealed files in one folder."""

    def __init__(
        self,
        path: Path,
        key: SigningKey,
        serial: ChipSerial,
        ticker: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        """Use `provision` or `open`; this constructor trusts its arguments.

        ``ticker`` is the element's own time source in nanoseconds (the
        kernel's monotonic clock; simulations of chip-days pass their own).
        """
        self._path = path
        self._ticker = ticker
        self._key = key
        self._serial = serial
        self._lock = threading.Lock()
        # The element's clock: the kernel's monotonic clock since open (no
        # settimeofday moves it) on top of the last clock the record sealed,
        # so it never goes back across a reopen either.
        self._clock_base_ms = 0
        self._mono0 = ticker()

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def provision(
        cls,
        path: str | os.PathLike[str],
        serial: str,
        *,
        ticker: Callable[[], int] = time.monotonic_ns,
    ) -> FileSecureElement:
        """Create a new element in the empty or absent folder ``path``.

        Raises:
            FormatError: the folder already holds an element, or the serial
                is not a short printable identifier.
        """
        folder = Path(path)
        if (
            not serial
            or len(serial) > _MAX_SERIAL
            or not serial.isprintable()
            or serial.strip() != serial
        ):
            msg = f"chip serial: expected 1-64 printable characters, got {serial!r}"
            raise FormatError(msg)
        if (folder / _KEY_FILE).exists() or (folder / _SEALED_FILE).exists():
            msg = f"secure element {folder}: already provisioned; refusing to overwrite it"
            raise FormatError(msg)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = SigningKey.generate()
        key.save(folder / _KEY_FILE)
        se = cls(folder, key, ChipSerial(serial), ticker)
        se._write_record(
            {
                "version": 1,
                "serial": serial,
                "public_key": key.verifying_key.raw.hex(),
                "generation": 0,
                "counters": {},
                "state": "",
            }
        )
        return se

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, ticker: Callable[[], int] = time.monotonic_ns
    ) -> FileSecureElement:
        """Open the element provisioned in ``path``, verifying its seal.

        Raises:
            FormatError: no element there, or its files are unreadable.
            IntegrityError: the sealed record was edited or does not belong
                to the identity key.
        """
        folder = Path(path)
        if not (folder / _SEALED_FILE).is_file():
            msg = f"secure element {folder}: not provisioned (no {_SEALED_FILE})"
            raise FormatError(msg)
        key = SigningKey.load(folder / _KEY_FILE)
        se = cls(folder, key, ChipSerial(""), ticker)
        record = se._read_record()
        se._serial = ChipSerial(record["serial"])
        se._clock_base_ms = int(record.get("clock_ms", 0))
        return se

    # -- SecureElement -----------------------------------------------------

    @property
    def uri(self) -> str:
        """``file:`` and the folder's absolute path."""
        return f"file:{self._path.resolve()}"

    @property
    def serial(self) -> ChipSerial:
        """The burned-in serial."""
        return self._serial

    @property
    def public_key(self) -> VerifyingKey:
        """The identity public key."""
        return self._key.verifying_key

    def sign(self, message: bytes) -> bytes:
        """Sign with the identity key (Ed25519)."""
        return self._key.sign(message)

    def random_bytes(self, n: int) -> bytes:
        """Bytes from the operating system's CSPRNG."""
        return secrets.token_bytes(int_in_range("random_bytes count", n, 0, 1 << 20))

    def read_clock(self) -> ChipTime:
        """Milliseconds of the kernel's monotonic clock, continuing the sealed clock."""
        elapsed = (self._ticker() - self._mono0) // 1_000_000
        return ChipTime(self._clock_base_ms + elapsed, 0, 0, safe=True)

    def read_counter(self, name: str) -> int:
        """The counter's value from the verified sealed record."""
        _check_counter_name(name)
        with self._lock:
            return int(self._read_record()["counters"].get(name, 0))

    def increment_counter(self, name: str) -> int:
        """Add one to a counter, durably, and return the new value."""
        _check_counter_name(name)
        with self._lock:
            record = self._read_record()
            value = int(record["counters"].get(name, 0)) + 1
            record["counters"][name] = value
            self._write_record(record)
            return value

    def raise_counter(self, name: str, value: int) -> int:
        """Raise a counter to at least ``value`` in one durable write (any jump)."""
        _check_counter_name(name)
        target = int_in_range("counter value", value, 0, 1 << 62)
        with self._lock:
            record = self._read_record()
            current = int(record["counters"].get(name, 0))
            if target > current:
                record["counters"][name] = target
                self._write_record(record)
                current = target
            return current

    def read_state(self) -> bytes:
        """The sealed state blob from the verified sealed record."""
        with self._lock:
            return base64.b64decode(self._read_record()["state"])

    def write_state(self, data: bytes) -> None:
        """Replace the sealed state blob, durably."""
        if len(data) > self.MAX_STATE_BYTES:
            msg = f"sealed state: expected at most {self.MAX_STATE_BYTES} bytes, got {len(data)}"
            raise ParameterError(msg)
        with self._lock:
            record = self._read_record()
            record["state"] = base64.b64encode(bytes(data)).decode()
            self._write_record(record)

    # -- the sealed record -------------------------------------------------

    def _read_record(self) -> dict[str, Any]:
        where = self._path / _SEALED_FILE
        try:
            raw = where.read_bytes()[: _MAX_SEALED_BYTES + 1]
        except OSError as e:
            msg = f"secure element {self._path}: cannot read {_SEALED_FILE} ({e.strerror})"
            raise FormatError(msg) from e
        if len(raw) > _MAX_SEALED_BYTES:
            msg = f"secure element {where}: larger than {_MAX_SEALED_BYTES} bytes (tampered)"
            raise IntegrityError(msg)
        try:
            outer = json.loads(raw)
            payload = base64.b64decode(outer["payload"], validate=True)
            signature = base64.b64decode(outer["signature"], validate=True)
            record = json.loads(payload)
        except (ValueError, KeyError, TypeError) as e:
            msg = f"secure element {where}: sealed record is corrupt ({e.__class__.__name__})"
            raise IntegrityError(msg) from e
        try:
            self.public_key.verify(signature, _SEAL_DOMAIN + payload)
        except IntegrityError as e:
            msg = f"secure element {where}: seal does not verify (record edited outside the SE)"
            raise IntegrityError(msg) from e
        if record.get("public_key") != self.public_key.raw.hex():
            msg = f"secure element {where}: sealed record belongs to another identity key"
            raise IntegrityError(msg)
        if self._serial and record.get("serial") != self._serial:
            msg = (
                f"secure element {where}: burned-in serial changed "
                f"(expected {self._serial!r}, got {record.get('serial')!r})"
            )
            raise IntegrityError(msg)
        return dict(record)

    def _write_record(self, record: dict[str, Any]) -> None:
        record["generation"] = int(record.get("generation", -1)) + 1
        record["clock_ms"] = max(int(record.get("clock_ms", 0)), self.read_clock().clock_ms)
        payload = canonical_json(record)
        signature = self._key.sign(_SEAL_DOMAIN + payload)
        doc = {
            "payload": base64.b64encode(payload).decode(),
            "signature": base64.b64encode(signature).decode(),
            "digest": str(hash_bytes(payload, domain=_SEAL_DOMAIN)),
        }
        target = self._path / _SEALED_FILE
        tmp = target.with_name(f".{_SEALED_FILE}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(doc, indent=1).encode())
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(target)
            dir_fd = os.open(self._path, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
