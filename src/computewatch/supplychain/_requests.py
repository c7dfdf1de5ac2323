"""Signed write requests to the registry: their payload, payload types and signing.

Every write to the directory is a DSSE envelope whose payload type names
the request kind (``application/vnd.computewatch.registry.<kind>+json``)
and whose payload is the canonical JSON::

    {"v": 1, "kind": "transfer", "registry": "<log origin>", "actor": "fab-1",
     "counter": 17, "time_us": 1700000000000000, "body": {...}}

``actor`` is the submitting actor, whose ``counter`` must exceed every
counter it used before (the registry refuses replays; the CLI uses the time
in microseconds as its counter). ``registry`` binds the request to one log,
so a request cannot be replayed to another registry. ``time_us`` must lie
within the registry's clock skew of its own clock, and is the time the
directory records. Requests with two parties (transfer, resell, the
registration of an actor and its key) carry both parties' signatures over
the same payload (`cosign`).

The payload must be exactly the canonical JSON of its fields, and the
envelope exactly `Envelope.to_json` of itself, so one request has one byte
string, and the log holds the bytes the parties signed.

Example:
    >>> from computewatch.crypto import SigningKey
    >>> from computewatch.supplychain import RequestKind, make_request, sign_request
    >>> fab = SigningKey.from_seed(bytes(range(32)))
    >>> req = make_request(RequestKind.DAMAGE, registry="example/log", actor="fab-1",
    ...                    counter=1, time_us=1, body={"serials": ["CW-1"]})
    >>> sign_request(req, [fab]).payload_type
    'application/vnd.computewatch.registry.damage+json'
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.crypto import Envelope, VerifyingKey, canonical_json, sign_envelope
from computewatch.errors import FormatError
from computewatch.supplychain._location_record import check_body as check_location_body
from computewatch.supplychain._model import Role, check_actor_id, check_serial

if TYPE_CHECKING:
    from collections.abc import Sequence

    from computewatch.crypto import Signer

__all__ = [
    "MAX_SERIALS",
    "PAYLOAD_TYPE_PREFIX",
    "Request",
    "RequestKind",
    "canonical_envelope",
    "cosign",
    "make_request",
    "payload_type",
    "request_digest",
    "sign_request",
]

PAYLOAD_TYPE_PREFIX = "application/vnd.computewatch.registry."
_PAYLOAD_TYPE_SUFFIX = "+json"
#: Most chips one request may name (a pallet of chips moves as one event).
MAX_SERIALS = 1000
_MAX_TEXT = 500
_MAX_FLAGS = 32
_MAX_COUNTER = (1 << 63) - 1
_FIELDS = frozenset({"v", "kind", "registry", "actor", "counter", "time_us", "body"})


class RequestKind(enum.StrEnum):
    """The kinds of signed write request (each has its own payload type)."""

    REGISTER_ACTOR = "register-actor"
    FABRICATE = "fabricate"
    TRANSFER = "transfer"
    RECEIVE = "receive"
    REGISTER_OWNER = "register-owner"
    RESELL = "resell"
    DAMAGE = "damage"
    DESTROY = "destroy"
    LOSE = "lose"
    INSPECT = "inspect"
    #: An audit party's commitment to its secret sampling nonce for a period.
    SAMPLE_COMMIT = "sample-commit"
    #: The reveal of that nonce (checked against the commitment by the audit).
    SAMPLE_REVEAL = "sample-reveal"
    #: The registrar licenses chips to a region (`supplychain._location_record`).
    LICENSE_REGION = "license-region"
    #: A verifier logs a location check of a chip against its licensed region.
    LOCATION_CHECK = "location-check"


def payload_type(kind: RequestKind) -> str:
    """Return the DSSE payload type of a request kind."""
    return f"{PAYLOAD_TYPE_PREFIX}{kind.value}{_PAYLOAD_TYPE_SUFFIX}"


def _kind_of(ptype: str) -> RequestKind:
    if ptype.startswith(PAYLOAD_TYPE_PREFIX) and ptype.endswith(_PAYLOAD_TYPE_SUFFIX):
        name = ptype[len(PAYLOAD_TYPE_PREFIX) : -len(_PAYLOAD_TYPE_SUFFIX)]
        try:
            return RequestKind(name)
        except ValueError:
            pass
    msg = (
        f"request payload type: expected {PAYLOAD_TYPE_PREFIX}<kind>{_PAYLOAD_TYPE_SUFFIX} "
        f"with a kind in {[k.value for k in RequestKind]}, got {ptype[:100]!r}"
    )
    raise FormatError(msg)


def _text(
    body: dict[str, Any], name: str, *, required: bool = False, limit: int = _MAX_TEXT
) -> str:
    value = body.get(name, None if required else "")
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        msg = f"request body field {name!r}: expected text of at most {limit} characters"
        raise FormatError(msg)
    if not value.isprintable():
        msg = f"request body field {name!r}: expected printable text"
        raise FormatError(msg)
    return value


def _key(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        msg = f"{what}: expected a hex public key, got {type(value).__name__}"
        raise FormatError(msg)
    try:
        raw = bytes.fromhex(value)
    except ValueError as e:
        msg = f"{what}: expected lower-case hex, got {value[:40]!r}"
        raise FormatError(msg) from e
    if raw.hex() != value:
        msg = f"{what}: expected lower-case hex, got {value[:40]!r}"
        raise FormatError(msg)
    VerifyingKey.from_raw(raw)  # FormatError unless Ed25519 or a P-256 point
    return raw


def _serials(body: dict[str, Any]) -> list[str]:
    serials = body.get("serials")
    if not isinstance(serials, list) or not 1 <= len(serials) <= MAX_SERIALS:
        msg = f"request body field 'serials': expected a list of 1 to {MAX_SERIALS} serials"
        raise FormatError(msg)
    for i, s in enumerate(serials):
        check_serial(s, f"request body serials[{i}]")
    if len(set(serials)) != len(serials):
        msg = "request body field 'serials': a serial is listed twice"
        raise FormatError(msg)
    return serials


def _only(body: dict[str, Any], allowed: set[str], kind: RequestKind) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        msg = f"{kind.value} request body: unexpected fields {extra}; allowed {sorted(allowed)}"
        raise FormatError(msg)


def _check_chip_spec(i: int, spec: object) -> None:
    where = f"fabricate request body chips[{i}]"
    if not isinstance(spec, dict):
        msg = f"{where}: expected an object"
        raise FormatError(msg)
    _only(spec, {"serial", "key", "model", "capabilities"}, RequestKind.FABRICATE)
    check_serial(spec.get("serial"), f"{where}.serial")
    _key(spec.get("key"), f"{where}.key")
    _text(spec, "model", required=True, limit=64)
    flags = spec.get("capabilities", [])
    ok = isinstance(flags, list) and len(flags) <= _MAX_FLAGS
    if not ok or not all(isinstance(f, str) and 0 < len(f) <= 64 for f in flags):  # noqa: PLR2004
        msg = f"{where}.capabilities: expected at most {_MAX_FLAGS} flags of 1-64 characters"
        raise FormatError(msg)
    if flags != sorted(set(flags)):
        msg = f"{where}.capabilities: expected sorted, distinct flags"
        raise FormatError(msg)


def _check_sample_body(kind: RequestKind, body: dict[str, Any]) -> None:
    commit = kind is RequestKind.SAMPLE_COMMIT
    field, prefix = ("commitment", "sha256:") if commit else ("nonce", "")
    _only(body, {"period", field}, kind)
    _text(body, "period", required=True, limit=64)
    value = body.get(field)
    digits = value[len(prefix) :] if isinstance(value, str) and value.startswith(prefix) else ""
    if len(digits) != 64 or digits.strip("0123456789abcdef"):  # noqa: PLR2004 - 32 bytes
        msg = (
            f"{kind.value} request body {field}: expected {prefix}<64 lower-case hex digits>, "
            f"got {str(value)[:80]!r}"
        )
        raise FormatError(msg)


def _check_body(kind: RequestKind, body: dict[str, Any]) -> None:
    if kind is RequestKind.REGISTER_ACTOR:
        _only(body, {"id", "role", "key", "name"}, kind)
        check_actor_id(body.get("id"), "register-actor request body id")
        if body.get("role") not in {r.value for r in Role}:
            msg = f"register-actor request body role: expected one of {[r.value for r in Role]}"
            raise FormatError(msg)
        _key(body.get("key"), "register-actor request body key")
        _text(body, "name", limit=200)
    elif kind is RequestKind.FABRICATE:
        _only(body, {"chips"}, kind)
        chips = body.get("chips")
        if not isinstance(chips, list) or not 1 <= len(chips) <= MAX_SERIALS:
            msg = f"fabricate request body chips: expected a list of 1 to {MAX_SERIALS} chips"
            raise FormatError(msg)
        for i, spec in enumerate(chips):
            _check_chip_spec(i, spec)
        serials = [c["serial"] for c in chips]
        if len(set(serials)) != len(serials):
            msg = "fabricate request body chips: a serial is listed twice"
            raise FormatError(msg)
    elif kind in {RequestKind.TRANSFER, RequestKind.RESELL}:
        _only(body, {"serials", "to", "note"}, kind)
        _serials(body)
        check_actor_id(body.get("to"), f"{kind.value} request body to")
        _text(body, "note")
    elif kind is RequestKind.INSPECT:
        _only(body, {"serials", "found_holder", "seal_intact", "note"}, kind)
        _serials(body)
        check_actor_id(body.get("found_holder"), "inspect request body found_holder")
        if not isinstance(body.get("seal_intact"), bool):
            msg = "inspect request body seal_intact: expected true or false"
            raise FormatError(msg)
        _text(body, "note")
    else:
        allowed = {"serials", "note", "site"} if kind is RequestKind.REGISTER_OWNER else None
        _only(body, allowed or {"serials", "note"}, kind)
        _serials(body)
        _text(body, "note")
        _text(body, "site", limit=200)


@dataclass(frozen=True, slots=True)
class Request:
    """A registry write request (the signed payload, parsed and checked for shape).

    Attributes:
        kind: What is asked.
        registry: The origin of the log the request is for.
        actor: The submitting actor (its counter is used).
        counter: Strictly increasing per actor.
        time_us: The request's time, microseconds since the epoch.
        body: Kind-specific fields (checked by `make_request`).
    """

    kind: RequestKind
    registry: str
    actor: str
    counter: int
    time_us: int
    body: dict[str, Any]

    def __post_init__(self) -> None:
        """Check every field; raise `FormatError` naming the first bad one."""
        kind: object = self.kind  # from JSON: check whatever the annotations say
        registry: object = self.registry
        if not isinstance(kind, RequestKind):
            msg = f"request kind: expected a RequestKind, got {kind!r:.40}"
            raise FormatError(msg)
        if not isinstance(registry, str) or not 0 < len(registry) <= _MAX_TEXT:
            msg = f"request registry: expected the log origin, got {registry!r:.80}"
            raise FormatError(msg)
        check_actor_id(self.actor, "request actor")
        numbers: tuple[tuple[str, object, int], ...] = (
            ("counter", self.counter, 1),
            ("time_us", self.time_us, 0),
        )
        for name, value, low in numbers:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value:
                msg = f"request {name}: expected an integer >= {low}, got {value!r:.40}"
                raise FormatError(msg)
            if value > _MAX_COUNTER:
                msg = f"request {name}: expected an integer below 2**63, got {value}"
                raise FormatError(msg)
        body: object = self.body
        if not isinstance(body, dict):
            msg = f"request body: expected an object, got {type(body).__name__}"
            raise FormatError(msg)
        if self.kind in {RequestKind.SAMPLE_COMMIT, RequestKind.SAMPLE_REVEAL}:
            _check_sample_body(self.kind, self.body)
        elif self.kind in {RequestKind.LICENSE_REGION, RequestKind.LOCATION_CHECK}:
            check_location_body(self.kind.value, self.body)
            if self.kind is RequestKind.LICENSE_REGION:
                _serials(self.body)
        else:
            _check_body(self.kind, self.body)

    @property
    def payload_type(self) -> str:
        """The DSSE payload type of this request."""
        return payload_type(self.kind)

    @property
    def serials(self) -> list[str]:
        """The chips the request names (from ``chips`` for a fabrication)."""
        if self.kind is RequestKind.FABRICATE:
            return [c["serial"] for c in self.body["chips"]]
        if self.kind is RequestKind.LOCATION_CHECK:
            return [self.body["check"]["serial"]]
        return list(self.body.get("serials", []))

    def to_payload(self) -> bytes:
        """Return the canonical JSON payload that parties sign."""
        return canonical_json(
            {
                "v": 1,
                "kind": self.kind.value,
                "registry": self.registry,
                "actor": self.actor,
                "counter": self.counter,
                "time_us": self.time_us,
                "body": self.body,
            }
        )

    @classmethod
    def from_payload(cls, ptype: str, payload: bytes) -> Request:
        """Parse a request payload of type ``ptype`` strictly.

        Raises:
            FormatError: The type is not a registry request type, the payload
                is not canonical JSON with exactly the request fields, or a
                field is malformed.
        """
        kind = _kind_of(ptype)
        try:
            doc = json.loads(payload.decode("utf-8"), object_pairs_hook=_unique_keys)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            msg = f"{kind.value} request payload: expected UTF-8 JSON ({e})"
            raise FormatError(msg) from e
        if not isinstance(doc, dict) or set(doc) != _FIELDS:
            got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
            msg = f"{kind.value} request payload: expected fields {sorted(_FIELDS)}, got {got}"
            raise FormatError(msg)
        if doc["v"] != 1 or doc["kind"] != kind.value:
            msg = (
                f"request payload: expected v 1 and kind {kind.value!r} (its payload type), "
                f"got v {doc['v']!r:.20} and kind {doc['kind']!r:.40}"
            )
            raise FormatError(msg)
        request = cls(
            kind, doc["registry"], doc["actor"], doc["counter"], doc["time_us"], doc["body"]
        )
        if request.to_payload() != payload:
            msg = f"{kind.value} request payload: expected canonical JSON (sorted keys, no spaces)"
            raise FormatError(msg)
        return request


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            msg = f"request payload: duplicate JSON key {key[:80]!r}"
            raise FormatError(msg)
        doc[key] = value
    return doc


def make_request(
    kind: RequestKind | str,
    *,
    registry: str,
    actor: str,
    counter: int,
    time_us: int,
    body: dict[str, Any],
) -> Request:
    """Build a request, checking its fields.

    Raises:
        FormatError: A field or the body is malformed for ``kind``.
    """
    try:
        kind = RequestKind(kind)
    except ValueError as e:
        msg = f"request kind: expected one of {[k.value for k in RequestKind]}, got {kind!r:.40}"
        raise FormatError(msg) from e
    return Request(kind, registry, actor, counter, time_us, body)


def sign_request(request: Request, signers: Sequence[Signer]) -> Envelope:
    """Sign a request with one or more parties' keys (the submitter's first)."""
    return sign_envelope(request.payload_type, request.to_payload(), signers)


def cosign(envelope: Envelope, signer: Signer) -> Envelope:
    """Add ``signer``'s signature to a signed request (the other party of a transfer).

    Raises:
        FormatError: ``signer`` has signed it already.
    """
    if any(s.keyid == signer.key_id for s in envelope.signatures):
        msg = f"cosign: key {signer.key_id} has signed this request already"
        raise FormatError(msg)
    extra = sign_envelope(envelope.payload_type, envelope.payload, [signer]).signatures
    return Envelope(envelope.payload_type, envelope.payload, envelope.signatures + extra)


def canonical_envelope(data: bytes, what: str) -> Envelope:
    """Parse envelope bytes that must be exactly the envelope's canonical JSON.

    Raises:
        FormatError: Malformed, or not in canonical form (the log keeps the
            bytes received, so they must be the one spelling parties can
            recompute).
    """
    envelope = Envelope.from_json(data)
    if envelope.to_json() != data:
        msg = (
            f"{what}: expected the canonical envelope JSON (Envelope.to_json: sorted keys, "
            "no spaces, standard base64)"
        )
        raise FormatError(msg)
    return envelope


def request_digest(payload: bytes) -> bytes:
    """Return the SHA-256 of a request payload: the key of the replay table."""
    return hashlib.sha256(payload).digest()
