"""Behaviour of `Digest`, `HashAlgorithm` and `KeyID`."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from computewatch.crypto import Digest, HashAlgorithm, KeyID
from computewatch.errors import FormatError

algorithms = st.sampled_from(list(HashAlgorithm))
digests = st.builds(Digest, algorithms, st.binary(min_size=32, max_size=32))

SHA = "sha256:" + "ab" * 32


@given(digests)
def test_text_round_trip(digest: Digest) -> None:
    text = str(digest)
    assert text == f"{digest.algorithm.value}:{digest.value.hex()}"
    assert Digest.parse(text) == digest
    assert str(Digest.parse(text)) == text


@given(digests)
def test_repr_rebuilds_the_digest(digest: Digest) -> None:
    assert eval(repr(digest), {"Digest": Digest}) == digest  # noqa: S307 - our own repr


def test_parse_fields() -> None:
    digest = Digest.parse(SHA)
    assert digest.algorithm is HashAlgorithm.SHA256
    assert digest.value == bytes([0xAB]) * 32
    assert digest.hex == "ab" * 32
    assert Digest.parse("blake3:" + "00" * 32).algorithm is HashAlgorithm.BLAKE3


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("md5:" + "ab" * 16, "expected one of sha256, blake3"),
        ("sha256:" + "ab" * 31, "expected 64 hex digits for sha256, got 62"),
        ("sha256:" + "ab" * 33, "expected 64 hex digits"),
        ("sha256:" + "a" * 63, "got 63"),
        ("sha256:" + "AB" * 32, "lower-case hex"),
        ("sha256:" + "zz" * 32, "lower-case hex"),
        ("SHA256:" + "ab" * 32, "lower-case hex"),
        ("sha256" + "ab" * 32, "lower-case hex"),
        ("", "lower-case hex"),
        (" " + SHA, "lower-case hex"),
        (SHA + "\n", "lower-case hex"),
        ("sha256:" + "ab" * 31 + "a b", "lower-case hex"),
    ],
)
def test_parse_rejects_bad_text(text: str, fragment: str) -> None:
    with pytest.raises(FormatError, match=fragment):
        Digest.parse(text)


def test_parse_error_echo_is_truncated() -> None:
    with pytest.raises(FormatError) as info:
        Digest.parse("x" * 10_000)
    assert len(info.value.message) < 300
    assert "…" in info.value.message


@given(st.text(max_size=80))
def test_parse_arbitrary_text_never_crashes(text: str) -> None:
    try:
        digest = Digest.parse(text)
    except FormatError:
        return
    assert str(digest) == text


def test_equality_and_hash() -> None:
    a = Digest.parse(SHA)
    b = Digest(HashAlgorithm.SHA256, bytes([0xAB]) * 32)
    other_alg = Digest(HashAlgorithm.BLAKE3, bytes([0xAB]) * 32)
    other_value = Digest(HashAlgorithm.SHA256, bytes(32))
    assert a == b
    assert hash(a) == hash(b)
    assert a != other_alg
    assert a != other_value
    assert a != SHA  # type: ignore[comparison-overlap] # never equal to its text
    assert len({a, b, other_alg, other_value}) == 3
    assert {a: 1}[b] == 1


def test_constructor_normalises_and_checks() -> None:
    digest = Digest("blake3", bytearray(32))  # type: ignore[arg-type]
    assert digest.algorithm is HashAlgorithm.BLAKE3
    assert isinstance(digest.value, bytes)
    hash(digest)
    with pytest.raises(FormatError, match="sha256 digest: expected 32 bytes, got 31"):
        Digest(HashAlgorithm.SHA256, bytes(31))
    with pytest.raises(FormatError, match="expected one of"):
        Digest("sha1", bytes(20))  # type: ignore[arg-type]


def test_frozen() -> None:
    digest = Digest.parse(SHA)
    with pytest.raises(dataclasses.FrozenInstanceError):
        digest.value = bytes(32)  # type: ignore[misc]


def test_hash_algorithm_coerce() -> None:
    assert HashAlgorithm.coerce("blake3") is HashAlgorithm.BLAKE3
    assert HashAlgorithm.coerce(HashAlgorithm.SHA256) is HashAlgorithm.SHA256
    assert str(HashAlgorithm.SHA256) == "sha256"
    with pytest.raises(FormatError, match="hash algorithm: expected one of sha256, blake3"):
        HashAlgorithm.coerce("sha3-256")


def test_key_id_is_a_str_newtype() -> None:
    key_id = KeyID("sha256:" + "00" * 32)
    assert isinstance(key_id, str)
    assert Digest.parse(key_id).algorithm is HashAlgorithm.SHA256
