"""Typed digests: an algorithm and its raw output, written as ``sha256:<hex>``.

A `Digest` is what every other layer stores and compares instead of bare hex
strings, so that a SHA-256 value can never be mistaken for a BLAKE3 one and a
truncated or upper-case string never compares equal by accident. The text
form is canonical: ``<algorithm>:<64 lower-case hex digits>``; `Digest.parse`
accepts exactly that and nothing else, so ``str`` and ``parse`` are inverse
bijections.

Example:
    >>> from computewatch.crypto import Digest, HashAlgorithm
    >>> d = Digest.parse("sha256:" + "ab" * 32)
    >>> d.algorithm is HashAlgorithm.SHA256
    True
    >>> str(d) == "sha256:" + "ab" * 32
    True
    >>> Digest.parse(str(d)) == d
    True
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import NewType

from computewatch.errors import FormatError

__all__ = ["DIGEST_SIZE", "Digest", "HashAlgorithm", "KeyID"]

#: Identifier of a public key: ``sha256:<hex>`` of its raw bytes (see `VerifyingKey.key_id`).
KeyID = NewType("KeyID", str)

#: Longest piece of untrusted text echoed back in an error message.
_ECHO_LIMIT = 80


class HashAlgorithm(enum.StrEnum):
    """The hash functions computewatch uses for digests.

    SHA-256 is the default everywhere (DESIGN: "Weight shard hash"); BLAKE3 is
    the faster tree hash, justified by ``benchmarks/bench_shard_hash.py``.
    """

    SHA256 = "sha256"
    BLAKE3 = "blake3"

    @classmethod
    def coerce(cls, value: HashAlgorithm | str) -> HashAlgorithm:
        """Return ``value`` as a `HashAlgorithm`.

        Args:
            value: An algorithm or its name (``"sha256"``, ``"blake3"``).

        Returns:
            The matching member.

        Raises:
            FormatError: ``value`` names no supported algorithm.
        """
        try:
            return cls(value)
        except ValueError as e:
            names = ", ".join(m.value for m in cls)
            msg = f"hash algorithm: expected one of {names}, got {_echo(str(value))}"
            raise FormatError(msg) from e


#: Output size in bytes of each algorithm (BLAKE3 at its default length).
DIGEST_SIZE: dict[HashAlgorithm, int] = {HashAlgorithm.SHA256: 32, HashAlgorithm.BLAKE3: 32}

_TEXT_RE = re.compile(r"(?P<alg>[a-z0-9]+):(?P<hex>[0-9a-f]*)")


def _echo(text: str) -> str:
    """Quote untrusted text for an error message, truncated to a safe length."""
    if len(text) > _ECHO_LIMIT:
        return repr(text[:_ECHO_LIMIT]) + "…"
    return repr(text)


@dataclass(frozen=True, slots=True)
class Digest:
    """The output of a hash function, tagged with the function that made it.

    Instances are immutable, compare equal when algorithm and bytes are equal,
    and hash accordingly (they can be dict keys and set members).

    Attributes:
        algorithm: The hash function.
        value: Its raw output (`DIGEST_SIZE` bytes).
    """

    algorithm: HashAlgorithm
    value: bytes

    def __post_init__(self) -> None:
        """Check the invariants: a known algorithm and an output of its size.

        Raises:
            FormatError: The algorithm is unknown or ``value`` has the wrong
                length.
        """
        algorithm = HashAlgorithm.coerce(self.algorithm)
        object.__setattr__(self, "algorithm", algorithm)
        object.__setattr__(self, "value", bytes(self.value))  # bytearray etc. would not hash
        size = DIGEST_SIZE[algorithm]
        if len(self.value) != size:
            msg = f"{algorithm} digest: expected {size} bytes, got {len(self.value)}"
            raise FormatError(msg)

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse the canonical text form ``<algorithm>:<lower-case hex>``.

        Args:
            text: For example ``"sha256:9f86d0…"``.

        Returns:
            The digest.

        Raises:
            FormatError: ``text`` names an unknown algorithm,
                has the wrong number of hex digits, or has characters other
                than lower-case hex after the colon.
        """
        match = _TEXT_RE.fullmatch(text)
        if match is None:
            msg = (
                "digest text: expected '<algorithm>:<lower-case hex>' "
                f"(e.g. 'sha256:…'), got {_echo(text)}"
            )
            raise FormatError(msg)
        algorithm = HashAlgorithm.coerce(match["alg"])
        digits = match["hex"]
        size = DIGEST_SIZE[algorithm]
        if len(digits) != 2 * size:
            msg = (
                f"digest text {_echo(text)}: expected {2 * size} hex digits "
                f"for {algorithm}, got {len(digits)}"
            )
            raise FormatError(msg)
        return cls(algorithm, bytes.fromhex(digits))

    @property
    def hex(self) -> str:
        """The raw value as lower-case hex, without the algorithm prefix."""
        return self.value.hex()

    def __str__(self) -> str:
        """Return the canonical text form, e.g. ``sha256:9f86d0…``."""
        return f"{self.algorithm.value}:{self.value.hex()}"

    def __repr__(self) -> str:
        """Return an expression that rebuilds the digest: ``Digest.parse('sha256:…')``."""
        return f"Digest.parse({str(self)!r})"
