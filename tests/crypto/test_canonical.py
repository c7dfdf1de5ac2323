"""Canonical JSON and domain-separated hashing."""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from computewatch.crypto import (
    JSON_DOMAIN,
    Digest,
    HashAlgorithm,
    canonical_json,
    hash_bytes,
    json_digest,
)
from computewatch.crypto._canonical import MAX_JSON_DEPTH, new_hasher
from computewatch.errors import FormatError, ParameterError

if TYPE_CHECKING:
    import random

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every dict's insertion order shuffled."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def test_canonical_json_example() -> None:
    assert canonical_json({"b": [1, 2.5, None, True], "a": "é", "c": {}}) == (
        '{"a":"é","b":[1,2.5,null,true],"c":{}}'.encode()
    )
    assert canonical_json([1, (2, 3)]) == b"[1,[2,3]]"
    assert canonical_json("\u2028") == '"\u2028"'.encode()


@given(json_values, st.randoms(use_true_random=False))
def test_canonical_json_ignores_dict_order(value: Any, rng: random.Random) -> None:
    encoded = canonical_json(value)
    assert canonical_json(_shuffled(value, rng)) == encoded


@given(json_values)
def test_canonical_json_round_trips_through_json(value: Any) -> None:
    encoded = canonical_json(value)
    decoded = json.loads(encoded)
    assert canonical_json(decoded) == encoded
    assert (
        encoded
        == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({"a": [1, math.nan]}, r"at \$.a\[1\]: expected a finite number, got nan"),
        ({"a": math.inf}, r"at \$.a: expected a finite number"),
        (-math.inf, r"at \$: expected a finite number"),
        ({1: "x"}, "expected str object keys, got int key 1"),
        ({"k": b"raw"}, r"at \$.k: expected dict, list, str, int, float, bool or None, got bytes"),
        ({"s": {1, 2}}, "got set"),
        ("\ud800", "lone surrogate"),
        ({"\udfff": 1}, r"\(a key\).*lone surrogate"),
    ],
)
def test_canonical_json_rejects(value: Any, fragment: str) -> None:
    with pytest.raises(FormatError, match=fragment):
        canonical_json(value)


def test_canonical_json_depth_cap() -> None:
    deep: list[object] = []
    node = deep
    for _ in range(MAX_JSON_DEPTH):
        child: list[object] = []
        node.append(child)
        node = child
    canonical_json(deep)
    node.append([])
    with pytest.raises(FormatError, match="nesting depth"):
        canonical_json(deep)


def test_hash_bytes_known_answer() -> None:
    domain = b"example/v1\x00"
    digest = hash_bytes(b"abc", domain=domain)
    assert digest == Digest(HashAlgorithm.SHA256, hashlib.sha256(domain + b"abc").digest())
    digest = hash_bytes(memoryview(b"abc"), domain=domain, algorithm="blake3")
    assert digest == Digest(HashAlgorithm.BLAKE3, blake3.blake3(domain + b"abc").digest())


def test_hash_bytes_separates_domains() -> None:
    assert hash_bytes(b"x", domain=b"a\x00") != hash_bytes(b"x", domain=b"b\x00")
    # A tag is NUL-terminated, so "a\0" + "b..." cannot be read as another tag's input.
    assert hash_bytes(b"\x00b", domain=b"a\x00") != hash_bytes(b"b", domain=b"a\x00")


@pytest.mark.parametrize(
    ("domain", "fragment"),
    [
        (b"", "expected 2 to 255 bytes, got 0"),
        (b"\x00", "expected 2 to 255 bytes, got 1"),
        (b"x" * 255 + b"\x00", "got 256"),
        (b"no-terminator", "exactly one NUL byte, at the end"),
        (b"two\x00nuls\x00", "exactly one NUL byte"),
    ],
)
def test_hash_bytes_rejects_bad_domains(domain: bytes, fragment: str) -> None:
    with pytest.raises(ParameterError, match=fragment):
        hash_bytes(b"", domain=domain)


def test_json_digest_is_hash_of_canonical_json() -> None:
    value = {"z": 1, "a": [True, None]}
    assert json_digest(value) == hash_bytes(canonical_json(value), domain=JSON_DOMAIN)
    assert json_digest(value, algorithm="blake3").algorithm is HashAlgorithm.BLAKE3
    assert json_digest(value, domain=b"other/v1\x00") != json_digest(value)
    assert json_digest({"a": [True, None], "z": 1}) == json_digest(value)


@pytest.mark.parametrize("threads", [0, -2])
def test_new_hasher_rejects_bad_thread_counts(threads: int) -> None:
    with pytest.raises(ParameterError, match="max_threads"):
        new_hasher("blake3", max_threads=threads)


@pytest.mark.parametrize(("size", "threads"), [(0, None), (10**7, None), (10, 1), (10, -1)])
def test_new_hasher_blake3_threads_agree(size: int, threads: int | None) -> None:
    hasher = new_hasher("blake3", size_hint=size, max_threads=threads)
    hasher.update(b"abc")
    assert hasher.digest() == blake3.blake3(b"abc").digest()
