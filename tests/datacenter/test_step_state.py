"""The per-step commitment's hashing (ADR 0034, ADR 0042)."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from computewatch.crypto import shard_hash
from computewatch.datacenter import state_digest
from computewatch.datacenter._step_state import (
    LEAF_HASH,
    concat_leaf_hash,
    leaf_hash,
    slice_digest,
    slice_digest_of,
)
from computewatch.errors import ParameterError


def test_the_leaves_are_blake3_shard_hashes() -> None:
    w, m = torch.arange(8, dtype=torch.float32), torch.ones(8)
    assert LEAF_HASH.value == "blake3"
    assert leaf_hash(w) == shard_hash(w, "blake3")
    assert slice_digest(w, {"m": m}) == slice_digest_of(
        shard_hash(w, "blake3"), {"m": shard_hash(m, "blake3")}
    )


def test_a_leaf_of_another_algorithm_is_refused() -> None:
    w = torch.zeros(4)
    with pytest.raises(ParameterError, match="expected a blake3 digest, got sha256"):
        slice_digest_of(shard_hash(w), {})
    with pytest.raises(ParameterError, match="got sha256"):
        slice_digest_of(leaf_hash(w), {"exp_avg": shard_hash(w)})


def test_the_monitors_streamed_leaf_equals_the_verifiers() -> None:
    parts = [torch.randn(3, 5), torch.randn(7)]
    flat = torch.cat([p.reshape(-1) for p in parts])
    assert concat_leaf_hash(parts) == leaf_hash(flat)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 64),
    where=st.integers(0, 10**6),
    bit=st.integers(0, 31),
    chips=st.integers(1, 4),
)
def test_any_flipped_bit_of_weights_or_state_changes_the_digest(
    n: int, where: int, bit: int, chips: int
) -> None:
    gen = torch.Generator().manual_seed(n)
    w, m = torch.randn(n, generator=gen), torch.randn(n, generator=gen)
    cuts = sorted({0, n, *(n * k // chips for k in range(1, chips))})
    slices = list(itertools.pairwise(cuts))
    before = state_digest(w, {"exp_avg": m, "step": torch.tensor(3.0)}, slices)
    for target in (w, m):
        raw = target.view(torch.int32)
        raw[where % n] ^= 1 << bit
        assert state_digest(w, {"exp_avg": m, "step": torch.tensor(3.0)}, slices) != before
        raw[where % n] ^= 1 << bit
    assert state_digest(w, {"exp_avg": m, "step": torch.tensor(3.0)}, slices) == before
