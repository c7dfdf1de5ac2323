"""`TrustedCheckpoints`: a client's memory of the newest checkpoint it accepted per log.

A checkpoint is accepted only under a `Policy` (the log's signature and a
quorum of witness cosignatures) *and* only if it extends what this client
accepted before: a smaller tree is a rollback (`RollbackError`), the same
size with another root or a larger tree without a valid consistency proof is
a fork shown to this client (`IntegrityError`). The record is a
`CheckpointStore` (SQLite; ``":memory:"`` for a process-local one), updated
atomically, so it survives restarts and is shared by processes using the
same file.

Example:
    >>> from computewatch.crypto import Checkpoint, MerkleLog, NoteSigner, Policy
    >>> from computewatch.crypto import SignedCheckpoint, TrustedCheckpoints
    >>> signer = NoteSigner.generate("example.com/log")
    >>> log = MerkleLog.in_memory()
    >>> trusted = TrustedCheckpoints(Policy.for_logs([signer.verifier]))
    >>> _ = log.append_many([b"a"])
    >>> trusted.accept(log.checkpoint(signer).to_bytes(), "example.com/log").checkpoint.size
    1
    >>> _ = log.append_many([b"b", b"c"])
    >>> grown = trusted.accept(log.checkpoint(signer), "example.com/log", log.consistency_proof)
    >>> grown.checkpoint.size
    3
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from computewatch.crypto._checkpoint import Checkpoint, SignedCheckpoint
from computewatch.crypto._cpstore import CheckpointStore, StoredCheckpoint
from computewatch.crypto._merkle import verify_consistency
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Sequence
    from types import TracebackType

    from computewatch.crypto._policy import Policy, WitnessedCheckpoint

__all__ = ["RollbackError", "TrustedCheckpoints"]


class RollbackError(IntegrityError):
    """A checkpoint smaller than one this client already accepted for the log."""

    kind = "rollback detected"


class TrustedCheckpoints:
    """The newest accepted checkpoint per origin, and the policy it must meet."""

    def __init__(self, policy: Policy, store: CheckpointStore | None = None) -> None:
        """Accept checkpoints under ``policy``; remember them in ``store`` (default: memory)."""
        self.policy = policy
        self.store = store if store is not None else CheckpointStore(":memory:")

    @classmethod
    def open(cls, path: str | os.PathLike[str], policy: Policy) -> Self:
        """Remember accepted checkpoints in the SQLite file ``path``."""
        return cls(policy, CheckpointStore(path))

    def latest(self, origin: str) -> Checkpoint | None:
        """The newest checkpoint accepted for ``origin``, if any."""
        stored = self.store.latest(origin)
        if stored is None:
            return None
        return SignedCheckpoint.parse(stored.note).checkpoint

    def accept(
        self,
        data: bytes | str | SignedCheckpoint,
        origin: str,
        consistency: Callable[[int, int], Sequence[bytes]] | None = None,
        *,
        now: float | None = None,
    ) -> WitnessedCheckpoint:
        """Verify ``data`` under the policy and against the newest accepted checkpoint.

        Args:
            data: The signed (and cosigned) checkpoint.
            origin: The log the caller expects.
            consistency: Returns the consistency proof between two sizes
                (needed when the checkpoint grows the accepted tree).
            now: For cosignature timestamps (see `Policy.verify`).

        Raises:
            RollbackError: Smaller than the newest accepted checkpoint.
            IntegrityError: Another root for an accepted size, a failed
                consistency proof, or the policy's signature checks.
            QuorumNotMet: Too few witnesses cosigned it.
            FormatError: It grows the tree and no ``consistency`` was given.
        """
        witnessed = self.policy.verify(data, origin, now=now)
        new = witnessed.checkpoint

        def decide(current: StoredCheckpoint | None) -> StoredCheckpoint | None:
            record = StoredCheckpoint(new.size, new.root_hash, witnessed.signed.to_bytes())
            if current is None or current.size == 0:
                return record
            if new.size < current.size:
                msg = (
                    f"log {origin}: checkpoint size {new.size} is older than the accepted "
                    f"size {current.size}"
                )
                raise RollbackError(msg)
            if new.size == current.size:
                if new.root_hash != current.root_hash:
                    msg = f"log {origin}: two different roots for size {new.size} (a split view)"
                    raise IntegrityError(msg)
                return None
            if consistency is None:
                msg = f"log {origin}: a consistency proof from {current.size} is needed"
                raise FormatError(msg)
            verify_consistency(
                old_size=current.size,
                new_size=new.size,
                proof=consistency(current.size, new.size),
                old_root=current.root_hash,
                new_root=new.root_hash,
            )
            return record

        self.store.update(origin, decide)
        return witnessed

    def close(self) -> None:
        """Close the store."""
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
        """Close the store."""
        self.close()
