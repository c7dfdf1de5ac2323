r"""Canonical bytes and domain-separated hashing.

Every hash computewatch publishes is ``H(domain ‖ data)`` where ``domain`` is
a short ASCII tag ending in one NUL byte and containing no other NUL (for
example ``b"computewatch/json/v1\x00"``). Tags of that shape form a
prefix-free set, so no input hashed under one tag can collide with an input
hashed under another: a log entry can never be passed off as a transcript
record or a weight shard.

Structured data is hashed as **canonical JSON** (`canonical_json`): UTF-8,
object keys sorted by Unicode code point, no insignificant whitespace, no
NaN or infinities, only JSON types (dict with str keys, list/tuple, str,
int, float, bool, None). Floats render as Python's shortest round-trip
``repr``; this is *not* RFC 8785 (JCS), which formats numbers the ECMAScript
way and sorts keys by UTF-16 code units. Formats that must be reproduced
outside Python should keep floats out of hashed documents (write them as
strings or integers), and other implementations must sort by code point.

Example:
    >>> from computewatch.crypto import canonical_json, json_digest
    >>> canonical_json({"b": [1, 2], "a": "é"})
    b'{"a":"\xc3\xa9","b":[1,2]}'
    >>> str(json_digest({"a": 1})).startswith("sha256:")
    True
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Protocol

import blake3

from computewatch.crypto._digest import Digest, HashAlgorithm
from computewatch.errors import FormatError, ParameterError

__all__ = [
    "BLAKE3_THREADS_FROM",
    "JSON_DOMAIN",
    "MAX_JSON_DEPTH",
    "Hasher",
    "canonical_json",
    "check_domain",
    "hash_bytes",
    "json_digest",
    "new_hasher",
]

#: Domain tag of `json_digest`'s default: hashes of canonical JSON documents.
JSON_DOMAIN = b"computewatch/json/v1\x00"

#: Deepest nesting `canonical_json` accepts (bounded input, bounded recursion).
MAX_JSON_DEPTH = 64

#: Longest domain tag accepted by `check_domain`.
_MAX_DOMAIN_BYTES = 255

#: Inputs from this size on are hashed by BLAKE3 with all cores when the
#: caller lets it choose (measured crossover on a 2-core host: 128-256 KiB).
BLAKE3_THREADS_FROM = 256 * 1024


class Hasher(Protocol):
    """The part of a ``hashlib`` object that computewatch uses."""

    def update(self, data: bytes | bytearray | memoryview, /) -> object:
        """Absorb more input."""

    def digest(self) -> bytes:
        """Return the output so far."""


def new_hasher(
    algorithm: HashAlgorithm | str,
    *,
    size_hint: int = 0,
    max_threads: int | None = None,
) -> Hasher:
    """Return a fresh incremental hasher for ``algorithm``.

    Args:
        algorithm: SHA-256 or BLAKE3.
        size_hint: Expected total input size in bytes; with ``max_threads``
            left as None, BLAKE3 uses all cores from `BLAKE3_THREADS_FROM` on.
        max_threads: BLAKE3 only: 1 for one thread, ``-1`` for as many as it
            likes (``blake3.AUTO``), None to decide from ``size_hint``.

    Returns:
        An object with ``update`` and ``digest``.

    Raises:
        FormatError: Unknown algorithm.
        ParameterError: ``max_threads`` is 0 or below -1.
    """
    algorithm = HashAlgorithm.coerce(algorithm)
    if max_threads is not None and (max_threads == 0 or max_threads < -1):
        msg = f"max_threads: expected a positive count, -1 (auto) or None, got {max_threads}"
        raise ParameterError(msg)
    if algorithm is HashAlgorithm.SHA256:
        return hashlib.sha256()
    if max_threads is None:
        max_threads = blake3.blake3.AUTO if size_hint >= BLAKE3_THREADS_FROM else 1
    hasher: Hasher = blake3.blake3(max_threads=max_threads)
    return hasher


def check_domain(domain: bytes) -> None:
    r"""Check that ``domain`` is a valid domain-separation tag.

    A tag is 2 to 255 bytes, ends in one NUL byte and has no other NUL, which
    makes the set of tags prefix-free.

    Args:
        domain: The tag, e.g. ``b"computewatch/json/v1\x00"``.

    Raises:
        ParameterError: ``domain`` breaks one of these rules.
    """
    if not 2 <= len(domain) <= _MAX_DOMAIN_BYTES:  # noqa: PLR2004 - one tag byte and the NUL
        msg = f"hash domain: expected 2 to {_MAX_DOMAIN_BYTES} bytes, got {len(domain)}"
        raise ParameterError(msg)
    if domain[-1] != 0 or domain.count(0) != 1:
        msg = f"hash domain {domain!r}: expected exactly one NUL byte, at the end"
        raise ParameterError(msg)


def hash_bytes(
    data: bytes | bytearray | memoryview,
    *,
    domain: bytes,
    algorithm: HashAlgorithm | str = HashAlgorithm.SHA256,
) -> Digest:
    r"""Hash ``domain ‖ data``.

    Args:
        data: The bytes to hash (any contiguous buffer).
        domain: A domain-separation tag (see `check_domain`).
        algorithm: SHA-256 (default) or BLAKE3.

    Returns:
        The typed digest.

    Raises:
        ParameterError: ``domain`` is not a valid tag.
        FormatError: Unknown algorithm.

    Example:
        >>> hash_bytes(b"abc", domain=b"example/v1\x00").algorithm.value
        'sha256'
    """
    check_domain(domain)
    view = memoryview(data)
    hasher = new_hasher(algorithm, size_hint=view.nbytes)
    hasher.update(domain)
    hasher.update(view)
    return Digest(HashAlgorithm.coerce(algorithm), hasher.digest())


def _check_json(value: Any, path: str, depth: int) -> None:
    """Raise FormatError if ``value`` is not canonical-JSON-able; ``path`` locates it."""
    if depth > MAX_JSON_DEPTH:
        msg = f"canonical JSON at {path}: expected nesting depth <= {MAX_JSON_DEPTH}"
        raise FormatError(msg)
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                msg = (
                    f"canonical JSON at {path}: expected str object keys, "
                    f"got {type(key).__name__} key {key!r}"
                )
                raise FormatError(msg)
            _check_text(key, f"{path} (a key)")
            _check_json(item, f"{path}.{key}", depth + 1)
    else:
        _check_scalar(value, path)


def _check_scalar(value: Any, path: str) -> None:
    """Raise FormatError unless ``value`` is None, bool, int, finite float or valid str."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            msg = f"canonical JSON at {path}: expected a finite number, got {value!r}"
            raise FormatError(msg)
        return
    if isinstance(value, str):
        _check_text(value, path)
        return
    msg = (
        f"canonical JSON at {path}: expected dict, list, str, int, float, bool or None, "
        f"got {type(value).__name__}"
    )
    raise FormatError(msg)


def _check_text(text: str, path: str) -> None:
    """Raise FormatError if ``text`` cannot be encoded as UTF-8 (lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        msg = f"canonical JSON at {path}: expected valid Unicode text, got a lone surrogate"
        raise FormatError(msg) from e


def canonical_json(obj: Any) -> bytes:
    """Return the canonical JSON encoding of ``obj`` (see the module docs).

    Args:
        obj: A JSON value built from dict (str keys), list, tuple, str, int,
            float (finite), bool and None.

    Returns:
        UTF-8 bytes with sorted keys and no whitespace; equal values (in any
        dict insertion order) give equal bytes.

    Raises:
        FormatError: ``obj`` contains a NaN or infinity, a non-str key, a
            non-JSON type, a lone surrogate, or nests deeper than
            `MAX_JSON_DEPTH`. The message gives the path, e.g. ``$.a[3]``.
    """
    _check_json(obj, "$", 0)
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def json_digest(
    obj: Any,
    *,
    domain: bytes = JSON_DOMAIN,
    algorithm: HashAlgorithm | str = HashAlgorithm.SHA256,
) -> Digest:
    """Hash the canonical JSON of ``obj`` under ``domain``.

    Args:
        obj: A JSON value (see `canonical_json`).
        domain: Domain-separation tag; give each document kind its own
            (default `JSON_DOMAIN`).
        algorithm: SHA-256 (default) or BLAKE3.

    Returns:
        ``H(domain ‖ canonical_json(obj))``.

    Raises:
        FormatError: ``obj`` is not canonical-JSON-able.
        ParameterError: ``domain`` is not a valid tag.
    """
    return hash_bytes(canonical_json(obj), domain=domain, algorithm=algorithm)
