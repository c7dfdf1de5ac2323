"""Durable storage for `MerkleLog`: the `LogStore` interface, SQLite and in-memory.

A store keeps three things: the leaves (entry bytes and leaf hash, by
index), the hash of every *complete* subtree of the RFC 9162 tree, keyed by
(level, index) with level 1 the parents of leaves, and the tree head (size
and root) of the last commit. Appends are atomic and durable: `append`
returns only after the new leaves, the new subtree hashes and the new head
are committed together.

`SQLiteLogStore` is the default (WAL journal, ``synchronous=FULL``, triggers
that refuse UPDATE and DELETE); `MemoryLogStore` is a fake with the same
behaviour for tests. A PostgreSQL store would implement the same methods.

Example:
    >>> from computewatch.crypto import MerkleLog, SQLiteLogStore
    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "log.sqlite"
    ...     with MerkleLog(SQLiteLogStore(path)) as log:
    ...         _ = log.append_many([b"a", b"b"])
    ...     with MerkleLog.open(path) as log:  # reopened: the entries are durable
    ...         print(log.size)
    2
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Self

from computewatch.crypto._merkle import EMPTY_ROOT
from computewatch.errors import ComputeWatchError, FormatError, IntegrityError

if TYPE_CHECKING:
    import os
    from collections.abc import Iterator, Sequence
    from types import TracebackType

__all__ = ["LogStore", "MemoryLogStore", "SQLiteLogStore", "StaleLogError"]

#: (entry bytes, leaf hash)
Leaf = tuple[bytes, bytes]
#: (level >= 1, index, hash)
Node = tuple[int, int, bytes]

_APPLICATION_ID = 0x63774D4C  # "cwML"
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE leaves (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL, hash BLOB NOT NULL);
CREATE TABLE nodes (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE head (
    id INTEGER PRIMARY KEY CHECK (id = 0), size INTEGER NOT NULL, root BLOB NOT NULL
);
CREATE TRIGGER leaves_append_only_u BEFORE UPDATE ON leaves
    BEGIN SELECT RAISE(ABORT, 'log leaves are append-only'); END;
CREATE TRIGGER leaves_append_only_d BEFORE DELETE ON leaves
    BEGIN SELECT RAISE(ABORT, 'log leaves are append-only'); END;
CREATE TRIGGER nodes_append_only_u BEFORE UPDATE ON nodes
    BEGIN SELECT RAISE(ABORT, 'log nodes are append-only'); END;
CREATE TRIGGER nodes_append_only_d BEFORE DELETE ON nodes
    BEGIN SELECT RAISE(ABORT, 'log nodes are append-only'); END;
"""


class StaleLogError(ComputeWatchError):
    """Another writer appended to the store since this writer last read it."""

    kind = "concurrent append"


class LogStore(ABC):
    """Storage behind a `MerkleLog`; implementations must make `append` atomic.

    Level 0 of `node` and `iter_level` is the leaf hashes. Only complete
    subtrees are stored: node (level, index) exists once leaf
    ``(index + 1) * 2**level - 1`` is appended.
    """

    @abstractmethod
    def tree_head(self) -> tuple[int, bytes]:
        """Return the committed (size, root); ``(0, EMPTY_ROOT)`` for a new store."""

    @abstractmethod
    def leaf(self, index: int) -> Leaf:
        """Return (entry, leaf hash) of a committed leaf; `IntegrityError` if missing."""

    @abstractmethod
    def node(self, level: int, index: int) -> bytes:
        """Return a complete subtree's hash (level 0: a leaf hash); `IntegrityError` if missing."""

    def nodes(self, keys: Sequence[tuple[int, int]]) -> list[bytes]:
        """Return the hashes of several (level, index) keys, in order (one query if possible).

        Raises:
            IntegrityError: If a node is missing.
        """
        return [self.node(level, index) for level, index in keys]

    @abstractmethod
    def iter_leaves(self) -> Iterator[tuple[int, bytes, bytes]]:
        """Yield (index, entry, leaf hash) of every stored leaf in index order."""

    @abstractmethod
    def iter_level(self, level: int) -> Iterator[tuple[int, bytes]]:
        """Yield (index, hash) of every stored node of one level in index order."""

    @abstractmethod
    def append(
        self, old_size: int, leaves: Sequence[Leaf], nodes: Sequence[Node], root: bytes
    ) -> None:
        """Durably commit leaves ``old_size..`` with their new nodes and the new root.

        Raises:
            StaleLogError: If the committed size is not ``old_size`` (nothing
                is written).
        """

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources; the store is unusable afterwards."""

    def __enter__(self) -> Self:
        """Use the store as a context manager that closes it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store."""
        self.close()


def _missing(level: int, index: int) -> IntegrityError:
    what = f"leaf {index}" if level == 0 else f"node (level {level}, index {index})"
    return IntegrityError(f"log store: {what} is missing")


class MemoryLogStore(LogStore):
    """A `LogStore` in memory: a test fake, and a scratch log that needs no durability."""

    def __init__(self) -> None:
        """Create an empty store."""
        self._entries: list[bytes] = []
        self._levels: list[list[bytes]] = [[]]
        self._root = EMPTY_ROOT

    def tree_head(self) -> tuple[int, bytes]:
        """See `LogStore.tree_head`."""
        return len(self._entries), self._root

    def leaf(self, index: int) -> Leaf:
        """See `LogStore.leaf`."""
        if not 0 <= index < len(self._entries):
            raise _missing(0, index)
        return self._entries[index], self._levels[0][index]

    def node(self, level: int, index: int) -> bytes:
        """See `LogStore.node`."""
        if not (level < len(self._levels) and 0 <= index < len(self._levels[level])):
            raise _missing(level, index)
        return self._levels[level][index]

    def iter_leaves(self) -> Iterator[tuple[int, bytes, bytes]]:
        """See `LogStore.iter_leaves`."""
        for i, (entry, h) in enumerate(zip(self._entries, self._levels[0], strict=True)):
            yield i, entry, h

    def iter_level(self, level: int) -> Iterator[tuple[int, bytes]]:
        """See `LogStore.iter_level`."""
        if level < len(self._levels):
            yield from enumerate(list(self._levels[level]))

    def append(
        self, old_size: int, leaves: Sequence[Leaf], nodes: Sequence[Node], root: bytes
    ) -> None:
        """See `LogStore.append`."""
        if old_size != len(self._entries):
            msg = f"log store: expected size {old_size}, found {len(self._entries)}"
            raise StaleLogError(msg)
        for entry, h in leaves:
            self._entries.append(entry)
            self._levels[0].append(h)
        for level, index, h in nodes:
            while len(self._levels) <= level:
                self._levels.append([])
            if index != len(self._levels[level]):
                msg = f"log store: node (level {level}, index {index}) appended out of order"
                raise FormatError(msg)
            self._levels[level].append(h)
        self._root = root

    def tamper(self, level: int, index: int, value: bytes, *, entry: bool = False) -> None:
        """Overwrite a stored hash (or with ``entry=True`` a leaf's entry): for tamper tests."""
        if entry:
            self._entries[index] = value
        else:
            self._levels[level][index] = value


class SQLiteLogStore(LogStore):
    """A durable `LogStore` in one SQLite file (WAL, ``synchronous=FULL``).

    One connection per store; use it from the thread that opened it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Open (or create) the log database at ``path``.

        Raises:
            FormatError: If the file is not a computewatch log database.
        """
        self._path = Path(path)
        self._db = sqlite3.connect(self._path, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._init_schema()
        except sqlite3.DatabaseError as e:
            self._db.close()
            msg = f"log store {self._path}: not a usable SQLite database ({e})"
            raise FormatError(msg) from e
        except BaseException:
            self._db.close()
            raise

    def _init_schema(self) -> None:
        app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if app_id == _APPLICATION_ID and version == _SCHEMA_VERSION:
            return
        tables = self._db.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        if app_id != 0 or version != 0 or tables:
            msg = (
                f"log store {self._path}: expected a computewatch log database "
                f"(application_id {_APPLICATION_ID:#x}, version {_SCHEMA_VERSION}), "
                f"got application_id {app_id:#x}, version {version}, {tables} schema objects"
            )
            raise FormatError(msg)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";\n"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("INSERT INTO head (id, size, root) VALUES (0, 0, ?)", (EMPTY_ROOT,))
            self._db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
            self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    def tree_head(self) -> tuple[int, bytes]:
        """See `LogStore.tree_head`."""
        row = self._db.execute("SELECT size, root FROM head WHERE id = 0").fetchone()
        if row is None:
            msg = f"log store {self._path}: the tree head row is missing"
            raise IntegrityError(msg)
        return int(row[0]), bytes(row[1])

    def leaf(self, index: int) -> Leaf:
        """See `LogStore.leaf`."""
        row = self._db.execute("SELECT entry, hash FROM leaves WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise _missing(0, index)
        return bytes(row[0]), bytes(row[1])

    def node(self, level: int, index: int) -> bytes:
        """See `LogStore.node`."""
        if level == 0:
            row = self._db.execute("SELECT hash FROM leaves WHERE idx = ?", (index,)).fetchone()
        else:
            row = self._db.execute(
                "SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, index)
            ).fetchone()
        if row is None:
            raise _missing(level, index)
        return bytes(row[0])

    def nodes(self, keys: Sequence[tuple[int, int]]) -> list[bytes]:
        """See `LogStore.nodes`; one SQL query for the whole batch."""
        if len(keys) < 2:  # noqa: PLR2004 - a plain lookup is cheaper
            return super().nodes(keys)
        values = ", ".join(["(?, ?, ?)"] * len(keys))
        args = [x for pos, (level, index) in enumerate(keys) for x in (pos, level, index)]
        rows = self._db.execute(
            f"WITH k(pos, level, idx) AS (VALUES {values}) "  # noqa: S608 - placeholders only
            "SELECT k.pos, n.hash FROM k CROSS JOIN nodes n ON n.level = k.level AND n.idx = k.idx "
            "UNION ALL "
            "SELECT k.pos, l.hash FROM k CROSS JOIN leaves l ON k.level = 0 AND l.idx = k.idx",
            args,
        ).fetchall()
        found = {int(pos): bytes(h) for pos, h in rows}
        for pos, (level, index) in enumerate(keys):
            if pos not in found:
                raise _missing(level, index)
        return [found[pos] for pos in range(len(keys))]

    def iter_leaves(self) -> Iterator[tuple[int, bytes, bytes]]:
        """See `LogStore.iter_leaves`."""
        cur = self._db.execute("SELECT idx, entry, hash FROM leaves ORDER BY idx")
        for idx, entry, h in cur:
            yield int(idx), bytes(entry), bytes(h)

    def iter_level(self, level: int) -> Iterator[tuple[int, bytes]]:
        """See `LogStore.iter_level`."""
        if level == 0:
            cur = self._db.execute("SELECT idx, hash FROM leaves ORDER BY idx")
        else:
            cur = self._db.execute(
                "SELECT idx, hash FROM nodes WHERE level = ? ORDER BY idx", (level,)
            )
        for idx, h in cur:
            yield int(idx), bytes(h)

    def append(
        self, old_size: int, leaves: Sequence[Leaf], nodes: Sequence[Node], root: bytes
    ) -> None:
        """See `LogStore.append`."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._expect_size(old_size)
            db.executemany(
                "INSERT INTO leaves (idx, entry, hash) VALUES (?, ?, ?)",
                [(old_size + i, e, h) for i, (e, h) in enumerate(leaves)],
            )
            db.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
            db.execute(
                "UPDATE head SET size = ?, root = ? WHERE id = 0", (old_size + len(leaves), root)
            )
        except sqlite3.IntegrityError as e:
            db.execute("ROLLBACK")
            msg = f"log store {self._path}: append at size {old_size} conflicts with stored rows"
            raise IntegrityError(msg) from e
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _expect_size(self, old_size: int) -> None:
        (size,) = self._db.execute("SELECT size FROM head WHERE id = 0").fetchone()
        if size != old_size:
            msg = f"log store {self._path}: expected size {old_size}, found {size}"
            raise StaleLogError(msg)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()
