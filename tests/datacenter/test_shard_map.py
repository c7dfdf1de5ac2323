"""FSDP2's shard map: dim-0 chunks as flat ranges, uneven and empty, and a tampered map refused."""

from __future__ import annotations

import itertools

import pytest

from computewatch.datacenter import (
    FlatLayout,
    chunk_pieces,
    flat_order,
    parse_shard_map,
    piece_range,
)
from computewatch.errors import FormatError

LAYOUT = FlatLayout(("w", "b", "h"), ((3, 2), (3,), (1, 3)), (0, 6, 9), 12)


def test_chunks_are_uneven_and_may_be_empty_and_tile_the_flat_vector() -> None:
    pieces = chunk_pieces(LAYOUT, 2)
    assert [(p.name, p.offset, p.length) for p in pieces[0]] == [
        ("w", 0, 2),
        ("b", 0, 2),
        ("h", 0, 1),
    ]
    assert [(p.name, p.offset, p.length) for p in pieces[1]] == [
        ("w", 2, 1),
        ("b", 2, 1),
        ("h", 1, 0),
    ]
    ranges = [piece_range(LAYOUT, p) for _, p in flat_order(pieces)]
    assert ranges[0][0] == 0
    assert ranges[-1][1] == LAYOUT.numel
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))


def test_the_manifest_map_must_be_fsdp2s_cut() -> None:
    chips = [{"shards": [p.to_json() for p in mine]} for mine in chunk_pieces(LAYOUT, 2)]
    assert parse_shard_map(chips, LAYOUT) == chunk_pieces(LAYOUT, 2)
    chips[1]["shards"][0]["offset"] = 1
    with pytest.raises(FormatError, match=r"sharding.chips\[1\].shards"):
        parse_shard_map(chips, LAYOUT)
    chips[1]["shards"][0] = {"name": "w", "dim": 1, "offset": 0, "length": 1}
    with pytest.raises(FormatError, match="dim 0"):
        parse_shard_map(chips, LAYOUT)
    chips[1]["shards"][0] = {"name": "nope", "dim": 0, "offset": 0, "length": 1}
    with pytest.raises(FormatError, match="not in the layout"):
        parse_shard_map(chips, LAYOUT)
    for bad in ([], [{"shards": "x"}], [{"shards": [{"name": 1}]}]):
        with pytest.raises(FormatError):
            parse_shard_map(bad, LAYOUT)
