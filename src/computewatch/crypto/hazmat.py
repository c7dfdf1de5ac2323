"""Hazardous materials: raw building blocks under the safe crypto recipes.

.. danger::

    These functions each do one low-level step and check nothing around it:
    no payload-type check, no threshold, no key trust decision, no size
    limit. Used on their own they make it easy to accept a signature made
    for something else. Use the safe recipes instead:
    `computewatch.crypto.sign_envelope` and
    `computewatch.crypto.verify_envelope` (DSSE envelopes with a trusted-key
    threshold). This module exists for interoperability tests and for other
    envelope encodings built on the same pre-authentication encoding.

DSSE's pre-authentication encoding (PAE, DSSE protocol v1.0.2) is::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

where ``SP`` is one ASCII space and ``LEN`` the ASCII decimal byte length,
with no leading zeros. A DSSE signature is ``Sign(PAE(UTF8(type), body))``.

The RFC 9162 Merkle helpers (`node_hash`, `merkle_root`, the in-memory
`inclusion_proof` / `consistency_proof` generators, `root_from_inclusion_proof`
and `verify_leaf_inclusion`) work on *leaf hashes*, not entries: hand them an
entry where a hash is expected and they prove something else. Use the safe
recipes instead: `computewatch.crypto.MerkleLog`,
`computewatch.crypto.verify_inclusion` (which hashes the entry itself),
`computewatch.crypto.verify_consistency` and `computewatch.crypto.verify_receipt`.

Example:
    >>> from computewatch.crypto.hazmat import pae
    >>> pae("http://example.com/HelloWorld", b"hello world")
    b'DSSEv1 29 http://example.com/HelloWorld 11 hello world'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# Raw RFC 9162 Merkle hashing (section B): see the module docstring.
from computewatch.crypto._merkle import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    merkle_root,
    node_hash,
    root_from_inclusion_proof,
    verify_leaf_inclusion,
)
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from computewatch.crypto._keys import Signer, VerifyingKey

__all__ = [
    "EMPTY_ROOT",
    "consistency_proof",
    "inclusion_proof",
    "merkle_root",
    "node_hash",
    "pae",
    "root_from_inclusion_proof",
    "sign_pae",
    "verify_leaf_inclusion",
    "verify_pae",
]

# --- DSSE pre-authentication encoding and raw signatures (section A) ---


def pae(payload_type: str | bytes, payload: bytes) -> bytes:
    """Return DSSE's pre-authentication encoding of ``payload_type`` and ``payload``.

    Args:
        payload_type: The payload type; a str is encoded as UTF-8.
        payload: The serialized body.

    Returns:
        ``b"DSSEv1 " + len(type) + b" " + type + b" " + len(body) + b" " + body``.

    Raises:
        FormatError: ``payload_type`` is a str that is not valid Unicode.
    """
    if isinstance(payload_type, str):
        try:
            type_bytes = payload_type.encode("utf-8")
        except UnicodeEncodeError as e:
            msg = "DSSE payload type: expected valid Unicode text, got a lone surrogate"
            raise FormatError(msg) from e
    else:
        type_bytes = bytes(payload_type)
    body = bytes(payload)
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(body), body)


def sign_pae(signer: Signer, payload_type: str | bytes, payload: bytes) -> bytes:
    """Return ``signer``'s raw DSSE signature: ``Sign(PAE(type, payload))``.

    Prefer `computewatch.crypto.sign_envelope`, which also records the key
    id and produces the JSON envelope.

    Args:
        signer: A `SigningKey` or any other `Signer`.
        payload_type: The payload type.
        payload: The serialized body.

    Returns:
        The signature bytes.
    """
    return signer.sign(pae(payload_type, payload))


def verify_pae(
    key: VerifyingKey, signature: bytes, payload_type: str | bytes, payload: bytes
) -> None:
    """Check one raw DSSE signature with one key, nothing else.

    Prefer `computewatch.crypto.verify_envelope`, which applies a set of
    trusted keys and a threshold and fails closed.

    Args:
        key: The public key.
        signature: The raw signature bytes.
        payload_type: The payload type.
        payload: The serialized body.

    Raises:
        IntegrityError: The signature does not verify.
    """
    key.verify(signature, pae(payload_type, payload))
