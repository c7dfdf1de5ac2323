"""Reading a chip's log the only trustworthy way: against a fresh attestation.

A log file is Prover storage. Its signatures and hash chain show that every
entry in it came from the chip, but not that none is missing: a log cut
short (its newest entries removed) or emptied still verifies with the chip
key alone. What the file cannot hide is the secure element's own count of
the entries it wrote, so the Verifier asks the chip to attest it under a
nonce of its choosing (`Chip.attest`) and checks the file against that count
and head. `verify_attested_log` is that check; `chip verify`, `chip log` and
inspections use it, and the trusted cluster should too.

Example::

    >>> att = check_attestation(chip.attest(nonce), key, "CW-1", nonce)  # doctest: +SKIP
    >>> entries = verify_attested_log(read_chip_log(path), att, key, "CW-1")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from computewatch.chip._chiplog import verify_chip_log
from computewatch.crypto import Digest, verify_envelope
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from computewatch.chip._chiplog import LogEntry
    from computewatch.crypto import Envelope, VerifyingKey

__all__ = [
    "ATTESTATION_PAYLOAD_TYPE",
    "attested_log_size",
    "check_attestation",
    "verify_attested_log",
]

ATTESTATION_PAYLOAD_TYPE = "application/vnd.computewatch.attestation+json"


def check_attestation(
    envelope: Envelope | bytes | str, public_key: VerifyingKey, serial: str, nonce: bytes
) -> dict[str, Any]:
    """Verify an attestation's signature, nonce and serial; return its claims.

    Raises:
        IntegrityError: not signed by ``public_key``, or for another nonce
            (a replayed attestation) or another chip.
    """
    try:
        verified = verify_envelope(
            envelope, {public_key.key_id: public_key}, payload_type=ATTESTATION_PAYLOAD_TYPE
        )
    except IntegrityError as e:
        msg = (
            f"chip S/N {serial} attestation: does not verify against the key "
            f"{public_key.key_id} (forged, or the key was substituted)"
        )
        raise IntegrityError(msg) from e
    try:
        claims = json.loads(verified.payload)
    except ValueError as e:
        msg = f"chip S/N {serial} attestation: signed payload is not JSON"
        raise IntegrityError(msg) from e
    if not isinstance(claims, dict):
        msg = f"chip S/N {serial} attestation: signed payload is not a JSON object"
        raise IntegrityError(msg)
    if claims.get("nonce") != nonce.hex():
        msg = f"chip S/N {serial} attestation: not for this nonce (replayed or stale)"
        raise IntegrityError(msg)
    if claims.get("serial") != serial:
        msg = f"chip S/N {serial} attestation: names chip {claims.get('serial')!r}"
        raise IntegrityError(msg)
    return claims


def attested_log_size(claims: Mapping[str, Any], serial: str) -> tuple[int, Digest | None]:
    """The entry count and head hash an attestation's claims state.

    Raises:
        FormatError: the claims hold no well-formed log count.
    """
    log = claims.get("log")
    if not isinstance(log, dict):
        msg = f"chip S/N {serial} attestation: no log claims in it"
        raise FormatError(msg)
    size = log.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        msg = f"chip S/N {serial} attestation: no log entry count in it"
        raise FormatError(msg)
    head = Digest.parse(log["head"]) if size and log.get("head") else None
    return size, head


def verify_attested_log(
    envelopes: Sequence[Envelope],
    claims: Mapping[str, Any],
    public_key: VerifyingKey,
    serial: str,
) -> list[LogEntry]:
    """Verify a log against the chip key and the count and head in ``claims``.

    ``claims`` must come from `check_attestation` under the Verifier's fresh
    nonce. A log with fewer entries than the chip counted (cut short,
    emptied, a torn last line dropped) or whose last entry is not the
    attested head is tampering.

    Raises:
        IntegrityError: naming what is missing or wrong.
    """
    size, head = attested_log_size(claims, serial)
    return verify_chip_log(envelopes, public_key, serial, expected_size=size, expected_head=head)
