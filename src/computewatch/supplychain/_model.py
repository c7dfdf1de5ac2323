"""The supply chain's nouns: actors, roles, chips, custody events and its errors (paper §6).

Everything here is a frozen value: the directory's state is a set of
`Actor` and `ChipState` records, and a custody event (`ChipEvent`) turns
one state into the next (see `computewatch.supplychain._rules`). The
records carry no behaviour beyond validating their fields.

Errors: a request that breaks a custody rule is refused with
`CustodyViolation` (a `VerificationFailed`: the request was authentic and
well-formed, but the check of the rules ran and failed); a request seen
before, or whose counter does not increase, with `ReplayError`; a request
naming an actor or chip the directory does not know with `UnknownEntity`.
Bad signatures are `IntegrityError` and malformed requests `FormatError`,
as everywhere in computewatch.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from computewatch.errors import CheckUnavailable, FormatError, VerificationFailed

__all__ = [
    "ACTOR_ID_RE",
    "SERIAL_RE",
    "Actor",
    "ChipEvent",
    "ChipState",
    "ChipStatus",
    "CustodyViolation",
    "EventKind",
    "Overloaded",
    "ReplayError",
    "Role",
    "Rule",
    "UnknownEntity",
    "check_actor_id",
    "check_serial",
]

#: Actor ids: 1-64 characters, letters, digits and ``.:_-``, starting with a letter or digit.
ACTOR_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,63}")
#: Chip serials: the same alphabet, 1-64 characters.
SERIAL_RE = ACTOR_ID_RE


class Role(enum.StrEnum):
    """What an actor may do in the chain of custody."""

    #: The directory's operator: registers actors (its key is in the server settings).
    REGISTRAR = "registrar"
    #: Fabricates chips and registers their identity keys.
    FAB = "fab"
    #: Packages chips into modules and boards.
    PACKAGER = "packager"
    #: Carries chips between holders.
    CARRIER = "carrier"
    #: Owns and operates chips (a data-center operator, the Prover of §2).
    OWNER = "owner"
    #: Inspects chips (the Verifier's inspectors, §3.1).
    VERIFIER = "verifier"


#: Roles that may hold chips.
HOLDER_ROLES = frozenset({Role.FAB, Role.PACKAGER, Role.CARRIER, Role.OWNER})


class EventKind(enum.StrEnum):
    """The custody events of a chip's history, as the directory records them."""

    FABRICATED = "fabricated"
    TRANSFERRED = "transferred"
    RECEIVED = "received"
    REGISTERED = "registered"
    RESOLD = "resold"
    DAMAGED = "damaged"
    DESTROYED = "destroyed"
    LOST = "lost"
    INSPECTED = "inspected"
    #: The registrar licensed the chip to a region (docs/location.md).
    LICENSED = "licensed"
    #: A verifier's location check of the chip was logged (flagged unless inside).
    LOCATION_CHECKED = "location-checked"


class ChipStatus(enum.StrEnum):
    """Where a chip is in its life."""

    HELD = "held"
    IN_TRANSIT = "in-transit"
    LOST = "lost"
    DESTROYED = "destroyed"


class Rule(enum.StrEnum):
    """The custody rules the registry enforces; errors name the one broken."""

    #: Only the chip's current holder may hand it on, register, damage, destroy or lose it.
    HOLDER_ONLY = "holder-only"
    #: An actor may only do what its role allows (e.g. only fabs fabricate).
    ROLE = "role"
    #: A serial, chip key or actor id is registered once; a chip is registered to one owner.
    NO_DOUBLE_REGISTRATION = "no-double-registration"
    #: Nothing happens to a destroyed chip.
    NOTHING_AFTER_DESTRUCTION = "nothing-after-destruction"
    #: Nothing happens to a lost chip (until it is found, which is an inspection).
    NOTHING_AFTER_LOSS = "nothing-after-loss"
    #: Events follow the custody order: receive only what is in transit to you,
    #: hand on only what you hold, and never earlier than the chip's last event.
    IN_ORDER = "in-order"
    #: A chip in transit must be received before anything else is done with it.
    NOT_IN_TRANSIT = "not-in-transit"
    #: Requests name a registered actor and chip.
    KNOWN = "known"
    #: A location check is of the chip's licensed region: its id, landmarks and radii.
    LICENSED_REGION = "licensed-region"


class CustodyViolation(VerificationFailed):
    """A signed, well-formed request breaks a custody rule; nothing was written.

    Attributes:
        rule: The rule broken.
    """

    kind = "custody rule broken"

    def __init__(self, rule: Rule, message: str) -> None:
        """Create the error for ``rule``; the message says what, expected and got."""
        super().__init__(f"rule {rule.value}: {message}")
        self.rule = rule


class Overloaded(CheckUnavailable):
    """The registry's queue is full, or it is shutting down; retry later."""

    kind = "registry unavailable"


class ReplayError(VerificationFailed):
    """A request was seen before, or its counter does not increase; nothing was written."""

    kind = "replay refused"


class UnknownEntity(CustodyViolation):
    """A request names an actor or chip the directory does not know."""

    kind = "unknown"

    def __init__(self, message: str) -> None:
        """Create the error (its rule is `Rule.KNOWN`)."""
        super().__init__(Rule.KNOWN, message)


def check_actor_id(value: object, what: str = "actor id") -> str:
    """Return ``value`` if it is a valid actor id, else raise `FormatError`."""
    if not isinstance(value, str) or not ACTOR_ID_RE.fullmatch(value):
        msg = f"{what}: expected 1-64 characters of [A-Za-z0-9.:_-], got {value!r:.80}"
        raise FormatError(msg)
    return value


def check_serial(value: object, what: str = "chip serial") -> str:
    """Return ``value`` if it is a valid chip serial, else raise `FormatError`."""
    if not isinstance(value, str) or not SERIAL_RE.fullmatch(value):
        msg = f"{what}: expected 1-64 characters of [A-Za-z0-9.:_-], got {value!r:.80}"
        raise FormatError(msg)
    return value


@dataclass(frozen=True, slots=True)
class Actor:
    """A registered party of the supply chain.

    Attributes:
        actor_id: Its unique id (e.g. ``fab:tw-18``).
        role: What it may do.
        key: Raw public key (32-byte Ed25519 or 65-byte P-256 point).
        name: A human-readable name.
        registered_us: When it was registered (request time, microseconds).
        last_counter: The highest request counter it has used (replay guard).
        log_index: The log index of its registration.
    """

    actor_id: str
    role: Role
    key: bytes
    name: str
    registered_us: int
    last_counter: int
    log_index: int

    def to_json(self) -> dict[str, Any]:
        """Return the public fields as JSON values (the key as hex)."""
        return {
            "actor_id": self.actor_id,
            "role": self.role.value,
            "key": self.key.hex(),
            "name": self.name,
            "registered_us": self.registered_us,
            "last_counter": self.last_counter,
            "log_index": self.log_index,
        }


@dataclass(frozen=True, slots=True)
class ChipState:
    """What the directory knows about one chip now.

    Attributes:
        serial: The burned-in serial.
        key: Raw identity public key (Ed25519 or P-256) registered by the fab.
        model: The chip model.
        capabilities: Capability flags declared at fabrication (sorted).
        fab: The fab that registered it.
        status: Held, in transit, lost or destroyed.
        holder: Who has it (for a chip in transit: the sender, who answers for it).
        pending_to: The receiver of a transfer in progress, else None.
        owner: The owner it is registered to, else None.
        ever_registered: Whether it was ever registered to an owner.
        damaged: Whether damage was reported.
        fabricated_us: Time of fabrication (microseconds).
        status_since_us: Time of the last status change.
        last_event_us: Time of the last custody event.
        last_index: Log index of the last custody event.
    """

    serial: str
    key: bytes
    model: str
    capabilities: tuple[str, ...]
    fab: str
    status: ChipStatus
    holder: str
    pending_to: str | None
    owner: str | None
    ever_registered: bool
    damaged: bool
    fabricated_us: int
    status_since_us: int
    last_event_us: int
    last_index: int

    def to_json(self) -> dict[str, Any]:
        """Return the record as JSON values (the key as hex)."""
        return {
            "serial": self.serial,
            "key": self.key.hex(),
            "model": self.model,
            "capabilities": list(self.capabilities),
            "fab": self.fab,
            "status": self.status.value,
            "holder": self.holder,
            "pending_to": self.pending_to,
            "owner": self.owner,
            "ever_registered": self.ever_registered,
            "damaged": self.damaged,
            "fabricated_us": self.fabricated_us,
            "status_since_us": self.status_since_us,
            "last_event_us": self.last_event_us,
            "last_index": self.last_index,
        }


@dataclass(frozen=True, slots=True)
class ChipEvent:
    """One entry of a chip's custody history.

    Attributes:
        serial: The chip.
        log_index: Index of the signed request in the transparency log.
        kind: What happened.
        actor: Who did it (for loss and destruction: the holder who answers for it).
        counterparty: The other party (receiver of a transfer, holder found at inspection).
        time_us: When (the request's signed time, microseconds).
        flagged: True for an inspection that found the chip elsewhere than the directory says.
        details: Kind-specific facts (JSON values).
    """

    serial: str
    log_index: int
    kind: EventKind
    actor: str
    counterparty: str | None
    time_us: int
    flagged: bool
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Return the event as JSON values."""
        return {
            "serial": self.serial,
            "log_index": self.log_index,
            "kind": self.kind.value,
            "actor": self.actor,
            "counterparty": self.counterparty,
            "time_us": self.time_us,
            "flagged": self.flagged,
            "details": self.details,
        }
