"""Drawing the monitoring period's chip sample (paper §3.2, §3.1).

The sample must be chosen by neither party alone, reproducible, and
auditable afterwards; the Prover must learn it only at inspection. The
protocol is a commit-reveal between Verifier and Prover mixed with the
registry's signed checkpoint at the start of the period:

1. Verifier and Prover each pick a secret 32-byte nonce and publish its
   commitment ``H(domain ‖ party ‖ nonce)``;
2. the registry checkpoint (its root hash) for the period is fixed;
3. at inspection both reveal; each reveal is checked against its commitment;
4. ``seed = H(domain ‖ canonical JSON of both nonces, the root, the period,
   the candidate serials)`` and the sample is the `size` candidates with the
   smallest ``H(seed ‖ serial)`` (a hash lottery, without replacement).

A party who commits first cannot steer the seed without breaking the hash;
a party who sees the other's commitment learns nothing of its nonce; and
anyone holding the reveals, the commitments and the checkpoint recomputes
the sample (`verify_draw`).

Example::

    >>> from computewatch.inspection import commit_nonce, draw_sample
    >>> v, p = bytes(32), bytes(range(32))
    >>> draw = draw_sample(
    ...     ["a", "b", "c"], 2, verifier_nonce=v, verifier_commitment=commit_nonce("verifier", v),
    ...     prover_nonce=p, prover_commitment=commit_nonce("prover", p),
    ...     registry_root=b"r" * 32, period="2026-11")
    >>> len(draw.chips)
    2
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch._validate import int_in_range, text
from computewatch.crypto import Digest, canonical_json, hash_bytes
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["SampleDraw", "commit_nonce", "draw_sample", "verify_draw"]

_COMMIT_DOMAIN = b"computewatch/sample-commitment/v1\x00"
_SEED_DOMAIN = b"computewatch/sample-seed/v1\x00"
_NONCE_BYTES = 32


def commit_nonce(party: str, nonce: bytes) -> Digest:
    """The public commitment to a party's secret nonce."""
    if len(nonce) != _NONCE_BYTES:
        msg = f"{party} nonce: expected {_NONCE_BYTES} bytes, got {nonce!r:.40}"
        raise FormatError(msg)
    return hash_bytes(party.encode() + b"\x00" + nonce, domain=_COMMIT_DOMAIN)


@dataclass(frozen=True)
class SampleDraw:
    """A drawn sample and everything needed to recompute it.

    Attributes:
        period: the monitoring period's label.
        candidates: the Prover's chips in the directory (sorted).
        size: chips drawn.
        verifier_nonce: the Verifier's revealed nonce.
        verifier_commitment: its earlier commitment.
        prover_nonce: the Prover's revealed nonce.
        prover_commitment: its earlier commitment.
        registry_root: the registry checkpoint's root hash for the period.
        seed: the mixed seed.
        chips: the sampled serials, in draw order.
    """

    period: str
    candidates: tuple[str, ...]
    size: int
    verifier_nonce: bytes
    verifier_commitment: Digest
    prover_nonce: bytes
    prover_commitment: Digest
    registry_root: bytes
    seed: Digest
    chips: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The auditable record."""
        return {
            "period": self.period,
            "candidates": list(self.candidates),
            "size": self.size,
            "verifier_nonce": self.verifier_nonce.hex(),
            "verifier_commitment": str(self.verifier_commitment),
            "prover_nonce": self.prover_nonce.hex(),
            "prover_commitment": str(self.prover_commitment),
            "registry_root": self.registry_root.hex(),
            "seed": str(self.seed),
            "chips": list(self.chips),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SampleDraw:
        """Parse a recorded draw (then `verify_draw` it)."""
        try:
            return cls(
                period=str(doc["period"]),
                candidates=tuple(str(c) for c in doc["candidates"]),
                size=int(doc["size"]),
                verifier_nonce=bytes.fromhex(doc["verifier_nonce"]),
                verifier_commitment=Digest.parse(doc["verifier_commitment"]),
                prover_nonce=bytes.fromhex(doc["prover_nonce"]),
                prover_commitment=Digest.parse(doc["prover_commitment"]),
                registry_root=bytes.fromhex(doc["registry_root"]),
                seed=Digest.parse(doc["seed"]),
                chips=tuple(str(c) for c in doc["chips"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            msg = f"sample draw: malformed record ({e})"
            raise FormatError(msg) from e


def _lottery(seed: Digest, candidates: Sequence[str], size: int) -> tuple[str, ...]:
    def ticket(serial: str) -> bytes:
        return hashlib.sha256(seed.value + serial.encode()).digest()

    return tuple(sorted(candidates, key=ticket)[:size])


def draw_sample(
    candidates: Sequence[str],
    size: int,
    *,
    verifier_nonce: bytes,
    verifier_commitment: Digest,
    prover_nonce: bytes,
    prover_commitment: Digest,
    registry_root: bytes,
    period: str,
) -> SampleDraw:
    """Draw `size` of `candidates` from both revealed nonces and the registry root.

    Raises:
        IntegrityError: a revealed nonce does not match its commitment.
        FormatError: bad sizes or inputs.
    """
    text("period", period, max_len=64)
    pool = tuple(sorted(set(candidates)))
    if len(pool) != len(candidates) or not pool:
        msg = (
            f"sample candidates: expected distinct serials, got {len(candidates)} "
            "with duplicates or none"
        )
        raise FormatError(msg)
    n = int_in_range("sample size", size, 1, len(pool))
    for party, nonce, commitment in (
        ("verifier", verifier_nonce, verifier_commitment),
        ("prover", prover_nonce, prover_commitment),
    ):
        if commit_nonce(party, nonce) != commitment:
            msg = f"sample draw: the {party}'s revealed nonce does not match its commitment"
            raise IntegrityError(msg)
    if len(registry_root) != _NONCE_BYTES:
        msg = f"registry root: expected 32 bytes, got {len(registry_root)}"
        raise FormatError(msg)
    seed = hash_bytes(
        canonical_json(
            {
                "verifier": verifier_nonce.hex(),
                "prover": prover_nonce.hex(),
                "registry_root": registry_root.hex(),
                "period": period,
                "candidates": list(pool),
            }
        ),
        domain=_SEED_DOMAIN,
    )
    return SampleDraw(
        period=period,
        candidates=pool,
        size=n,
        verifier_nonce=verifier_nonce,
        verifier_commitment=verifier_commitment,
        prover_nonce=prover_nonce,
        prover_commitment=prover_commitment,
        registry_root=registry_root,
        seed=seed,
        chips=_lottery(seed, pool, n),
    )


def verify_draw(draw: SampleDraw) -> None:
    """Recompute a recorded draw; raise `IntegrityError` if anything differs."""
    again = draw_sample(
        draw.candidates,
        draw.size,
        verifier_nonce=draw.verifier_nonce,
        verifier_commitment=draw.verifier_commitment,
        prover_nonce=draw.prover_nonce,
        prover_commitment=draw.prover_commitment,
        registry_root=draw.registry_root,
        period=draw.period,
    )
    if again.seed != draw.seed or again.chips != draw.chips:
        msg = "sample draw: the recorded seed or sample does not recompute from the reveals"
        raise IntegrityError(msg)
