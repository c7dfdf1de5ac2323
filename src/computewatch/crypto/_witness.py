r"""A transparency-log witness (c2sp.org/tlog-witness ``add-checkpoint``), without HTTP.

`Witness.add_checkpoint` takes the request body the spec defines::

    old <size of the latest checkpoint the client believes we cosigned>
    <base64 consistency proof hash>       (0 to 63 lines)

    <signed checkpoint>

and returns the response body: one cosignature line per witness key. The
checks, in the spec's order, each with its HTTP status (`WitnessError.status`):

* malformed body: 400 (`WitnessBadRequest`);
* unknown origin: 404 (`UnknownLog`);
* no signature by a trusted log key, or a trusted key's signature fails: 403
  (`WitnessForbidden`);
* old size larger than the checkpoint's: 400;
* old size other than the size of the latest checkpoint cosigned for the
  origin (0 if none): 409 (`SizeConflict`, whose ``latest_size`` is the body
  ``"<size>\n"`` with ``Content-Type: text/x.tlog.size``);
* a size-0 checkpoint without the empty root, a proof with old size 0, a
  consistency proof that fails, or equal sizes with different roots: 422
  (`BadConsistency`).

The check against the stored checkpoint and the write of the new one run in
one ``BEGIN IMMEDIATE`` SQLite transaction (`CheckpointStore.update`), and
the cosignature is returned only after the commit: two racing requests
cannot roll the witness back, and a crash at any point never leaves a
cosignature out that the stored state does not account for.

Example:
    >>> import pathlib, tempfile
    >>> from computewatch.crypto import Cosigner, MerkleLog, NoteSigner, Witness
    >>> log, signer = MerkleLog.in_memory(), NoteSigner.generate("example.com/log")
    >>> _ = log.append_many([b"a", b"b"])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     w = Witness.open(pathlib.Path(tmp) / "w.db", [Cosigner.generate("w.example")],
    ...                      {"example.com/log": [signer.verifier]}, clock=lambda: 1e9)
    ...     body = add_checkpoint_body(0, (), log.checkpoint(signer).to_bytes())
    ...     w.add_checkpoint(body).decode().startswith("\u2014 w.example ")
    True
"""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING, Self

from computewatch.crypto._checkpoint import SignedCheckpoint, parse_decimal
from computewatch.crypto._cpstore import CheckpointStore, StoredCheckpoint
from computewatch.crypto._merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from computewatch.crypto._note import MAX_NOTE_SIZE, Note, strict_b64decode
from computewatch.errors import (
    ComputeWatchError,
    FormatError,
    IntegrityError,
    VerificationFailed,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from types import TracebackType

    from computewatch.crypto._cosignature import Cosigner
    from computewatch.crypto._note import NoteVerifier

__all__ = [
    "MAX_ADD_CHECKPOINT_BYTES",
    "SIZE_CONTENT_TYPE",
    "BadConsistency",
    "SizeConflict",
    "UnknownLog",
    "Witness",
    "WitnessBadRequest",
    "WitnessError",
    "WitnessForbidden",
    "add_checkpoint_body",
    "parse_add_checkpoint",
]

#: Largest add-checkpoint body accepted: 63 proof lines, a size line and a note.
MAX_ADD_CHECKPOINT_BYTES = 64 * 46 + MAX_NOTE_SIZE
#: The Content-Type of a 409 body.
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_MAX_PROOF_LINES = 63


class WitnessError(ComputeWatchError):
    """A refused add-checkpoint; ``status`` is the HTTP status the spec assigns."""

    status = 400


class WitnessBadRequest(WitnessError, FormatError):  # noqa: N818 - named after the HTTP refusal
    """400: malformed body, or old size larger than the checkpoint's."""

    status = 400


class UnknownLog(WitnessError, VerificationFailed):  # noqa: N818 - named after the HTTP refusal
    """404: the witness does not know the checkpoint's origin."""

    status = 404
    kind = "unknown log"


class WitnessForbidden(WitnessError, IntegrityError):  # noqa: N818 - named after the HTTP refusal
    """403: no valid signature by a trusted key of the origin (or a bad one)."""

    status = 403


class SizeConflict(WitnessError, VerificationFailed):  # noqa: N818 - named after the HTTP refusal
    """409: the old size is not the size of the latest checkpoint cosigned."""

    status = 409
    kind = "size conflict"

    def __init__(self, message: str, latest_size: int) -> None:
        """Carry the latest cosigned size (the 409 response body)."""
        super().__init__(message)
        self.latest_size = latest_size

    @property
    def body(self) -> bytes:
        """The response body: the latest size in decimal and a newline."""
        return f"{self.latest_size}\n".encode()


class BadConsistency(WitnessError, IntegrityError):  # noqa: N818 - named after the HTTP refusal
    """422: the checkpoint is not consistent with the latest one cosigned."""

    status = 422


def add_checkpoint_body(old_size: int, proof: Sequence[bytes], checkpoint: bytes) -> bytes:
    """Build an add-checkpoint request body."""
    lines = [f"old {old_size}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n").encode() + checkpoint


def parse_add_checkpoint(body: bytes) -> tuple[int, tuple[bytes, ...], SignedCheckpoint]:
    """Parse an add-checkpoint body into (old size, proof, signed checkpoint).

    Raises:
        WitnessBadRequest: It breaks the grammar (the message says where).
    """
    if len(body) > MAX_ADD_CHECKPOINT_BYTES:
        msg = f"add-checkpoint: expected at most {MAX_ADD_CHECKPOINT_BYTES} bytes, got {len(body)}"
        raise WitnessBadRequest(msg)
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        msg = "add-checkpoint: expected an empty line before the checkpoint"
        raise WitnessBadRequest(msg)
    try:
        lines = head.decode("ascii").split("\n")
        if not lines[0].startswith("old "):
            msg = f"add-checkpoint line 1: expected 'old <size>', got {lines[0][:40]!r}"
            raise WitnessBadRequest(msg)
        old = parse_decimal(lines[0][4:], "add-checkpoint line 1 (old size)")
        if len(lines) - 1 > _MAX_PROOF_LINES:
            msg = f"add-checkpoint: expected at most 63 proof lines, got {len(lines) - 1}"
            raise WitnessBadRequest(msg)
        proof = []
        for n, line in enumerate(lines[1:], start=2):
            value = strict_b64decode(line, f"add-checkpoint line {n} (proof hash)")
            if len(value) != HASH_SIZE:
                msg = f"add-checkpoint line {n}: expected a {HASH_SIZE}-byte hash"
                raise WitnessBadRequest(msg)
            proof.append(value)
        signed = SignedCheckpoint.parse(note)
    except UnicodeDecodeError as e:
        msg = f"add-checkpoint: expected ASCII before the checkpoint (offset {e.start})"
        raise WitnessBadRequest(msg) from e
    except WitnessError:
        raise
    except (FormatError, IntegrityError) as e:  # IntegrityError: an unsigned checkpoint
        msg = f"add-checkpoint: {e.message}"
        raise WitnessBadRequest(msg) from e
    return old, tuple(proof), signed


class Witness:
    """A witness: its cosigning keys, the logs it follows, and its state store."""

    def __init__(
        self,
        store: CheckpointStore,
        cosigners: Iterable[Cosigner],
        logs: Mapping[str, Iterable[NoteVerifier]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Witness the logs ``logs`` (origin -> trusted note keys) with ``cosigners``.

        Raises:
            FormatError: No cosigner, no log, or a log key named other than its origin.
        """
        self.store = store
        self.cosigners = tuple(cosigners)
        self.logs = {origin: list(keys) for origin, keys in logs.items()}
        self._clock = clock
        if not self.cosigners:
            msg = "witness: expected at least one cosigning key, got none"
            raise FormatError(msg)
        if not self.logs or not all(self.logs.values()):
            msg = "witness: expected at least one log with at least one key"
            raise FormatError(msg)
        for origin, keys in self.logs.items():
            for key in keys:
                if key.name != origin:
                    msg = f"witness: log key {key.name!r} is not named as its origin {origin!r}"
                    raise FormatError(msg)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        cosigners: Iterable[Cosigner],
        logs: Mapping[str, Iterable[NoteVerifier]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> Self:
        """A witness whose state is the SQLite file at ``path``."""
        return cls(CheckpointStore(path), cosigners, logs, clock=clock)

    def close(self) -> None:
        """Close the state store."""
        self.store.close()

    def __enter__(self) -> Self:
        """Use as a context manager that closes it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the witness."""
        self.close()

    def _authenticate(self, signed: SignedCheckpoint) -> None:
        origin = signed.checkpoint.origin
        keys = self.logs.get(origin)
        if keys is None:
            msg = f"witness: unknown log origin {origin[:80]!r}"
            raise UnknownLog(msg)
        try:
            signed.verify(keys, origin)
        except (IntegrityError, FormatError) as e:
            msg = f"witness: checkpoint of {origin}: {e.message}"
            raise WitnessForbidden(msg) from e

    def add_checkpoint(self, body: bytes) -> bytes:
        """Check and cosign a checkpoint; return the response body (cosignature lines).

        Raises:
            WitnessError: The refusal, with its ``status`` (400, 403, 404, 409, 422).
        """
        old, proof, signed = parse_add_checkpoint(body)
        self._authenticate(signed)
        cp = signed.checkpoint
        if old > cp.size:
            msg = f"add-checkpoint: old size {old} is larger than the checkpoint size {cp.size}"
            raise WitnessBadRequest(msg)

        def decide(current: StoredCheckpoint | None) -> StoredCheckpoint:
            latest = 0 if current is None else current.size
            if old != latest:
                msg = f"add-checkpoint {cp.origin}: old size {old}, latest cosigned size {latest}"
                raise SizeConflict(msg, latest)
            _check_consistent(current, old, proof, cp.size, cp.root_hash)
            now = max(1, int(self._clock()))
            lines = [c.cosign(cp, timestamp=now) for c in self.cosigners]
            mine = {(c.name, c.key.key_id) for c in self.cosigners}
            # lines in the request that claim to be ours are dropped, never echoed
            others = [s for s in signed.note.signatures if (s.name, s.key_id) not in mine]
            note = SignedCheckpoint(cp, Note(signed.note.text, (*others, *lines)))
            return StoredCheckpoint(cp.size, cp.root_hash, note.to_bytes())

        stored = self.store.update(cp.origin, decide)
        if stored is None:  # pragma: no cover - decide always returns a record
            msg = "witness: nothing stored"
            raise WitnessError(msg)
        return _own_lines(stored.note, self.cosigners)

    def latest(self, origin: str) -> bytes | None:
        """The latest cosigned checkpoint of ``origin`` with our cosignatures, if any."""
        stored = self.store.latest(origin)
        return None if stored is None else stored.note


def _check_consistent(
    current: StoredCheckpoint | None,
    old: int,
    proof: tuple[bytes, ...],
    size: int,
    root: bytes,
) -> None:
    where = f"add-checkpoint from size {old} to {size}"
    if size == 0 and root != EMPTY_ROOT:
        msg = f"{where}: a size-0 checkpoint must have the empty tree's root"
        raise BadConsistency(msg)
    if old == 0:
        if proof:
            msg = f"{where}: expected no proof from size 0, got {len(proof)} lines"
            raise BadConsistency(msg)
        return
    if current is None:  # pragma: no cover - old == latest == 0 handled above
        msg = f"{where}: no stored checkpoint"
        raise BadConsistency(msg)
    if old == size:
        if root != current.root_hash or proof:
            msg = f"{where}: same size, but another root (or a non-empty proof)"
            raise BadConsistency(msg)
        return
    try:
        verify_consistency(
            old_size=old, new_size=size, proof=proof, old_root=current.root_hash, new_root=root
        )
    except (FormatError, IntegrityError) as e:
        msg = f"{where}: {e.message}"
        raise BadConsistency(msg) from e


def _own_lines(note: bytes, cosigners: Sequence[Cosigner]) -> bytes:
    signed = SignedCheckpoint.parse(note)
    mine = {(c.name, c.key.key_id) for c in cosigners}
    return b"".join(
        s.to_line().encode() for s in signed.note.signatures if (s.name, s.key_id) in mine
    )
