"""RFC 9162 hashing, proof generation and verification (computewatch.crypto._merkle)."""

from __future__ import annotations

import base64
import doctest
import hashlib
import importlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from computewatch import crypto
from computewatch.crypto import hazmat
from computewatch.crypto._log import MerkleLog
from computewatch.crypto._merkle import (
    EMPTY_ROOT,
    consistency_proof,
    consistency_proof_length,
    inclusion_proof,
    inclusion_proof_length,
    leaf_hash,
    merkle_root,
    node_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
    verify_leaf_inclusion,
)
from computewatch.errors import FormatError, IntegrityError

# transparency-dev/merkle's probes, restated by scripts/restate_vectors.py.
PROBES = Path(__file__).resolve().parents[1] / "vectors" / "merkle_probes.json"

# The CT reference leaves and the RFC 6962 roots of their prefixes.
CT_LEAVES = [bytes.fromhex(h) for h in ["", "00", "10", "2021", "3031", "40414243",
             "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]  # fmt: skip
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _hashes(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _flip(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


def test_hash_definitions() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert merkle_root([]) == EMPTY_ROOT


def test_ct_reference_roots() -> None:
    hashes = [leaf_hash(x) for x in CT_LEAVES]
    for size, expected in enumerate(CT_ROOTS, start=1):
        assert merkle_root(hashes[:size]).hex() == expected


def test_roots_agree_with_probe_files() -> None:
    """Every happy-path root in the probes is a root of a prefix of the CT leaves."""
    hashes = [leaf_hash(x) for x in CT_LEAVES]
    roots = {merkle_root(hashes[:n]) for n in range(1, 9)}
    seen = 0
    for doc in json.loads(PROBES.read_text(encoding="utf-8"))["consistency"]:
        if not re.fullmatch(r"consistency/[0-9]/happy-path\.json", doc["id"]):
            continue
        for key in ("root1", "root2"):
            assert base64.b64decode(doc[key]) in roots
            seen += 1
    assert seen >= 8


def test_exhaustive_small_trees() -> None:
    hashes = _hashes(40)
    log = MerkleLog.in_memory()
    log.append_many(i.to_bytes(4, "big") for i in range(40))
    for size in range(1, 41):
        root = merkle_root(hashes[:size])
        assert log.root(size) == root
        for index in range(size):
            proof = log.inclusion_proof(index, size)
            assert len(proof) == inclusion_proof_length(index, size)
            verify_leaf_inclusion(hashes[index], index=index, size=size, proof=proof, root=root)
        for old in range(1, size + 1):
            proof = log.consistency_proof(old, size)
            assert len(proof) == consistency_proof_length(old, size)
            verify_consistency(
                old_size=old, new_size=size, proof=proof, old_root=log.root(old), new_root=root
            )


def test_reference_proofs_match_log() -> None:
    hashes = _hashes(21)
    log = MerkleLog.in_memory()
    log.append_many(i.to_bytes(4, "big") for i in range(21))
    assert inclusion_proof(hashes, 5, 13) == log.inclusion_proof(5, 13)
    assert consistency_proof(hashes, 6, 21) == log.consistency_proof(6, 21)
    assert consistency_proof(hashes, 7, 7) == ()


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_inclusion_property(size: int, data: st.DataObject) -> None:
    hashes = _hashes(size)
    index = data.draw(st.integers(0, size - 1))
    root = merkle_root(hashes)
    proof = inclusion_proof(hashes, index, size)
    verify_leaf_inclusion(hashes[index], index=index, size=size, proof=proof, root=root)
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(IntegrityError):
        verify_leaf_inclusion(
            hashes[index], index=index, size=size, proof=proof, root=_flip(root, bit)
        )
    with pytest.raises(IntegrityError):
        verify_leaf_inclusion(
            _flip(hashes[index], bit), index=index, size=size, proof=proof, root=root
        )
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = _flip(bad[k], bit)
        with pytest.raises(IntegrityError):
            verify_leaf_inclusion(hashes[index], index=index, size=size, proof=bad, root=root)
    other = data.draw(st.integers(0, size))
    if other != index:
        with pytest.raises((IntegrityError, FormatError)):
            verify_leaf_inclusion(hashes[index], index=other, size=size, proof=proof, root=root)


@settings(max_examples=60, deadline=None)
@given(new=st.integers(1, 300), data=st.data())
def test_consistency_property(new: int, data: st.DataObject) -> None:
    hashes = _hashes(new)
    old = data.draw(st.integers(1, new))
    old_root, new_root = merkle_root(hashes[:old]), merkle_root(hashes)
    proof = consistency_proof(hashes, old, new)
    verify_consistency(
        old_size=old, new_size=new, proof=proof, old_root=old_root, new_root=new_root
    )
    bit = data.draw(st.integers(0, 255))
    args = {"old_size": old, "new_size": new, "proof": proof}
    with pytest.raises(IntegrityError):
        verify_consistency(**args, old_root=_flip(old_root, bit), new_root=new_root)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        verify_consistency(**args, old_root=old_root, new_root=_flip(new_root, bit))  # type: ignore[arg-type]
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[k] = _flip(bad[k], bit)
        with pytest.raises(IntegrityError):
            verify_consistency(
                old_size=old, new_size=new, proof=bad, old_root=old_root, new_root=new_root
            )


def test_verify_inclusion_hashes_the_entry() -> None:
    entries = [b"a", b"b", b"c", b"d", b"e"]
    hashes = [leaf_hash(e) for e in entries]
    proof = inclusion_proof(hashes, 3, 5)
    verify_inclusion(b"d", index=3, size=5, proof=proof, root=merkle_root(hashes))
    with pytest.raises(IntegrityError, match=r"leaf 3 in tree of size 5: computed root \w+"):
        verify_inclusion(b"x", index=3, size=5, proof=proof, root=merkle_root(hashes))


def test_single_leaf_and_root_computation() -> None:
    h = leaf_hash(b"only")
    assert root_from_inclusion_proof(h, index=0, size=1, proof=[]) == h


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"index": 8, "size": 8}, "expected leaf index < tree size"),
        ({"index": -1, "size": 8}, "leaf index"),
        ({"index": 0, "size": 0}, "tree size"),
        ({"index": True, "size": 8}, "expected an integer"),
        ({"index": 0, "size": 2**64}, "tree size"),
        ({"index": 0, "size": 8, "proof": []}, "expected 3 hashes, got 0"),
        ({"index": 0, "size": 8, "proof": [b"x" * 32] * 4}, "expected 3 hashes, got 4"),
        ({"index": 0, "size": 8, "proof": [b"x" * 31] * 3}, "hash 0: expected a 32-byte hash"),
        ({"index": 0, "size": 8, "proof": b"x" * 96}, "expected a sequence"),
        ({"index": 0, "size": 8, "root": b"r"}, "expected root"),
        ({"index": 0, "size": 8, "leaf": "leaf"}, "leaf hash"),
    ],
)
def test_inclusion_malformed(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"leaf": b"l" * 32, "proof": [b"p" * 32] * 3, "root": b"r" * 32}
    args.update(kwargs)
    leaf = args.pop("leaf")
    with pytest.raises(FormatError, match=match):
        verify_leaf_inclusion(leaf, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("old", "new", "n", "match"),
    [
        (0, 5, 0, "old size"),
        (6, 5, 0, "expected old size <= new size"),
        (3, 3, 1, "expected 0 hashes, got 1"),
        (3, 5, 0, "expected 4 hashes, got 0"),
        (4, 8, 5, "expected 1 hashes, got 5"),
    ],
)
def test_consistency_malformed(old: int, new: int, n: int, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        verify_consistency(
            old_size=old,
            new_size=new,
            proof=[b"p" * 32] * n,
            old_root=b"a" * 32,
            new_root=b"b" * 32,
        )


def test_consistency_equal_sizes() -> None:
    verify_consistency(old_size=3, new_size=3, proof=[], old_root=b"a" * 32, new_root=b"a" * 32)
    with pytest.raises(IntegrityError, match="old root 6161"):
        verify_consistency(old_size=3, new_size=3, proof=[], old_root=b"a" * 32, new_root=b"b" * 32)


def test_reference_generators_reject_bad_ranges() -> None:
    hashes = _hashes(4)
    with pytest.raises(FormatError):
        inclusion_proof(hashes, 4, 4)
    with pytest.raises(FormatError):
        inclusion_proof(hashes, 0, 5)
    with pytest.raises(FormatError):
        consistency_proof(hashes, 3, 2)
    with pytest.raises(FormatError):
        consistency_proof(hashes, 0, 2)


@pytest.mark.parametrize(
    "name", ["_merkle", "_note", "_checkpoint", "_receipt", "_logstore", "_log"]
)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(f"computewatch.crypto.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_public_and_hazmat_exports() -> None:
    for name in ["MerkleLog", "Receipt", "verify_receipt", "verify_inclusion", "leaf_hash"]:
        assert name in crypto.__all__
    assert hazmat.node_hash is node_hash
    assert "node_hash" not in crypto.__all__


def test_hash_inputs_may_be_bytearrays() -> None:
    h = leaf_hash(b"x")
    root = root_from_inclusion_proof(bytearray(h), index=0, size=1, proof=[])  # type: ignore[arg-type]
    assert root == h
    assert type(root) is bytes
