"""tlog-tiles paths, tiles and entry bundles against the Merkle log."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.crypto import c2sp_facts as spec

from computewatch.crypto import (
    MerkleLog,
    TilePath,
    decode_entry_bundle,
    encode_entry_bundle,
    leaf_hash,
    read_entry_bundle,
    read_tile,
    split_tile,
)
from computewatch.crypto._merkle import merkle_root
from computewatch.errors import FormatError


def test_spec_index_encoding() -> None:
    tile = TilePath(0, spec.TILE_INDEX)
    assert tile.to_path() == f"tile/0/{spec.TILE_INDEX_PATH}"
    assert TilePath.parse(f"0/{spec.TILE_INDEX_PATH}") == tile
    assert TilePath(None, 5, 7).to_path() == "tile/entries/005.p/7"


def _tiles_of(size: int) -> dict[str, int]:
    full0, partial0 = divmod(size, 256)
    full1, partial1 = divmod(size // 256, 256)
    return {
        "full0": full0,
        "partial0": partial0,
        "full1": full1,
        "partial1": partial1,
        "partial2": (size // 256**2) % 256,
    }


def test_spec_tree_of_70000() -> None:
    assert _tiles_of(70_000) == spec.TREE_70000


@given(st.integers(0, (1 << 56) - 1), st.integers(1, 256), st.none() | st.integers(0, 63))
def test_paths_round_trip(index: int, width: int, level: int | None) -> None:
    tile = TilePath(level, index, width)
    assert TilePath.parse(tile.to_path().removeprefix("tile/")) == tile


@pytest.mark.parametrize(
    "path",
    [
        "0/1",
        "0/0001",
        "00/000",
        "64/000",
        "0/x000/001",
        "0/001/002",
        "0/000.p/0",
        "0/000.p/256",
        "0/000.p/01",
        "x/000",
        "0",
        "0/000.p",
        "entries/00a",
    ],
)
def test_non_canonical_paths_are_refused(path: str) -> None:
    with pytest.raises(FormatError):
        TilePath.parse(path)


def test_tiles_hold_the_trees_hashes() -> None:
    log = MerkleLog.in_memory()
    entries = [f"entry {i}".encode() for i in range(256 * 3 + 17)]
    log.append_many(entries)
    leaves = [leaf_hash(e) for e in entries]
    full = split_tile(read_tile(log, TilePath(0, 1)))
    assert full == leaves[256:512]
    assert split_tile(read_tile(log, TilePath(0, 3, 17))) == leaves[768:]
    level1 = split_tile(read_tile(log, TilePath(1, 0, 3)))
    assert level1 == [merkle_root(leaves[i * 256 : (i + 1) * 256]) for i in range(3)]
    bundle = read_entry_bundle(log, TilePath(None, 3, 17))
    assert decode_entry_bundle(bundle) == entries[768:]
    with pytest.raises(FormatError, match="not in the tree"):
        read_tile(log, TilePath(0, 3, 18))
    with pytest.raises(FormatError, match="not in the tree"):
        read_tile(log, TilePath(1, 0, 4))


def test_bundles_refuse_oversized_or_truncated_entries() -> None:
    with pytest.raises(FormatError, match="u16"):
        encode_entry_bundle([bytes(1 << 16)])
    data = encode_entry_bundle([b"abc", b""])
    assert decode_entry_bundle(data) == [b"abc", b""]
    with pytest.raises(FormatError):
        decode_entry_bundle(data[:-1])
    with pytest.raises(FormatError):
        decode_entry_bundle(b"\x00\x05ab")
