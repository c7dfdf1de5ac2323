"""DSSE envelopes: signed payloads with their type, as JSON.

Chip log entries, custody events and verdicts travel as DSSE envelopes
(DSSE protocol and envelope v1.0.2; see ``hazmat.pae`` for what is signed).
The wire form is the standard JSON envelope::

    {"payload": "<base64>", "payloadType": "<type>",
     "signatures": [{"keyid": "<KeyID>", "sig": "<base64>"}]}

written compactly with sorted keys and standard base64. Parsing
(`Envelope.from_json`) is strict and bounded: at most `MAX_ENVELOPE_BYTES`
of UTF-8 JSON and `MAX_SIGNATURES` signatures; duplicate JSON keys, NaN
constants and non-canonical base64 (bad padding bits, mixed alphabets) are
rejected so that one envelope has one wire form; standard and URL-safe
base64 (padded or not) are both accepted, as the spec requires; unknown
fields are ignored, as it also requires. Every problem is a `FormatError`
naming the field.

`verify_envelope` fails closed and follows the spec's (t, n) rule: a
signature counts only if its ``keyid`` names a trusted key *and* verifies
under that key; signatures with unknown or empty key ids are skipped (the
key id is only a hint, but trying every key for an empty one would let a
tampered key id still pass); each distinct public key counts once. Fewer
than ``threshold`` keys is an `IntegrityError`.

Example:
    >>> from computewatch.crypto import SigningKey, sign_envelope, verify_envelope
    >>> key = SigningKey.from_seed(bytes(32))
    >>> wire = sign_envelope("application/vnd.example+json", b"{}", [key]).to_json()
    >>> verified = verify_envelope(wire, {key.key_id: key.verifying_key})
    >>> verified.payload
    b'{}'
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.crypto._digest import KeyID
from computewatch.crypto.hazmat import pae
from computewatch.errors import FormatError, IntegrityError, ParameterError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from computewatch.crypto._keys import Signer, VerifyingKey

__all__ = [
    "MAX_ENVELOPE_BYTES",
    "MAX_SIGNATURES",
    "Envelope",
    "EnvelopeSignature",
    "VerifiedPayload",
    "sign_envelope",
    "verify_envelope",
]

#: Largest serialized envelope `Envelope.from_json` reads (16 MiB).
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024

#: Most signatures one envelope may carry.
MAX_SIGNATURES = 256

#: How many key ids an error message lists before eliding the rest.
_LISTED_KEY_IDS = 8


@dataclass(frozen=True, slots=True)
class EnvelopeSignature:
    """One signature in an envelope.

    Attributes:
        keyid: Unauthenticated hint naming the key ("" when unset).
        sig: The raw signature bytes.
    """

    keyid: str
    sig: bytes

    def __post_init__(self) -> None:
        """Store ``sig`` as immutable bytes."""
        object.__setattr__(self, "sig", bytes(self.sig))


@dataclass(frozen=True, slots=True)
class Envelope:
    """A DSSE envelope: a typed payload and its signatures.

    An `Envelope` is *not* verified by being constructed or parsed; only
    `verify_envelope` says whether it is authentic.

    Attributes:
        payload_type: What the payload is (e.g. a media type).
        payload: The serialized body that was signed.
        signatures: The signatures, in wire order.
    """

    payload_type: str
    payload: bytes
    signatures: tuple[EnvelopeSignature, ...]

    def __post_init__(self) -> None:
        """Store bytes and a tuple; check that the payload type is valid Unicode.

        Raises:
            FormatError: ``payload_type`` holds a lone surrogate.
        """
        pae(self.payload_type, b"")  # raises FormatError on lone surrogates
        object.__setattr__(self, "payload", bytes(self.payload))
        object.__setattr__(self, "signatures", tuple(self.signatures))

    def to_json(self) -> bytes:
        """Return the compact JSON envelope (sorted keys, standard base64, ASCII)."""
        doc = {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        """Parse a JSON envelope strictly (see the module docs).

        Args:
            data: The serialized envelope.

        Returns:
            The (unverified) envelope.

        Raises:
            FormatError: Too large, not UTF-8 JSON, a missing or mistyped
                field, bad base64, or too many signatures; the message names
                the field.
        """
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
        if len(raw) > MAX_ENVELOPE_BYTES:
            msg = f"envelope: expected at most {MAX_ENVELOPE_BYTES} bytes, got {len(raw)}"
            raise FormatError(msg)
        try:
            doc = json.loads(
                raw.decode("utf-8"),
                object_pairs_hook=_no_duplicate_keys,
                parse_constant=_no_constants,
            )
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            msg = f"envelope: expected UTF-8 JSON ({e})"
            raise FormatError(msg) from e
        if not isinstance(doc, dict):
            msg = f"envelope: expected a JSON object, got {type(doc).__name__}"
            raise FormatError(msg)
        payload = _b64decode(_field(doc, "payload", str), "payload")
        payload_type = _field(doc, "payloadType", str)
        items = _field(doc, "signatures", list)
        if len(items) > MAX_SIGNATURES:
            msg = (
                f"envelope field 'signatures': expected at most {MAX_SIGNATURES}, got {len(items)}"
            )
            raise FormatError(msg)
        signatures = []
        for i, item in enumerate(items):
            where = f"signatures[{i}]"
            if not isinstance(item, dict):
                msg = f"envelope field {where!r}: expected an object, got {type(item).__name__}"
                raise FormatError(msg)
            keyid = _field(item, "keyid", str, where=where, default="")
            sig = _b64decode(_field(item, "sig", str, where=where), f"{where}.sig")
            signatures.append(EnvelopeSignature(keyid, sig))
        return cls(payload_type, payload, tuple(signatures))


@dataclass(frozen=True, slots=True)
class VerifiedPayload:
    """What `verify_envelope` vouches for: exactly the bytes that were verified.

    Attributes:
        payload_type: The authenticated payload type.
        payload: The authenticated payload bytes (use these, never re-parse
            the envelope).
        key_ids: The trusted key ids whose signatures verified, in wire order.
    """

    payload_type: str
    payload: bytes
    key_ids: tuple[KeyID, ...]


def sign_envelope(payload_type: str, payload: bytes, signers: Sequence[Signer]) -> Envelope:
    """Sign ``payload`` as ``payload_type`` with every signer.

    Args:
        payload_type: An application-specific type, e.g.
            ``"application/vnd.computewatch.log-entry+json"``.
        payload: The serialized body.
        signers: One or more keys (or secure elements); each adds one
            signature with its key id.

    Returns:
        The signed envelope.

    Raises:
        ParameterError: No signers, or two with the same key id.
        FormatError: ``payload_type`` is not valid Unicode.
    """
    if not signers:
        msg = "sign_envelope signers: expected at least 1, got 0"
        raise ParameterError(msg)
    ids = [s.key_id for s in signers]
    if len(set(ids)) != len(ids):
        msg = f"sign_envelope signers: expected distinct keys, got key ids {ids}"
        raise ParameterError(msg)
    message = pae(payload_type, payload)
    signatures = tuple(EnvelopeSignature(s.key_id, s.sign(message)) for s in signers)
    return Envelope(payload_type, bytes(payload), signatures)


def verify_envelope(
    envelope: Envelope | bytes | str,
    trusted_keys: Mapping[KeyID, VerifyingKey],
    threshold: int = 1,
    *,
    payload_type: str | None = None,
) -> VerifiedPayload:
    """Verify that at least ``threshold`` distinct trusted keys signed ``envelope``.

    Args:
        envelope: An `Envelope`, or its JSON (parsed with `Envelope.from_json`).
        trusted_keys: The keys to accept, by the key id signers put in the
            envelope. Two ids mapping to the same public key count once.
        threshold: How many distinct trusted keys must have signed.
        payload_type: If given, the type the caller expects; any other is
            rejected even when correctly signed.

    Returns:
        The verified payload type, payload bytes and signing key ids.

    Raises:
        IntegrityError: Fewer than ``threshold`` trusted keys signed (the
            message says "envelope signed by k/t required keys" and lists
            the key ids seen), or the payload type is not the expected one.
        FormatError: ``envelope`` is malformed JSON (see `Envelope.from_json`).
        ParameterError: No trusted keys, or ``threshold`` is not between 1
            and the number of distinct trusted keys.
    """
    distinct = {key.raw for key in trusted_keys.values()}
    if isinstance(threshold, bool) or not isinstance(threshold, int):
        msg = f"envelope threshold: expected an int, got {type(threshold).__name__}"
        raise ParameterError(msg)
    if not distinct or not 1 <= threshold <= len(distinct):
        msg = (
            f"envelope threshold: expected 1 <= threshold <= {len(distinct)} distinct "
            f"trusted keys, got threshold {threshold}"
        )
        raise ParameterError(msg)
    if not isinstance(envelope, Envelope):
        envelope = Envelope.from_json(envelope)
    message = pae(envelope.payload_type, envelope.payload)
    accepted: dict[bytes, KeyID] = {}
    failed: list[EnvelopeSignature] = []
    for signature in envelope.signatures:
        key = trusted_keys.get(KeyID(signature.keyid)) if signature.keyid else None
        if key is None or key.raw in accepted:
            continue
        try:
            key.verify(signature.sig, message)
        except IntegrityError:
            failed.append(signature)
            continue
        accepted[key.raw] = KeyID(signature.keyid)
        if len(accepted) >= threshold:
            break
    if len(accepted) < threshold:
        msg = (
            f"envelope signed by {len(accepted)}/{threshold} required keys "
            f"(key ids seen: {_list_key_ids(envelope.signatures)}; "
            f"bad signatures from trusted key ids: {_list_key_ids(failed)})"
        )
        raise IntegrityError(msg)
    if payload_type is not None and envelope.payload_type != payload_type:
        msg = (
            f"envelope payload type: expected {payload_type!r}, got {envelope.payload_type[:80]!r}"
        )
        raise IntegrityError(msg)
    return VerifiedPayload(envelope.payload_type, envelope.payload, tuple(accepted.values()))


def _list_key_ids(signatures: Sequence[EnvelopeSignature]) -> str:
    """Render the (untrusted) key ids of ``signatures`` for an error message."""
    if not signatures:
        return "none"
    shown = [repr(s.keyid[:80]) for s in signatures[:_LISTED_KEY_IDS]]
    if len(signatures) > _LISTED_KEY_IDS:
        shown.append(f"… {len(signatures) - _LISTED_KEY_IDS} more")
    return ", ".join(shown)


def _field(
    doc: dict[str, Any],
    name: str,
    kind: type[Any],
    *,
    where: str = "",
    default: Any = None,
) -> Any:
    """Return ``doc[name]`` checked to be a ``kind``; a missing field uses ``default``."""
    path = f"{where}.{name}" if where else name
    if name not in doc:
        if default is not None:
            return default
        msg = f"envelope field {path!r}: expected a {kind.__name__}, got nothing (missing)"
        raise FormatError(msg)
    value = doc[name]
    if not isinstance(value, kind):
        msg = f"envelope field {path!r}: expected a {kind.__name__}, got {type(value).__name__}"
        raise FormatError(msg)
    return value


def _b64decode(text: str, field: str) -> bytes:
    """Decode standard or URL-safe base64 (padded or not), insisting on its canonical form."""
    urlsafe = "-" in text or "_" in text
    padded = text + "=" * (-len(text) % 4)
    try:
        # Non-ASCII text makes b64decode raise ValueError, reported below.
        raw = base64.b64decode(padded, altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError) as e:
        msg = f"envelope field {field!r}: expected base64, got invalid text ({e})"
        raise FormatError(msg) from e
    canonical = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode("ascii")
    if "=" in text and len(text) % 4:
        # padded and unpadded are both canonical; padding cut short is not
        msg = f"envelope field {field!r}: expected canonical base64, got a partial padding"
        raise FormatError(msg)
    if padded != canonical:
        msg = (
            f"envelope field {field!r}: expected canonical base64, got a non-canonical "
            "encoding (stray padding bits or mixed alphabets)"
        )
        raise FormatError(msg)
    return raw


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, rejecting duplicate keys (one envelope, one meaning)."""
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            msg = f"envelope: duplicate JSON key {key[:80]!r}"
            raise FormatError(msg)
        doc[key] = value
    return doc


def _no_constants(name: str) -> Any:
    """Reject JSON's non-standard NaN / Infinity constants."""
    msg = f"envelope: expected standard JSON, got the constant {name}"
    raise FormatError(msg)
