"""The HTTP service's request and response schemas (pydantic), kept apart from the domain.

Request bodies are DSSE envelopes, read as raw bytes so the log keeps
exactly what was signed; `ENVELOPE_SCHEMA` documents them in the OpenAPI
schema. Responses expose public fields only: no internal row ids, never a
private key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ENVELOPE_SCHEMA",
    "ActorOut",
    "ChipOut",
    "DiscrepancyOut",
    "EntryOut",
    "ErrorBody",
    "ErrorOut",
    "EventOut",
    "HealthOut",
    "LocationCheckOut",
    "ProofOut",
    "RegionOut",
    "RegistryInfo",
    "ReportOut",
    "WriteOut",
]

#: JSON schema of a DSSE envelope (the body of every write).
ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "DSSE envelope",
    "description": (
        "A DSSE envelope in canonical form (Envelope.to_json: sorted keys, no spaces, "
        "standard base64). Its payloadType names the request kind."
    ),
    "required": ["payload", "payloadType", "signatures"],
    "properties": {
        "payload": {"type": "string", "description": "base64 of the canonical JSON payload"},
        "payloadType": {"type": "string"},
        "signatures": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["keyid", "sig"],
                "properties": {"keyid": {"type": "string"}, "sig": {"type": "string"}},
            },
        },
    },
}


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorBody(_Out):
    """Why a request was refused."""

    type: str = Field(description="The computewatch error class, e.g. CustodyViolation.")
    kind: str = Field(description="Its short tag, e.g. 'custody rule broken'.")
    message: str = Field(description="What: expected X, got Y, at Z.")
    rule: str | None = Field(default=None, description="The custody rule broken, if any.")


class ErrorOut(_Out):
    """The body of every error response."""

    error: ErrorBody


class WriteOut(_Out):
    """A durable write."""

    index: int = Field(description="The entry's index in the transparency log.")
    receipt: str = Field(description="Offline-verifiable receipt (c2sp.org/tlog-proof text).")
    duplicate: bool = Field(default=False, description="True if it was logged before.")


class RegistryInfo(_Out):
    """The registry's trust roots and state."""

    origin: str
    log_vkey: str = Field(description="The log's note verifier key (C2SP vkey).")
    registrar_id: str
    registrar_key: str = Field(description="The registrar's raw public key, hex.")
    backend: str
    size: int


class HealthOut(_Out):
    """Liveness."""

    status: str
    size: int


class ActorOut(_Out):
    """A registered actor."""

    actor_id: str
    role: str
    key: str
    name: str
    registered_us: int
    last_counter: int
    log_index: int


class ChipOut(_Out):
    """A chip's directory record."""

    serial: str
    key: str
    model: str
    capabilities: list[str]
    fab: str
    status: str
    holder: str
    pending_to: str | None
    owner: str | None
    ever_registered: bool
    damaged: bool
    fabricated_us: int
    status_since_us: int
    last_event_us: int
    last_index: int
    receipts: int = Field(description="How many of the chip's log entries the registry holds.")


class EventOut(_Out):
    """One custody event."""

    serial: str
    log_index: int
    kind: str
    actor: str
    counterparty: str | None
    time_us: int
    flagged: bool
    details: dict[str, Any]


class DiscrepancyOut(_Out):
    """One finding of the discrepancy report."""

    kind: str
    serials: list[str]
    responsible: str | None
    since_us: int
    message: str
    log_indices: list[int]


class ReportOut(_Out):
    """The discrepancy report."""

    now_us: int
    policy: dict[str, float]
    clean: bool
    items: list[DiscrepancyOut]
    truncated: list[str]


class ProofOut(_Out):
    """An inclusion or consistency proof (base64 hashes)."""

    index: int | None = None
    old: int | None = None
    size: int
    proof: list[str]


class EntryOut(_Out):
    """A log entry."""

    index: int
    entry: str = Field(description="base64 of the entry bytes (a DSSE envelope).")


class RegionOut(_Out):
    """A chip's licensed region (docs/location.md)."""

    serial: str
    region: dict[str, Any] = Field(description="{'id': ..., 'within': [{landmark, radius_km}]}")
    log_index: int = Field(description="The log index of the license-region request.")


class LocationCheckOut(_Out):
    """A logged location check."""

    serial: str
    region: str
    time_us: int
    status: str = Field(description="inside, outside, rejected or unproven.")
    results: list[dict[str, Any]]
    log_index: int | None = Field(description="The log index of the location-check request.")
