"""`MerkleLog`: an append-only RFC 9162 transparency log over a `LogStore`.

Appending stores the leaf and every subtree that the leaf completes
(amortised one new node per leaf), computed from the log's *frontier*, the
O(log n) complete subtrees whose sizes are the binary digits of the tree
size. Any root, inclusion proof or consistency proof is then assembled from
O(log n) stored subtree hashes, at millions of entries as at ten.

Opening a log checks, in O(log n), that the stored frontier reproduces the
stored root and that the last leaf hash matches its entry; `MerkleLog.audit`
re-derives every stored hash from the entries.

Example:
    >>> from computewatch.crypto import MerkleLog, verify_inclusion
    >>> log = MerkleLog.in_memory()
    >>> log.append_many([b"a", b"b", b"c"])
    range(0, 3)
    >>> proof = log.inclusion_proof(1)
    >>> verify_inclusion(b"b", index=1, size=3, proof=proof, root=log.root())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from computewatch.crypto._checkpoint import Checkpoint, SignedCheckpoint
from computewatch.crypto._logstore import MemoryLogStore, SQLiteLogStore, StaleLogError
from computewatch.crypto._merkle import (
    EMPTY_ROOT,
    check_uint,
    consistency_path,
    inclusion_path,
    leaf_hash,
    node_hash,
    short_hex,
)
from computewatch.crypto._receipt import Receipt
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Iterable
    from types import TracebackType

    from computewatch.crypto._logstore import Leaf, LogStore, Node
    from computewatch.crypto._note import NoteSigner

__all__ = ["MAX_ENTRY_SIZE", "MerkleLog"]

#: Default largest entry accepted by `MerkleLog.append`, in bytes.
MAX_ENTRY_SIZE = 1 << 20
_APPEND_RETRIES = 3

#: A complete subtree on the right edge of the tree: (level, hash).
_Frontier = list[tuple[int, bytes]]


def _fold(frontier: _Frontier) -> bytes:
    """Return the root of the tree whose frontier this is."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1][1]
    for _, h in reversed(frontier[:-1]):
        root = node_hash(h, root)
    return root


class MerkleLog:
    """An append-only Merkle transparency log (RFC 9162) with durable storage.

    One writer per store at a time is the intended use; a second writer is
    detected at commit time (`StaleLogError` is retried after a reload).
    """

    def __init__(self, store: LogStore, *, max_entry_size: int = MAX_ENTRY_SIZE) -> None:
        """Open a log over ``store`` and check its tree head cheaply.

        Raises:
            IntegrityError: If the stored frontier does not reproduce the
                stored root, or the last leaf's hash does not match its entry.
        """
        self._store = store
        self._max_entry_size = max_entry_size
        self._size = 0
        self._frontier: _Frontier = []
        self._suffixes: dict[int, bytes] | None = None
        self.refresh()

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, max_entry_size: int = MAX_ENTRY_SIZE) -> Self:
        """Open or create a durable log in the SQLite file ``path``."""
        store = SQLiteLogStore(path)
        try:
            return cls(store, max_entry_size=max_entry_size)
        except BaseException:
            store.close()
            raise

    @classmethod
    def in_memory(cls, *, max_entry_size: int = MAX_ENTRY_SIZE) -> Self:
        """Create a log in memory (not durable)."""
        return cls(MemoryLogStore(), max_entry_size=max_entry_size)

    def refresh(self) -> None:
        """Reload the committed size and frontier from the store, and check them."""
        size, root = self._store.tree_head()
        frontier = self._frontier_at(size)
        if _fold(frontier) != root:
            msg = (
                f"log store: root from stored subtrees {short_hex(_fold(frontier))} != "
                f"stored root {short_hex(root)} at size {size}"
            )
            raise IntegrityError(msg)
        if size:
            entry, stored = self._store.leaf(size - 1)
            if leaf_hash(entry) != stored:
                msg = f"log store leaf {size - 1}: stored hash does not match the stored entry"
                raise IntegrityError(msg)
        self._size, self._frontier, self._suffixes = size, frontier, None

    @property
    def size(self) -> int:
        """The number of committed entries."""
        return self._size

    @property
    def store(self) -> LogStore:
        """The store behind this log."""
        return self._store

    def close(self) -> None:
        """Close the store."""
        self._store.close()

    def __enter__(self) -> Self:
        """Use the log as a context manager that closes it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store."""
        self.close()

    # --- appending -------------------------------------------------------------

    def _check_entry(self, entry: object) -> bytes:
        if not isinstance(entry, bytes | bytearray | memoryview):
            msg = f"log entry: expected bytes, got {type(entry).__name__}"
            raise FormatError(msg)
        data = bytes(entry)
        if len(data) > self._max_entry_size:
            msg = f"log entry: expected at most {self._max_entry_size} bytes, got {len(data)}"
            raise FormatError(msg)
        return data

    def append(self, entry: bytes) -> int:
        """Durably append one entry and return its index (one transaction).

        Raises:
            FormatError: If the entry is not bytes or is too large.
        """
        return self.append_many([entry]).start

    def append_many(self, entries: Iterable[bytes]) -> range:
        """Durably append entries in one transaction and return their index range.

        Raises:
            FormatError: If an entry is not bytes or is too large (nothing is
                appended then).
        """
        data = [self._check_entry(e) for e in entries]
        leaves: list[Leaf] = [(e, leaf_hash(e)) for e in data]
        if not leaves:
            return range(self._size, self._size)
        for attempt in range(_APPEND_RETRIES):
            start = self._size
            frontier = list(self._frontier)
            nodes: list[Node] = []
            for offset, (_, h) in enumerate(leaves):
                frontier.append((0, h))
                index = start + offset
                while len(frontier) > 1 and frontier[-1][0] == frontier[-2][0]:
                    (level, right), (_, left) = frontier.pop(), frontier.pop()
                    parent = node_hash(left, right)
                    nodes.append((level + 1, index >> (level + 1), parent))
                    frontier.append((level + 1, parent))
            try:
                self._store.append(start, leaves, nodes, _fold(frontier))
            except StaleLogError:
                if attempt == _APPEND_RETRIES - 1:
                    raise
                self.refresh()
                continue
            self._size, self._frontier, self._suffixes = start + len(leaves), frontier, None
            return range(start, self._size)
        raise AssertionError  # pragma: no cover - the loop returns or raises

    # --- reading ---------------------------------------------------------------

    def _check_index(self, index: object, size: int, what: str) -> int:
        if size == 0:
            msg = f"{what}: the tree is empty, got index {index!r}"
            raise FormatError(msg)
        return check_uint(index, what, maximum=size - 1)

    def _check_size(self, size: object, what: str) -> int:
        if size is None:
            return self._size
        return check_uint(size, what, maximum=self._size)

    def entry(self, index: int) -> bytes:
        """Return the entry at ``index``.

        Raises:
            FormatError: If ``index`` is not below `size`.
            IntegrityError: If the stored entry no longer matches its leaf hash.
        """
        self._check_index(index, self._size, "log entry")
        entry, stored = self._store.leaf(index)
        if leaf_hash(entry) != stored:
            msg = f"log store leaf {index}: stored hash does not match the stored entry"
            raise IntegrityError(msg)
        return entry

    def leaf_hash(self, index: int) -> bytes:
        """Return the stored leaf hash of the entry at ``index``."""
        self._check_index(index, self._size, "log leaf hash")
        return self._store.node(0, index)

    def _range_hash(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for a subtree of an RFC 9162 tree, from O(log n) stored nodes."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            level = n.bit_length() - 1
            return self._store.node(level, lo >> level)
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self._range_hash(lo, lo + k), self._range_hash(lo + k, hi))

    def _suffixes_at(self, size: int) -> dict[int, bytes]:
        """Map each frontier boundary ``lo`` at ``size`` to MTH(D[lo:size]).

        The ragged right edges [lo, size) that proofs and roots need are
        exactly these suffixes of the frontier; folding it once answers them all.
        """
        if size == self._size and self._suffixes is not None:
            return self._suffixes
        frontier = self._frontier if size == self._size else self._frontier_at(size)
        suffixes, start, acc = {}, size, b""
        for level, h in reversed(frontier):
            start -= 1 << level
            acc = node_hash(h, acc) if acc else h
            suffixes[start] = acc
        if size == self._size:
            self._suffixes = suffixes
        return suffixes

    def _proof(
        self, size: int, path: Callable[[Callable[[int, int], bytes]], list[bytes]]
    ) -> tuple[bytes, ...]:
        """Run a proof algorithm at ``size``, fetching its stored nodes in one batch.

        Every range a proof asks for is a frontier suffix or a complete
        subtree, so each proof hash costs at most one stored node.
        """
        suffixes = self._suffixes_at(size)
        keys: list[tuple[int, int]] = []

        def plan(lo: int, hi: int) -> bytes:
            if hi == size and lo in suffixes:
                return suffixes[lo]
            n = hi - lo
            if n & (n - 1) or lo % n:  # pragma: no cover - not asked by PATH or SUBPROOF
                return self._range_hash(lo, hi)
            level = n.bit_length() - 1
            keys.append((level, lo >> level))
            return len(keys).to_bytes(8, "big")  # a placeholder, never 32 bytes long

        planned = path(plan)
        fetched = self._store.nodes(keys)
        return tuple(h if len(h) != 8 else fetched[int.from_bytes(h, "big") - 1] for h in planned)  # noqa: PLR2004

    def _frontier_at(self, size: int) -> _Frontier:
        """Return the stored frontier at ``size``: one complete subtree per binary digit."""
        keys, start = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                keys.append((level, start >> level))
                start += 1 << level
        return [(level, h) for (level, _), h in zip(keys, self._store.nodes(keys), strict=True)]

    def root(self, size: int | None = None) -> bytes:
        """Return the root hash of the tree at ``size`` (default: the current size)."""
        size = self._check_size(size, "log root")
        if size == self._size:
            return _fold(self._frontier)
        return self._suffixes_at(size)[0] if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> tuple[bytes, ...]:
        """Return the inclusion proof of entry ``index`` in the tree at ``size``.

        Raises:
            FormatError: Unless ``index < size <= self.size``.
        """
        size = self._check_size(size, "inclusion proof")
        self._check_index(index, size, f"inclusion proof in tree of size {size}")
        return self._proof(size, lambda h: inclusion_path(index, size, h))

    def consistency_proof(self, old: int, new: int | None = None) -> tuple[bytes, ...]:
        """Return the proof that the tree at ``old`` is a prefix of the tree at ``new``.

        Raises:
            FormatError: Unless ``1 <= old <= new <= self.size``.
        """
        new = self._check_size(new, "consistency proof new size")
        old = check_uint(old, f"consistency proof to size {new}: old size", minimum=1, maximum=new)
        if old == new:
            return ()
        return self._proof(new, lambda h: consistency_path(old, new, h))

    # --- checkpoints and receipts ----------------------------------------------

    def checkpoint(self, signer: NoteSigner, *, origin: str | None = None) -> SignedCheckpoint:
        """Sign a checkpoint of the current tree with ``signer``.

        Args:
            signer: The log's note key.
            origin: The log's origin line; defaults to the signer's key name,
                as tlog-checkpoint recommends.
        """
        checkpoint = Checkpoint(origin or signer.name, self._size, self.root())
        return SignedCheckpoint.sign(checkpoint, [signer])

    def receipt(
        self, index: int, checkpoint: SignedCheckpoint, *, include_entry: bool = True
    ) -> Receipt:
        """Return a receipt proving entry ``index`` against a checkpoint of this log.

        Raises:
            FormatError: If the checkpoint is for a larger tree or ``index``
                is not in it.
            IntegrityError: If the checkpoint's root is not this log's root
                at that size.
        """
        cp = checkpoint.checkpoint
        size = self._check_size(cp.size, "receipt checkpoint")
        self._check_index(index, size, f"receipt in tree of size {size}")
        if self.root(size) != cp.root_hash:
            msg = (
                f"receipt checkpoint at size {size}: root expected {short_hex(self.root(size))}, "
                f"got {short_hex(cp.root_hash)}"
            )
            raise IntegrityError(msg)
        entry = self.entry(index) if include_entry else None
        return Receipt(index, self.inclusion_proof(index, size), checkpoint, entry)

    # --- audit -----------------------------------------------------------------

    def audit(self) -> None:
        """Re-derive every stored hash from the stored entries; O(n) reads.

        Raises:
            IntegrityError: Naming the first leaf or node (level, index) that
                is missing, extra or does not match.
        """
        size, root = self._store.tree_head()
        self._audit_leaves(size)
        level = 1
        while self._audit_level(level, size >> level):
            level += 1
        computed = self._range_hash(0, size) if size else EMPTY_ROOT
        if computed != root:
            msg = (
                f"log store tree head at size {size}: root {short_hex(root)} != "
                f"computed {short_hex(computed)}"
            )
            raise IntegrityError(msg)

    def _audit_leaves(self, size: int) -> None:
        expected = 0
        for index, entry, stored in self._store.iter_leaves():
            if index != expected or index >= size:
                msg = f"log store: expected leaf {expected} (of {size}), found leaf {index}"
                raise IntegrityError(msg)
            if leaf_hash(entry) != stored:
                msg = (
                    f"log store leaf {index}: stored hash {short_hex(stored)} != hash of "
                    f"stored entry {short_hex(leaf_hash(entry))}"
                )
                raise IntegrityError(msg)
            expected += 1
        if expected != size:
            msg = f"log store: expected {size} leaves, found {expected}"
            raise IntegrityError(msg)

    def _audit_level(self, level: int, count: int) -> bool:
        """Check the ``count`` stored nodes of ``level`` against their (checked) children."""
        children = self._store.iter_level(level - 1)
        found = 0
        for index, stored in self._store.iter_level(level):
            if index != found or index >= count:
                msg = f"log store: expected node (level {level}, index {found}), found {index}"
                raise IntegrityError(msg)
            # Level - 1 was checked to hold 2 * count hashes or more, in order.
            (_, left), (_, right) = next(children), next(children)
            computed = node_hash(left, right)
            if computed != stored:
                msg = (
                    f"log store node (level {level}, index {index}): stored hash "
                    f"{short_hex(stored)} != hash of its children {short_hex(computed)}"
                )
                raise IntegrityError(msg)
            found += 1
        if found != count:
            msg = f"log store: expected {count} nodes at level {level}, found {found}"
            raise IntegrityError(msg)
        return count > 0
