"""RFC 9162 Merkle tree hashing, inclusion proofs and consistency proofs.

The tree is the one of RFC 9162 section 2.1 (the same as RFC 6962): a leaf
hashes as ``SHA-256(0x00 || entry)``, an interior node as
``SHA-256(0x01 || left || right)``, and the empty tree as ``SHA-256("")``.
Proof generation follows the recursive definitions PATH (2.1.3.1) and
SUBPROOF (2.1.4.1); verification follows the algorithms of 2.1.3.2 and
2.1.4.2, after an exact check of the proof length.

Malformed input (a hash that is not 32 bytes, an index past the tree, a
proof of the wrong length) raises `FormatError`; a well-formed proof that
does not lead to the expected root raises `IntegrityError`.

Example:
    >>> from computewatch.crypto import leaf_hash, verify_inclusion
    >>> from computewatch.crypto.hazmat import inclusion_proof, merkle_root
    >>> entries = [b"a", b"b", b"c"]
    >>> hashes = [leaf_hash(e) for e in entries]
    >>> root = merkle_root(hashes)
    >>> proof = inclusion_proof(hashes, 2, 3)
    >>> verify_inclusion(b"c", index=2, size=3, proof=proof, root=root)
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "check_hash",
    "check_uint",
    "consistency_path",
    "consistency_proof",
    "consistency_proof_length",
    "inclusion_path",
    "inclusion_proof",
    "inclusion_proof_length",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "root_from_inclusion_proof",
    "short_hex",
    "verify_consistency",
    "verify_inclusion",
    "verify_leaf_inclusion",
]

#: Size in bytes of every hash in the tree (SHA-256).
HASH_SIZE = 32
#: Root hash of the empty tree, ``SHA-256("")`` (RFC 9162 section 2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()
#: Largest tree size accepted anywhere (C2SP checkpoints carry a uint64).
MAX_TREE_SIZE = (1 << 64) - 1

_sha256 = hashlib.sha256
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def short_hex(value: bytes) -> str:
    """Render a hash for an error message: its first 8 bytes in hex and an ellipsis."""
    text = value.hex()
    return text if len(text) <= 16 else text[:16] + "\u2026"  # noqa: PLR2004 - 8 bytes


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || entry)``.

    Args:
        entry: The logged bytes.

    Returns:
        The 32-byte leaf hash.
    """
    return _sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``.

    This is a raw building block: it does not check its inputs. Use
    `merkle_root`, the proof functions or `MerkleLog` instead.
    """
    return _sha256(_NODE_PREFIX + left + right).digest()


def check_hash(value: object, what: str) -> bytes:
    """Return ``value`` as bytes if it is a 32-byte hash, else raise `FormatError`."""
    if type(value) is bytes and len(value) == HASH_SIZE:
        return value
    if not isinstance(value, bytes | bytearray | memoryview):
        msg = f"{what}: expected {HASH_SIZE} bytes, got {type(value).__name__}"
        raise FormatError(msg)
    data = bytes(value)
    if len(data) != HASH_SIZE:
        msg = f"{what}: expected a {HASH_SIZE}-byte hash, got {len(data)} bytes"
        raise FormatError(msg)
    return data


def check_uint(value: object, what: str, *, minimum: int = 0, maximum: int = MAX_TREE_SIZE) -> int:
    """Return ``value`` if it is an int (not a bool) in ``[minimum, maximum]``.

    Raises:
        FormatError: Otherwise.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        msg = f"{what}: expected an integer, got {type(value).__name__}"
        raise FormatError(msg)
    if not minimum <= value <= maximum:
        msg = f"{what}: expected an integer from {minimum} to {maximum}, got {value}"
        raise FormatError(msg)
    return value


def _split_point(n: int) -> int:
    """Return the largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash MTH of a list of leaf hashes (RFC 9162 2.1.1).

    Args:
        leaf_hashes: Leaf hashes, as returned by `leaf_hash`.

    Returns:
        The 32-byte root; `EMPTY_ROOT` for an empty list.
    """
    level = [bytes(h) for h in leaf_hashes]
    if not level:
        return EMPTY_ROOT
    # Pairing from the left and carrying an odd last node up unchanged gives
    # exactly the RFC's "largest power of two smaller than n" split.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_path(index: int, size: int, range_hash: Callable[[int, int], bytes]) -> list[bytes]:
    """Return PATH(index, D[0:size]) given a function hashing leaf ranges.

    ``range_hash(lo, hi)`` must return MTH(D[lo:hi]); it is only asked for
    subtrees of the RFC 9162 tree of this size. Arguments are not checked.
    """
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split_point(hi - lo)
        if index < mid:
            path.append(range_hash(mid, hi))
            hi = mid
        else:
            path.append(range_hash(lo, mid))
            lo = mid
    path.reverse()
    return path


def consistency_path(old: int, new: int, range_hash: Callable[[int, int], bytes]) -> list[bytes]:
    """Return PROOF(old, D[0:new]) = SUBPROOF(old, D[0:new], true) via ``range_hash``.

    Requires ``0 < old < new``; arguments are not checked.
    """
    path: list[bytes] = []
    lo, hi, whole = 0, new, True
    while True:
        n, m = hi - lo, old - lo
        if m == n:
            if not whole:
                path.append(range_hash(lo, hi))
            break
        k = _split_point(n)
        if m <= k:
            path.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            path.append(range_hash(lo, lo + k))
            lo, whole = lo + k, False
    path.reverse()
    return path


def inclusion_proof_length(index: int, size: int) -> int:
    """Return the exact number of hashes in the inclusion proof of ``index`` at ``size``."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def consistency_proof_length(old: int, new: int) -> int:
    """Return the exact number of hashes in the consistency proof ``old -> new``."""
    if old == new:
        return 0
    shift = (old & -old).bit_length() - 1
    inner = ((old - 1) ^ (new - 1)).bit_length()
    border = ((old - 1) >> inner).bit_count()
    seed = 0 if old == 1 << shift else 1
    return seed + inner - shift + border


def _slice_range_hash(leaf_hashes: Sequence[bytes]) -> Callable[[int, int], bytes]:
    return lambda lo, hi: merkle_root(leaf_hashes[lo:hi])


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int) -> tuple[bytes, ...]:
    """Return the inclusion proof of leaf ``index`` in the tree of the first ``size`` leaves.

    A reference implementation over an in-memory list (O(size) hashing);
    `MerkleLog` answers the same question in O(log size) from its store.

    Raises:
        FormatError: If ``index >= size`` or ``size`` exceeds the list.
    """
    check_uint(size, "inclusion proof tree size", minimum=1)
    check_uint(index, "inclusion proof leaf index")
    if index >= size or size > len(leaf_hashes):
        msg = (
            f"inclusion proof: expected leaf index < size <= {len(leaf_hashes)}, "
            f"got leaf {index} in tree of size {size}"
        )
        raise FormatError(msg)
    return tuple(inclusion_path(index, size, _slice_range_hash(leaf_hashes)))


def consistency_proof(leaf_hashes: Sequence[bytes], old: int, new: int) -> tuple[bytes, ...]:
    """Return the consistency proof from tree size ``old`` to ``new`` over an in-memory list.

    Raises:
        FormatError: Unless ``1 <= old <= new <= len(leaf_hashes)``.
    """
    check_uint(old, "consistency proof old size", minimum=1)
    check_uint(new, "consistency proof new size", minimum=1)
    if not old <= new <= len(leaf_hashes):
        msg = (
            f"consistency proof: expected 1 <= old <= new <= {len(leaf_hashes)}, got {old} -> {new}"
        )
        raise FormatError(msg)
    if old == new:
        return ()
    return tuple(consistency_path(old, new, _slice_range_hash(leaf_hashes)))


def _check_proof(proof: object, expected: int, what: str) -> list[bytes]:
    if not isinstance(proof, list | tuple):
        msg = f"{what}: expected a sequence of hashes, got {type(proof).__name__}"
        raise FormatError(msg)
    if len(proof) != expected:
        msg = f"{what}: expected {expected} hashes, got {len(proof)}"
        raise FormatError(msg)
    if all(type(p) is bytes and len(p) == HASH_SIZE for p in proof):
        return list(proof)
    return [check_hash(p, f"{what}, hash {i}") for i, p in enumerate(proof)]


def root_from_inclusion_proof(
    leaf: bytes, *, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Return the root that ``proof`` leads to from leaf hash ``leaf`` (RFC 9162 2.1.3.2).

    Raises:
        FormatError: If a hash is not 32 bytes, ``index >= size`` or the proof
            does not have exactly the length the (index, size) pair requires.
    """
    size = check_uint(size, "inclusion proof tree size", minimum=1)
    index = check_uint(index, "inclusion proof leaf index")
    where = f"inclusion proof for leaf {index} in tree of size {size}"
    if index >= size:
        msg = f"{where}: expected leaf index < tree size"
        raise FormatError(msg)
    path = _check_proof(proof, inclusion_proof_length(index, size), where)
    r = check_hash(leaf, f"{where}: leaf hash")
    fn, sn = index, size - 1
    for p in path:
        if sn == 0:  # pragma: no cover - excluded by the exact length check
            msg = f"{where}: proof is longer than the path"
            raise FormatError(msg)
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:  # pragma: no cover - excluded by the exact length check
        msg = f"{where}: proof is shorter than the path"
        raise FormatError(msg)
    return r


def verify_leaf_inclusion(
    leaf: bytes, *, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf hash ``leaf`` is at ``index`` in the tree of ``size`` with ``root``.

    Raises:
        FormatError: If an input is malformed (see `root_from_inclusion_proof`).
        IntegrityError: If the proof leads to a different root.
    """
    expected = check_hash(root, f"inclusion proof for leaf {index}: expected root")
    computed = root_from_inclusion_proof(leaf, index=index, size=size, proof=proof)
    if computed != expected:
        msg = (
            f"inclusion proof for leaf {index} in tree of size {size}: computed root "
            f"{short_hex(computed)} != expected {short_hex(expected)}"
        )
        raise IntegrityError(msg)


def verify_inclusion(
    entry: bytes, *, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``entry`` is logged at ``index`` in the tree of ``size`` with ``root``.

    Args:
        entry: The logged bytes (hashed here with `leaf_hash`).
        index: Zero-based position of the entry.
        size: Number of leaves of the tree ``root`` commits to.
        proof: The inclusion proof, leaf's sibling first.
        root: The trusted root hash (e.g. from a verified checkpoint).

    Raises:
        FormatError: If an input is malformed.
        IntegrityError: If the proof does not lead to ``root``.
    """
    verify_leaf_inclusion(leaf_hash(bytes(entry)), index=index, size=size, proof=proof, root=root)


def _consistency_roots(path: list[bytes], old: int, new: int) -> tuple[bytes, bytes]:
    """Steps 3-6 of RFC 9162 2.1.4.2: the old and new roots a checked-length path leads to."""
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    # The exact length check upstream guarantees that the path ends at the root (sn == 0).
    return fr, sr


def verify_consistency(
    *, old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check that the tree of ``old_size`` is a prefix of the tree of ``new_size``.

    Implements RFC 9162 section 2.1.4.2. A consistency proof from the empty
    tree says nothing and is refused as malformed, as transparency-dev does.

    Raises:
        FormatError: Unless ``1 <= old_size <= new_size``, every hash is 32
            bytes and the proof has exactly the required length.
        IntegrityError: If the proof does not reproduce both roots.
    """
    old = check_uint(old_size, "consistency proof old size", minimum=1)
    new = check_uint(new_size, "consistency proof new size", minimum=1)
    where = f"consistency proof from size {old} to {new}"
    if old > new:
        msg = f"{where}: expected old size <= new size"
        raise FormatError(msg)
    first = check_hash(old_root, f"{where}: old root")
    second = check_hash(new_root, f"{where}: new root")
    path = _check_proof(proof, consistency_proof_length(old, new), where)
    if old == new:
        if first != second:
            msg = f"{where}: old root {short_hex(first)} != new root {short_hex(second)}"
            raise IntegrityError(msg)
        return
    if old & (old - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, first)
    fr, sr = _consistency_roots(path, old, new)
    if fr != first:
        msg = f"{where}: computed old root {short_hex(fr)} != expected {short_hex(first)}"
        raise IntegrityError(msg)
    if sr != second:
        msg = f"{where}: computed new root {short_hex(sr)} != expected {short_hex(second)}"
        raise IntegrityError(msg)
