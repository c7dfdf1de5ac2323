"""FSDP2's shards as slices of the flat weights: the per-chip shard map (ADR 0039).

`torch.distributed.fsdp.fully_shard` cuts every parameter on dim 0 as
`torch.chunk` does: with ``R`` chips and ``d`` rows, chunk size
``c = ceil(d / R)``, chip ``r`` holds rows ``[r*c, min((r+1)*c, d))``, so the
last chips may hold fewer rows or none (an *empty* slice). A chip's ω is its
local shards (``DTensor.to_local()``) flattened and concatenated in parameter
order; the manifest records each piece as ``(name, dim, offset, length)``.

Rows of a parameter are contiguous in its row-major flattening, so each
piece is one range of the flat vector (`piece_range`), and the pieces of all
chips, taken parameter by parameter and chip by chip (`flat_order`), tile the
flat vector in order: that is the order a one-process replay steps them in,
and the order of the per-step commitment's slice digests.

Example::

    >>> from computewatch.datacenter import FlatLayout
    >>> layout = FlatLayout(("w", "b"), ((3, 2), (3,)), (0, 6), 9)
    >>> [[(p.name, p.offset, p.length) for p in chip] for chip in chunk_pieces(layout, 4)][2:]
    [[('w', 2, 1), ('b', 2, 1)], [('w', 3, 0), ('b', 3, 0)]]
    >>> piece_range(layout, ShardPiece("w", 0, 1, 2))
    (2, 6)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.errors import FormatError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from computewatch.datacenter._layout import FlatLayout

__all__ = [
    "FSDP2_KIND",
    "ShardPiece",
    "chunk_pieces",
    "flat_order",
    "parse_shard_map",
    "piece_range",
]

#: The manifest's ``sharding.kind`` of an FSDP2 run.
FSDP2_KIND = "fsdp2"


@dataclass(frozen=True, slots=True)
class ShardPiece:
    """Rows ``[offset, offset + length)`` of parameter `name` on dim `dim` (always 0)."""

    name: str
    dim: int
    offset: int
    length: int

    def to_json(self) -> dict[str, Any]:
        """The manifest record."""
        return {"name": self.name, "dim": self.dim, "offset": self.offset, "length": self.length}


def _rows(shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows on dim 0, elements per row); a 0-d parameter is one row of one."""
    if not shape:
        return 1, 1
    per = 1
    for d in shape[1:]:
        per *= d
    return shape[0], per


def chunk_pieces(layout: FlatLayout, world_size: int) -> list[list[ShardPiece]]:
    """Every chip's pieces, as `fully_shard` cuts the layout's parameters on `world_size` chips."""
    out: list[list[ShardPiece]] = [[] for _ in range(world_size)]
    for name, shape in zip(layout.names, layout.shapes, strict=True):
        rows, _ = _rows(shape)
        c = -(-rows // world_size)
        for r in range(world_size):
            a, b = min(r * c, rows), min((r + 1) * c, rows)
            out[r].append(ShardPiece(name, 0, a, b - a))
    return out


def piece_range(layout: FlatLayout, piece: ShardPiece) -> tuple[int, int]:
    """The piece's range ``[a, b)`` of the flat vector (`FormatError` if not in the layout)."""
    try:
        i = layout.names.index(piece.name)
    except ValueError:
        msg = f"shard map: parameter {piece.name!r:.60} is not in the layout"
        raise FormatError(msg) from None
    rows, per = _rows(layout.shapes[i])
    bad = piece.offset < 0 or piece.length < 0 or piece.offset + piece.length > rows
    if piece.dim != 0 or bad:
        msg = (
            f"shard map: {piece.name!r:.60} dim {piece.dim} rows [{piece.offset}, "
            f"{piece.offset + piece.length}) is not dim 0 within its {rows} rows"
        )
        raise FormatError(msg)
    a = layout.offsets[i] + piece.offset * per
    return a, a + piece.length * per


def flat_order(pieces: Sequence[Sequence[ShardPiece]]) -> list[tuple[int, ShardPiece]]:
    """(rank, piece) pairs parameter by parameter, chip by chip: the flat vector's order."""
    n = len(pieces[0]) if pieces else 0
    return [(r, chip[i]) for i in range(n) for r, chip in enumerate(pieces)]


def _piece(doc: object, where: str) -> ShardPiece:
    if not isinstance(doc, dict) or set(doc) != {"name", "dim", "offset", "length"}:
        msg = f"{where}: expected {{'name', 'dim', 'offset', 'length'}}, got {doc!r:.60}"
        raise FormatError(msg)
    name, nums = doc["name"], [doc["dim"], doc["offset"], doc["length"]]
    if not isinstance(name, str) or any(
        isinstance(v, bool) or not isinstance(v, int) for v in nums
    ):
        msg = f"{where}: expected a name and three ints, got {doc!r:.60}"
        raise FormatError(msg)
    return ShardPiece(name, nums[0], nums[1], nums[2])


def parse_shard_map(chips: object, layout: FlatLayout) -> list[list[ShardPiece]]:
    """Every chip's pieces from ``sharding.chips[*].shards``, checked to be FSDP2's cut.

    The map must be exactly `chunk_pieces` of the layout (so the pieces tile
    the flat vector, and the replay steps the tensor sizes the chips did).

    Raises:
        FormatError: a malformed record, or a map that is not that cut.
    """
    if not isinstance(chips, list) or not chips:
        msg = "manifest.json: field 'sharding.chips': expected a non-empty list"
        raise FormatError(msg)
    got = []
    for r, chip in enumerate(chips):
        shards = chip.get("shards") if isinstance(chip, dict) else None
        if not isinstance(shards, list):
            msg = f"manifest.json: field 'sharding.chips[{r}].shards': expected a list"
            raise FormatError(msg)
        where = f"manifest.json: field 'sharding.chips[{r}].shards'"
        pieces = [_piece(p, f"{where}[{i}]") for i, p in enumerate(shards)]
        for p in pieces:
            piece_range(layout, p)
        got.append(pieces)
    expected = chunk_pieces(layout, len(chips))
    for r, (a, b) in enumerate(zip(got, expected, strict=True)):
        if a != b:
            msg = (
                f"manifest.json: field 'sharding.chips[{r}].shards': not FSDP2's dim-0 chunks of "
                f"the layout on {len(chips)} chips"
            )
            raise FormatError(msg)
    return got
