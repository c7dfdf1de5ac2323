"""The log as static tiles (c2sp.org/tlog-tiles): paths, tiles and entry bundles.

A tile at level ``L`` and index ``N`` holds up to 256 consecutive Merkle
tree hashes of subtrees of ``256**L`` leaves: hash ``i`` is ``MTH(D[(N*256 +
i) * 256**L : (N*256 + i + 1) * 256**L])``, which `MerkleLog`'s store keeps
as node ``(8 * L, N * 256 + i)``. Paths are ``tile/<L>/<N>[.p/<W>]`` and
``tile/entries/<N>[.p/<W>]``, with ``N`` in zero-padded 3-digit elements
(all but the last prefixed ``x``: 1234067 is ``x001/x234/067``). Entry
bundles are the entries, each prefixed by its big-endian u16 length. Tiles
are immutable: a partial tile of width ``W`` never changes once the tree
holds its hashes.

Example:
    >>> from computewatch.crypto import MerkleLog, TilePath, read_tile
    >>> log = MerkleLog.in_memory()
    >>> _ = log.append_many([b"a", b"b", b"c"])
    >>> tile = TilePath.parse("0/000.p/3")
    >>> len(read_tile(log, tile))
    96
    >>> TilePath(None, 1234067).to_path()
    'tile/entries/x001/x234/067'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from computewatch.crypto._merkle import HASH_SIZE, MAX_TREE_SIZE
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from computewatch.crypto._log import MerkleLog

__all__ = [
    "TILE_WIDTH",
    "TilePath",
    "decode_entry_bundle",
    "encode_entry_bundle",
    "read_entry_bundle",
    "read_tile",
    "split_tile",
]

#: Hashes (or entries) in a full tile.
TILE_WIDTH = 256
_MAX_LEVEL = 63
_MAX_ENTRY = 0xFFFF


def _parse_small(text: str, what: str, low: int, high: int) -> int:
    ok = text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))
    if not ok or not low <= int(text) <= high:
        msg = f"tile path {what}: expected a decimal {low} to {high} without leading zeros"
        raise FormatError(msg)
    return int(text)


def _parse_index(parts: list[str]) -> int:
    if not parts or len(parts) > 7:  # noqa: PLR2004 - 2**64 needs 7 groups of 3 digits
        msg = f"tile path index: expected 1 to 7 path elements, got {len(parts)}"
        raise FormatError(msg)
    digits = []
    for i, part in enumerate(parts):
        body = part
        if i < len(parts) - 1:
            if not part.startswith("x"):
                msg = f"tile path index element {part[:10]!r}: expected an 'x' prefix"
                raise FormatError(msg)
            body = part[1:]
        if len(body) != 3 or not body.isascii() or not body.isdigit():  # noqa: PLR2004
            msg = f"tile path index element {part[:10]!r}: expected 3 digits"
            raise FormatError(msg)
        digits.append(body)
    if len(parts) > 1 and digits[0] == "000":
        msg = "tile path index: no leading all-zero element"
        raise FormatError(msg)
    return int("".join(digits))


@dataclass(frozen=True)
class TilePath:
    """A tile (``level`` 0-63) or entry bundle (``level`` None), its index and width.

    Attributes:
        level: Tile level, or None for an entry bundle.
        index: Tile index within its level.
        width: 256 for a full tile, 1-255 for a partial one.
    """

    level: int | None
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        """Check the ranges."""
        if self.level is not None and not 0 <= self.level <= _MAX_LEVEL:
            msg = f"tile level: expected 0 to {_MAX_LEVEL}, got {self.level}"
            raise FormatError(msg)
        if not 0 <= self.index <= MAX_TREE_SIZE // TILE_WIDTH:
            msg = f"tile index: expected 0 to 2**56, got {self.index}"
            raise FormatError(msg)
        if not 1 <= self.width <= TILE_WIDTH:
            msg = f"tile width: expected 1 to 256, got {self.width}"
            raise FormatError(msg)

    @classmethod
    def parse(cls, path: str) -> TilePath:
        """Parse the part of a tile path after ``tile/`` (e.g. ``0/x001/234.p/7``).

        Raises:
            FormatError: It is not a canonical tile path.
        """
        parts = path.split("/")
        if len(parts) < 2:  # noqa: PLR2004 - level and index
            msg = f"tile path {path[:60]!r}: expected '<L>/<N>[.p/<W>]'"
            raise FormatError(msg)
        level = None if parts[0] == "entries" else _parse_small(parts[0], "level", 0, _MAX_LEVEL)
        rest, width = parts[1:], TILE_WIDTH
        if len(rest) >= 2 and rest[-2].endswith(".p"):  # noqa: PLR2004
            width = _parse_small(rest[-1], "width", 1, TILE_WIDTH - 1)
            rest = [*rest[:-2], rest[-2][:-2]]
        return cls(level, _parse_index(rest), width)

    def to_path(self) -> str:
        """The path, starting with ``tile/``."""
        text = f"{self.index:03d}"
        groups = [text[max(0, i - 3) : i] for i in range(len(text), 0, -3)][::-1]
        groups = [g.zfill(3) for g in groups]
        index = "/".join([*("x" + g for g in groups[:-1]), groups[-1]])
        level = "entries" if self.level is None else str(self.level)
        suffix = "" if self.width == TILE_WIDTH else f".p/{self.width}"
        return f"tile/{level}/{index}{suffix}"

    def span(self) -> tuple[int, int]:
        """The range of leaves ``[start, end)`` the tile's hashes cover."""
        unit = TILE_WIDTH ** (self.level or 0)
        start = self.index * TILE_WIDTH * unit
        return start, start + self.width * unit


def _check_available(tile: TilePath, size: int) -> None:
    if tile.span()[1] > size:
        msg = f"{tile.to_path()}: not in the tree of size {size}"
        raise FormatError(msg)


def read_tile(log: MerkleLog, tile: TilePath, size: int | None = None) -> bytes:
    """The tile's bytes: ``width`` concatenated 32-byte hashes.

    Raises:
        FormatError: ``tile`` is an entry bundle, or the tree of ``size``
            (default: the log's) does not hold all its hashes.
    """
    if tile.level is None:
        msg = "read_tile: expected a hash tile, got an entry bundle path"
        raise FormatError(msg)
    _check_available(tile, log.size if size is None else size)
    base = tile.index * TILE_WIDTH
    keys = [(8 * tile.level, base + i) for i in range(tile.width)]
    return b"".join(log.store.nodes(keys))


def read_entry_bundle(log: MerkleLog, tile: TilePath, size: int | None = None) -> bytes:
    """The entry bundle's bytes (u16-length-prefixed entries).

    Raises:
        FormatError: Not an entry bundle path, not in the tree, or an entry
            too big for a u16 length.
    """
    if tile.level is not None:
        msg = "read_entry_bundle: expected an entry bundle path"
        raise FormatError(msg)
    _check_available(tile, log.size if size is None else size)
    start = tile.index * TILE_WIDTH
    return encode_entry_bundle([log.entry(start + i) for i in range(tile.width)])


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """Concatenate entries, each after its big-endian u16 length.

    Raises:
        FormatError: An entry is longer than 65535 bytes.
    """
    out = []
    for i, e in enumerate(entries):
        if len(e) > _MAX_ENTRY:
            msg = f"entry bundle: entry {i} has {len(e)} bytes, more than a u16 length holds"
            raise FormatError(msg)
        out.append(len(e).to_bytes(2, "big") + e)
    return b"".join(out)


def decode_entry_bundle(data: bytes) -> list[bytes]:
    """Split an entry bundle into its entries.

    Raises:
        FormatError: A length runs past the end, or more than 256 entries.
    """
    out, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data):
            msg = f"entry bundle: truncated length at offset {pos}"
            raise FormatError(msg)
        n = int.from_bytes(data[pos : pos + 2], "big")
        if pos + 2 + n > len(data):
            msg = f"entry bundle: entry at offset {pos} runs past the end"
            raise FormatError(msg)
        out.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
        if len(out) > TILE_WIDTH:
            msg = "entry bundle: more than 256 entries"
            raise FormatError(msg)
    return out


def split_tile(data: bytes) -> list[bytes]:
    """Split a hash tile into its hashes.

    Raises:
        FormatError: Not a whole number of hashes, or more than 256.
    """
    if len(data) % HASH_SIZE or not 0 < len(data) <= TILE_WIDTH * HASH_SIZE:
        msg = f"tile: expected 1 to 256 hashes of 32 bytes, got {len(data)} bytes"
        raise FormatError(msg)
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
