"""`CheckpointStore`: the latest checkpoint per log origin, updated atomically in SQLite.

Witnesses (the latest checkpoint they cosigned) and clients (the newest
checkpoint they accepted) keep the same record: per origin, a tree size, a
root hash and the signed note. `CheckpointStore.update` runs a caller's
check-and-decide function inside one ``BEGIN IMMEDIATE`` transaction (so
two concurrent updates serialize, in one process or several) and commits
the new record before it returns; with WAL and ``synchronous=FULL`` a
committed record survives a crash or SIGKILL, and an uncommitted one leaves
no trace.

Example:
    >>> import pathlib, tempfile
    >>> from computewatch.crypto import CheckpointStore, StoredCheckpoint
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with CheckpointStore(pathlib.Path(tmp) / "state.db") as store:
    ...         _ = store.update("log", lambda old: StoredCheckpoint(1, bytes(32), b"note"))
    ...         print(store.latest("log").size)
    1
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

from computewatch.errors import FormatError

if TYPE_CHECKING:
    import os
    from collections.abc import Callable
    from types import TracebackType

__all__ = ["CheckpointStore", "StoredCheckpoint"]

_APPLICATION_ID = 0x63774350  # "cwCP"
# sizes are decimal TEXT: tree sizes reach 2**64 - 1, past SQLite's INTEGER
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS latest ("
    " origin TEXT PRIMARY KEY, size TEXT NOT NULL, root BLOB NOT NULL, note BLOB NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """One origin's record: tree size, root hash and the signed note bytes."""

    size: int
    root_hash: bytes
    note: bytes


class CheckpointStore:
    """The latest checkpoint per origin in one SQLite file (thread-safe, multi-process safe)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open (or create) the store at ``path``.

        Raises:
            FormatError: The file is not a usable checkpoint store.
        """
        self._path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except sqlite3.Error as e:
            msg = f"checkpoint store {self._path}: cannot open ({e})"
            raise FormatError(msg) from e
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
            foreign = app_id not in {0, _APPLICATION_ID} or (app_id == 0 and tables)
            if not foreign:
                self._db.execute(_SCHEMA)
                self._db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
        except sqlite3.DatabaseError as e:
            self._db.close()
            msg = f"checkpoint store {self._path}: not a usable SQLite database ({e})"
            raise FormatError(msg) from e
        except BaseException:
            self._db.close()
            raise
        if foreign:
            self._db.close()
            msg = f"checkpoint store {self._path}: not a computewatch checkpoint store"
            raise FormatError(msg)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def latest(self, origin: str) -> StoredCheckpoint | None:
        """The committed record for ``origin``, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT size, root, note FROM latest WHERE origin = ?", (origin,)
            ).fetchone()
        return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), bytes(row[2]))

    def origins(self) -> list[str]:
        """Every origin with a record."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT origin FROM latest ORDER BY origin")]

    def update(
        self, origin: str, decide: Callable[[StoredCheckpoint | None], StoredCheckpoint | None]
    ) -> StoredCheckpoint | None:
        """Atomically replace ``origin``'s record by ``decide(current)``.

        ``decide`` runs inside the write transaction; it returns the new
        record (None: keep the current one) or raises, which rolls back and
        propagates. The new record is committed before this returns it.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT size, root, note FROM latest WHERE origin = ?", (origin,)
                ).fetchone()
                current = (
                    None
                    if row is None
                    else StoredCheckpoint(int(row[0]), bytes(row[1]), bytes(row[2]))
                )
                new = decide(current)
                if new is not None:
                    self._db.execute(
                        "INSERT INTO latest (origin, size, root, note) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (origin) DO UPDATE SET "
                        "size = excluded.size, root = excluded.root, note = excluded.note",
                        (origin, str(new.size), new.root_hash, new.note),
                    )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return new if new is not None else current

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

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
