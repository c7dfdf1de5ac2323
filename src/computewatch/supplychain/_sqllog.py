"""`SQLLogStore`: the Merkle log's `LogStore` over SQLAlchemy (SQLite and PostgreSQL).

It keeps the same three things as `computewatch.crypto.SQLiteLogStore`
(leaves, complete subtree hashes, the tree head) in the registry's own
database, so that a custody event and its log entry commit together:

    >>> store = SQLLogStore(engine)                        # doctest: +SKIP
    >>> log = MerkleLog(store)                             # doctest: +SKIP
    >>> with engine.begin() as conn, store.bind(conn):     # doctest: +SKIP
    ...     conn.execute(chips.insert(), rows)             # the directory's write
    ...     log.append_many(entries)                       # in the same transaction
    >>> store.committed()                                  # doctest: +SKIP

Inside `bind`, `append` writes through the caller's connection and does
not commit; after the caller commits it calls `committed` (which lets the
node cache see the new hashes), or after a rollback `rolled_back` and then
`MerkleLog.refresh`. Outside `bind`, `append` runs its own transaction.

Stored hashes never change once committed, so the store caches them: every
node of level `CACHE_ALL_FROM_LEVEL` and above, and the lower levels of the
most recent `CACHE_RECENT_LEAVES` leaves, which is what proofs for fresh
receipts touch. A cache miss is one query.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from computewatch.crypto import LogStore, StaleLogError
from computewatch.crypto.hazmat import EMPTY_ROOT
from computewatch.errors import IntegrityError
from computewatch.supplychain._tables import WRITE, log_head, log_leaves, log_nodes

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy import Connection, Engine

__all__ = ["CACHE_ALL_FROM_LEVEL", "CACHE_RECENT_LEAVES", "SQLLogStore"]

#: Nodes at this level and above stay cached (one per 2**level leaves).
CACHE_ALL_FROM_LEVEL = 10
#: Lower-level nodes stay cached for this many of the newest leaves.
CACHE_RECENT_LEAVES = 1 << 16
_PRUNE_EVERY = 4096


def _missing(level: int, index: int) -> IntegrityError:
    what = f"leaf {index}" if level == 0 else f"node (level {level}, index {index})"
    return IntegrityError(f"registry log store: {what} is missing")


class SQLLogStore(LogStore):
    """A `LogStore` in the registry database (see the module docs); thread-safe."""

    def __init__(self, engine: Engine) -> None:
        """Use the log tables of ``engine``'s database (create them with the registry schema)."""
        self._engine = engine
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, int], bytes] = {}
        self._pending: list[tuple[int, int, bytes]] = []
        self._size_hint = 0
        self._since_prune = 0

    # --- connections -----------------------------------------------------------

    @contextlib.contextmanager
    def bind(self, conn: Connection) -> Iterator[None]:
        """Make `append` (in this thread) write through ``conn`` without committing."""
        self._local.conn = conn
        try:
            yield
        finally:
            self._local.conn = None

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Connection]:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self._engine.connect() as own:
            yield own

    # --- the node cache --------------------------------------------------------

    def committed(self) -> None:
        """Tell the store that the bound transaction committed (the cache takes its nodes)."""
        with self._lock:
            for level, index, h in self._pending:
                self._cache[level, index] = h
            self._pending.clear()
            self._since_prune += 1
            if self._since_prune >= _PRUNE_EVERY:
                self._prune()

    def rolled_back(self) -> None:
        """Tell the store that the bound transaction rolled back (its nodes are forgotten)."""
        with self._lock:
            self._pending.clear()

    def _prune(self) -> None:
        self._since_prune = 0
        floor = self._size_hint - CACHE_RECENT_LEAVES
        stale = [
            (level, index)
            for (level, index) in self._cache
            if level < CACHE_ALL_FROM_LEVEL and ((index + 1) << level) <= floor
        ]
        for key in stale:
            del self._cache[key]

    # --- LogStore --------------------------------------------------------------

    def tree_head(self) -> tuple[int, bytes]:
        """See `LogStore.tree_head`."""
        with self._conn() as conn:
            row = conn.execute(select(log_head.c.size, log_head.c.root)).first()
        if row is None:
            return 0, EMPTY_ROOT
        self._size_hint = int(row[0])
        return int(row[0]), bytes(row[1])

    def leaf(self, index: int) -> tuple[bytes, bytes]:
        """See `LogStore.leaf`."""
        with self._conn() as conn:
            row = conn.execute(
                select(log_leaves.c.entry, log_leaves.c.hash).where(log_leaves.c.idx == index)
            ).first()
        if row is None:
            raise _missing(0, index)
        return bytes(row[0]), bytes(row[1])

    def node(self, level: int, index: int) -> bytes:
        """See `LogStore.node`."""
        return self.nodes([(level, index)])[0]

    def nodes(self, keys: Sequence[tuple[int, int]]) -> list[bytes]:
        """See `LogStore.nodes`: cached hashes, the rest in at most two queries."""
        found: dict[tuple[int, int], bytes] = {}
        with self._lock:
            for key in keys:
                h = self._cache.get(key)
                if h is not None:
                    found[key] = h
        wanted = [k for k in dict.fromkeys(keys) if k not in found]
        if wanted:
            found.update(self._fetch(wanted))
        for level, index in keys:
            if (level, index) not in found:
                raise _missing(level, index)
        return [found[k] for k in keys]

    def _fetch(self, keys: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        leaves = [i for level, i in keys if level == 0]
        by_level: dict[int, list[int]] = {}
        for level, i in keys:
            if level:
                by_level.setdefault(level, []).append(i)
        out: dict[tuple[int, int], bytes] = {}
        with self._conn() as conn:
            if leaves:
                q = select(log_leaves.c.idx, log_leaves.c.hash).where(log_leaves.c.idx.in_(leaves))
                out.update(((0, int(i)), bytes(h)) for i, h in conn.execute(q))
            if by_level:
                cond = or_(
                    *(
                        and_(log_nodes.c.level == level, log_nodes.c.idx.in_(idx))
                        for level, idx in by_level.items()
                    )
                )
                q = select(log_nodes.c.level, log_nodes.c.idx, log_nodes.c.hash).where(cond)
                out.update(((int(lv), int(i)), bytes(h)) for lv, i, h in conn.execute(q))
        return out

    def iter_leaves(self) -> Iterator[tuple[int, bytes, bytes]]:
        """See `LogStore.iter_leaves` (streamed in pages)."""
        start = 0
        while True:
            with self._conn() as conn:
                rows = conn.execute(
                    select(log_leaves.c.idx, log_leaves.c.entry, log_leaves.c.hash)
                    .where(log_leaves.c.idx >= start)
                    .order_by(log_leaves.c.idx)
                    .limit(4096)
                ).all()
            if not rows:
                return
            for idx, entry, h in rows:
                yield int(idx), bytes(entry), bytes(h)
            start = int(rows[-1][0]) + 1

    def iter_level(self, level: int) -> Iterator[tuple[int, bytes]]:
        """See `LogStore.iter_level` (streamed in pages)."""
        table = log_leaves if level == 0 else log_nodes
        start = 0
        while True:
            q = select(table.c.idx, table.c.hash).where(table.c.idx >= start)
            if level:
                q = q.where(log_nodes.c.level == level)
            with self._conn() as conn:
                rows = conn.execute(q.order_by(table.c.idx).limit(4096)).all()
            if not rows:
                return
            for idx, h in rows:
                yield int(idx), bytes(h)
            start = int(rows[-1][0]) + 1

    def append(
        self,
        old_size: int,
        leaves: Sequence[tuple[bytes, bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        root: bytes,
    ) -> None:
        """See `LogStore.append`; inside `bind` it does not commit."""
        bound: Connection | None = getattr(self._local, "conn", None)
        if bound is not None:
            self._write(bound, old_size, leaves, nodes, root)
            return
        with self._engine.connect().execution_options(**WRITE) as conn, conn.begin():
            self._write(conn, old_size, leaves, nodes, root)
        self.committed()

    def _write(
        self,
        conn: Connection,
        old_size: int,
        leaves: Sequence[tuple[bytes, bytes]],
        nodes: Sequence[tuple[int, int, bytes]],
        root: bytes,
    ) -> None:
        row = conn.execute(
            select(log_head.c.size).where(log_head.c.id == 0).with_for_update()
        ).first()
        size = 0 if row is None else int(row[0])
        if size != old_size:
            msg = f"registry log store: expected size {old_size}, found {size}"
            raise StaleLogError(msg)
        new_size = old_size + len(leaves)
        try:
            conn.execute(
                insert(log_leaves),
                [{"idx": old_size + i, "entry": e, "hash": h} for i, (e, h) in enumerate(leaves)],
            )
            if nodes:
                conn.execute(
                    insert(log_nodes), [{"level": lv, "idx": i, "hash": h} for lv, i, h in nodes]
                )
            if row is None:
                conn.execute(insert(log_head).values(id=0, size=new_size, root=root))
            else:
                conn.execute(
                    update(log_head).where(log_head.c.id == 0).values(size=new_size, root=root)
                )
        except SQLIntegrityError as e:
            msg = f"registry log store: append at size {old_size} conflicts with stored rows"
            raise IntegrityError(msg) from e
        with self._lock:
            self._pending.extend((0, old_size + i, h) for i, (_, h) in enumerate(leaves))
            self._pending.extend(nodes)
            self._size_hint = new_size
