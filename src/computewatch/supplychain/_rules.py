"""The custody rules: from a signed request and the directory's state to its effects.

`check_request` is the one place the rules live. It is pure: it reads the
state through a `StateView` and returns the `Effects` (new and updated
actors and chips, the events of their history) without writing anything,
so the server (over SQL) and an auditor replaying the transparency log
(over memory, `Directory.replay`) apply exactly the same rules.

Order of checks, so that errors say the most precise thing: shape
(`FormatError`), registry binding and replay (`ReplayError`), the parties'
signatures (`IntegrityError`, "signed by k/t required keys"), freshness,
then the custody rules (`CustodyViolation` naming the `Rule`).

`computewatch.supplychain._entries.check_receipt` does the same for a
chip's signed log entry posted to the receipt endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from computewatch.crypto import VerifyingKey, verify_envelope
from computewatch.errors import FormatError, IntegrityError
from computewatch.supplychain._effects import (
    Effects,
    ReceiptEffects,
    ReceiptRecord,
    StateView,
)
from computewatch.supplychain._location_record import location_effects
from computewatch.supplychain._model import (
    HOLDER_ROLES,
    Actor,
    ChipEvent,
    ChipState,
    ChipStatus,
    CustodyViolation,
    EventKind,
    ReplayError,
    Role,
    Rule,
    UnknownEntity,
    check_serial,
)
from computewatch.supplychain._requests import (
    Request,
    RequestKind,
    canonical_envelope,
    request_digest,
)

if TYPE_CHECKING:
    from computewatch.crypto import KeyID

__all__ = [
    "Effects",
    "ReceiptEffects",
    "ReceiptRecord",
    "StateView",
    "check_request",
]

_EVENT_OF = {
    RequestKind.FABRICATE: EventKind.FABRICATED,
    RequestKind.TRANSFER: EventKind.TRANSFERRED,
    RequestKind.RECEIVE: EventKind.RECEIVED,
    RequestKind.REGISTER_OWNER: EventKind.REGISTERED,
    RequestKind.RESELL: EventKind.RESOLD,
    RequestKind.DAMAGE: EventKind.DAMAGED,
    RequestKind.DESTROY: EventKind.DESTROYED,
    RequestKind.LOSE: EventKind.LOST,
    RequestKind.INSPECT: EventKind.INSPECTED,
}
_ROLE_FOR = {
    RequestKind.REGISTER_ACTOR: {Role.REGISTRAR},
    RequestKind.FABRICATE: {Role.FAB},
    RequestKind.REGISTER_OWNER: {Role.OWNER},
    RequestKind.RESELL: {Role.OWNER},
    RequestKind.INSPECT: {Role.VERIFIER},
    RequestKind.SAMPLE_COMMIT: {Role.OWNER, Role.VERIFIER},
    RequestKind.SAMPLE_REVEAL: {Role.OWNER, Role.VERIFIER},
    RequestKind.LICENSE_REGION: {Role.REGISTRAR},
    RequestKind.LOCATION_CHECK: {Role.VERIFIER},
}


def _violation(rule: Rule, request: Request, serial: str, what: str) -> CustodyViolation:
    return CustodyViolation(
        rule,
        f"{request.kind.value} of chip S/N {serial} by {request.actor} "
        f"(counter {request.counter}): {what}",
    )


def _signer_ids(view: StateView, request: Request) -> tuple[list[str], dict[KeyID, VerifyingKey]]:
    """Return the parties that must sign and their keys (by key id)."""
    actor = view.actor(request.actor)
    if actor is None:
        msg = f"{request.kind.value} request: actor {request.actor!r} is not registered"
        raise UnknownEntity(msg)
    names, keys = [request.actor], [VerifyingKey.from_raw(actor.key)]
    if request.kind is RequestKind.REGISTER_ACTOR:
        names.append(f"{request.body['id']} (the new key)")
        keys.append(VerifyingKey.from_raw(bytes.fromhex(request.body["key"])))
    elif request.kind in {RequestKind.TRANSFER, RequestKind.RESELL}:
        other = view.actor(request.body["to"])
        if other is None:
            msg = f"{request.kind.value} request: receiver {request.body['to']!r} is not registered"
            raise UnknownEntity(msg)
        if other.actor_id == actor.actor_id:
            msg = f"{request.kind.value} request: sender and receiver are both {actor.actor_id!r}"
            raise FormatError(msg)
        names.append(other.actor_id)
        keys.append(VerifyingKey.from_raw(other.key))
    if len({k.raw for k in keys}) != len(keys):
        msg = f"{request.kind.value} request: the parties {names} share one key"
        raise FormatError(msg)
    return names, {k.key_id: k for k in keys}


def check_request(
    view: StateView,
    data: bytes,
    *,
    origin: str,
    index: int,
    now_us: int | None = None,
    max_skew_us: int = 300_000_000,
) -> Effects:
    """Check a signed write request against the rules; return its effects.

    Args:
        view: The directory's state.
        data: The request envelope's bytes, as received.
        origin: This registry's log origin (requests name it).
        index: The log index the request will get.
        now_us: The registry's clock (microseconds); None (an audit replay)
            skips the freshness check.
        max_skew_us: How far a request's time may be from ``now_us``.

    Raises:
        FormatError: Malformed envelope, payload or body.
        IntegrityError: A required party's signature is missing or bad.
        ReplayError: Seen before, counter not increasing, stale, or for another registry.
        UnknownEntity: An actor or chip named is not in the directory.
        CustodyViolation: A custody rule is broken (the message names it).
    """
    envelope = canonical_envelope(data, "registry request")
    request = Request.from_payload(envelope.payload_type, envelope.payload)
    where = f"{request.kind.value} request by {request.actor} (counter {request.counter})"
    if request.registry != origin:
        msg = f"{where}: expected registry {origin!r}, got {request.registry!r}"
        raise ReplayError(msg)
    names, keys = _signer_ids(view, request)
    try:
        verify_envelope(envelope, keys, threshold=len(keys))
    except IntegrityError as e:
        msg = f"{where}: needs the signatures of {' and '.join(names)}; {e.message}"
        raise IntegrityError(msg) from e
    digest = request_digest(envelope.payload)
    seen = view.request_index(digest)
    if seen is not None:
        msg = f"{where}: replayed; the same request is logged at index {seen}"
        raise ReplayError(msg)
    actor = view.actor(request.actor)
    if actor is None:  # pragma: no cover - checked by _signer_ids
        raise UnknownEntity(where)
    if request.counter <= actor.last_counter:
        msg = (
            f"{where}: replayed or out of order; expected a counter above "
            f"{actor.last_counter}, got {request.counter}"
        )
        raise ReplayError(msg)
    if now_us is not None and abs(request.time_us - now_us) > max_skew_us:
        msg = (
            f"{where}: stale or future time; expected within {max_skew_us / 1e6:g} s of the "
            f"registry's clock, got {(request.time_us - now_us) / 1e6:+.1f} s"
        )
        raise ReplayError(msg)
    allowed = _ROLE_FOR.get(request.kind)
    if allowed is not None and actor.role not in allowed:
        msg = (
            f"{where}: expected an actor of role {'/'.join(sorted(allowed))}, "
            f"got {actor.actor_id} of role {actor.role.value}"
        )
        raise CustodyViolation(Rule.ROLE, msg)
    updated = replace(actor, last_counter=request.counter)
    if request.kind is RequestKind.REGISTER_ACTOR:
        return _register_actor(view, request, updated, digest, index)
    special = _NOT_CUSTODY.get(request.kind)
    if special is not None:
        return special(view, request, digest, index, updated)
    chips, events = _custody(view, request, index)
    return Effects(request, digest, index, (updated,), tuple(chips), tuple(events))


def _logged_only(
    _view: StateView, request: Request, digest: bytes, index: int, actor: Actor
) -> Effects:
    """Logged for the audit's commit-reveal order (inspection.audit); no custody effect."""
    return Effects(request, digest, index, (actor,), (), ())


#: Requests that change no custody: audit sampling, licences and location checks.
_NOT_CUSTODY = {
    RequestKind.SAMPLE_COMMIT: _logged_only,
    RequestKind.SAMPLE_REVEAL: _logged_only,
    RequestKind.LICENSE_REGION: location_effects,
    RequestKind.LOCATION_CHECK: location_effects,
}


def _register_actor(
    view: StateView, request: Request, registrar: Actor, digest: bytes, index: int
) -> Effects:
    body = request.body
    new_id, key = body["id"], bytes.fromhex(body["key"])
    existing = view.actor(new_id)
    if existing is not None:
        msg = f"actor {new_id!r}: already registered (log index {existing.log_index})"
        raise CustodyViolation(Rule.NO_DOUBLE_REGISTRATION, msg)
    holder = view.actor_id_by_key(key)
    if holder is not None:
        msg = f"actor {new_id!r}: its key is already registered to actor {holder!r}"
        raise CustodyViolation(Rule.NO_DOUBLE_REGISTRATION, msg)
    if body["role"] == Role.REGISTRAR.value:
        msg = f"actor {new_id!r}: the registrar is set by the registry's settings, not registered"
        raise CustodyViolation(Rule.ROLE, msg)
    actor = Actor(new_id, Role(body["role"]), key, body.get("name", ""), request.time_us, 0, index)
    return Effects(request, digest, index, (registrar, actor), (), ())


def _alive(request: Request, chip: ChipState) -> None:
    """Refuse any custody change of a destroyed or lost chip, or one in transit."""
    if chip.status is ChipStatus.DESTROYED:
        what = f"the chip was destroyed at log index {chip.last_index}"
        raise _violation(Rule.NOTHING_AFTER_DESTRUCTION, request, chip.serial, what)
    if chip.status is ChipStatus.LOST:
        what = f"the chip was reported lost at log index {chip.last_index}"
        raise _violation(Rule.NOTHING_AFTER_LOSS, request, chip.serial, what)


def _held_by_actor(request: Request, chip: ChipState) -> None:
    _alive(request, chip)
    if chip.status is ChipStatus.IN_TRANSIT:
        what = (
            f"the chip is in transit from {chip.holder} to {chip.pending_to}; "
            f"expected it received first"
        )
        raise _violation(Rule.NOT_IN_TRANSIT, request, chip.serial, what)
    if chip.holder != request.actor:
        what = f"expected the holder {chip.holder}, got {request.actor}"
        raise _violation(Rule.HOLDER_ONLY, request, chip.serial, what)


@dataclass(frozen=True, slots=True)
class _Step:
    """What one custody event does to one chip."""

    chip: ChipState
    actor: str
    other: str | None = None
    flagged: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def _fabricate(
    view: StateView, request: Request, index: int
) -> tuple[list[ChipState], list[ChipEvent]]:
    t = request.time_us
    chips: list[ChipState] = []
    events: list[ChipEvent] = []
    keys: set[bytes] = set()
    for spec in request.body["chips"]:
        serial, key = spec["serial"], bytes.fromhex(spec["key"])
        old = view.chip(serial)
        if old is not None:
            what = f"already fabricated by {old.fab} (its last event at log index {old.last_index})"
            raise _violation(Rule.NO_DOUBLE_REGISTRATION, request, serial, what)
        other = view.serial_by_key(key)
        if other is not None or key in keys:
            where = f"chip S/N {other}" if other else "another chip of this request"
            what = f"its identity key is already registered to {where}"
            raise _violation(Rule.NO_DOUBLE_REGISTRATION, request, serial, what)
        keys.add(key)
        chips.append(
            ChipState(
                serial=serial,
                key=key,
                model=spec["model"],
                capabilities=tuple(spec.get("capabilities", [])),
                fab=request.actor,
                status=ChipStatus.HELD,
                holder=request.actor,
                pending_to=None,
                owner=None,
                ever_registered=False,
                damaged=False,
                fabricated_us=t,
                status_since_us=t,
                last_event_us=t,
                last_index=index,
            )
        )
        details = {"model": spec["model"], "key_id": VerifyingKey.from_raw(key).key_id}
        events.append(
            ChipEvent(
                serial,
                index,
                EventKind.FABRICATED,
                request.actor,
                None,
                t,
                flagged=False,
                details=details,
            )
        )
    return chips, events


def _hand_on(request: Request, chip: ChipState, receiver: Actor | None) -> _Step:
    """Transfer or resell: the chip goes in transit to the receiver."""
    _held_by_actor(request, chip)
    if receiver is None or receiver.role not in HOLDER_ROLES:
        role = receiver.role.value if receiver else "unknown"
        what = f"expected a receiver that may hold chips, got {request.body['to']} ({role})"
        raise _violation(Rule.ROLE, request, chip.serial, what)
    resell = request.kind is RequestKind.RESELL
    if resell and chip.owner != request.actor:
        what = f"expected the registered owner {chip.owner} to resell, got {request.actor}"
        raise _violation(Rule.HOLDER_ONLY, request, chip.serial, what)
    if not resell and chip.owner not in {None, receiver.actor_id} and receiver.role is Role.OWNER:
        what = (
            f"the chip is registered to {chip.owner}; handing it to another owner "
            f"({receiver.actor_id}) is a resale: expected a resell request"
        )
        raise _violation(Rule.ROLE, request, chip.serial, what)
    new = replace(
        chip,
        status=ChipStatus.IN_TRANSIT,
        pending_to=receiver.actor_id,
        owner=None if resell else chip.owner,
        status_since_us=request.time_us,
    )
    return _Step(new, request.actor, receiver.actor_id)


def _receive(request: Request, chip: ChipState, _receiver: Actor | None) -> _Step:
    _alive(request, chip)
    if chip.status is not ChipStatus.IN_TRANSIT or chip.pending_to != request.actor:
        now = f"in transit to {chip.pending_to}" if chip.pending_to else chip.status.value
        what = (
            f"expected the chip in transit to {request.actor}, got it {now} (holder {chip.holder})"
        )
        raise _violation(Rule.IN_ORDER, request, chip.serial, what)
    new = replace(
        chip,
        status=ChipStatus.HELD,
        holder=request.actor,
        pending_to=None,
        status_since_us=request.time_us,
    )
    return _Step(new, request.actor, chip.holder)


def _register_owner(request: Request, chip: ChipState, _receiver: Actor | None) -> _Step:
    _held_by_actor(request, chip)
    if chip.owner is not None:
        what = f"already registered to owner {chip.owner}"
        raise _violation(Rule.NO_DOUBLE_REGISTRATION, request, chip.serial, what)
    site = request.body.get("site")
    new = replace(chip, owner=request.actor, ever_registered=True)
    return _Step(new, request.actor, details={"site": site} if site else {})


def _damage(request: Request, chip: ChipState, _receiver: Actor | None) -> _Step:
    _held_by_actor(request, chip)
    return _Step(replace(chip, damaged=True), request.actor)


def _destroy(request: Request, chip: ChipState, _receiver: Actor | None) -> _Step:
    _held_by_actor(request, chip)
    new = replace(
        chip, status=ChipStatus.DESTROYED, pending_to=None, status_since_us=request.time_us
    )
    return _Step(new, request.actor)


def _lose(request: Request, chip: ChipState, _receiver: Actor | None) -> _Step:
    _alive(request, chip)
    if request.actor not in {chip.holder, chip.pending_to}:
        what = (
            f"expected the holder {chip.holder} (or the receiver in transit), got {request.actor}"
        )
        raise _violation(Rule.HOLDER_ONLY, request, chip.serial, what)
    # The holder answers for a lost chip, also when the receiver reports it.
    reporter = request.actor if request.actor != chip.holder else None
    new = replace(chip, status=ChipStatus.LOST, pending_to=None, status_since_us=request.time_us)
    return _Step(new, chip.holder, reporter, details={"was": chip.status.value})


def _inspect(request: Request, chip: ChipState, _receiver: Actor | None) -> _Step:
    """An observation: recorded whatever the chip's status, flagged if it disagrees."""
    found = request.body["found_holder"]
    mismatch = chip.status is not ChipStatus.HELD or found != chip.holder
    details = {
        "expected_holder": chip.holder,
        "status": chip.status.value,
        "seal_intact": request.body["seal_intact"],
        "mismatch": mismatch,
    }
    flagged = mismatch or not request.body["seal_intact"]
    return _Step(chip, request.actor, found, flagged, details)


_STEPS = {
    RequestKind.TRANSFER: _hand_on,
    RequestKind.RESELL: _hand_on,
    RequestKind.RECEIVE: _receive,
    RequestKind.REGISTER_OWNER: _register_owner,
    RequestKind.DAMAGE: _damage,
    RequestKind.DESTROY: _destroy,
    RequestKind.LOSE: _lose,
    RequestKind.INSPECT: _inspect,
}


def _custody(
    view: StateView, request: Request, index: int
) -> tuple[list[ChipState], list[ChipEvent]]:
    if request.kind is RequestKind.FABRICATE:
        return _fabricate(view, request, index)
    step_of = _STEPS[request.kind]
    t = request.time_us
    receiver = view.actor(request.body["to"]) if "to" in request.body else None
    chips: list[ChipState] = []
    events: list[ChipEvent] = []
    for serial in request.serials:
        chip = view.chip(check_serial(serial))
        if chip is None:
            msg = (
                f"{request.kind.value} request by {request.actor}: "
                f"chip S/N {serial} is not in the directory"
            )
            raise UnknownEntity(msg)
        if t < chip.last_event_us:
            what = (
                f"expected a time at or after the chip's last event "
                f"(log index {chip.last_index}, {chip.last_event_us} us), got {t} us"
            )
            raise _violation(Rule.IN_ORDER, request, serial, what)
        step = step_of(request, chip, receiver)
        details = {"note": request.body["note"]} if request.body.get("note") else {}
        details.update(step.details)
        chips.append(replace(step.chip, last_event_us=t, last_index=index))
        events.append(
            ChipEvent(
                serial,
                index,
                _EVENT_OF[request.kind],
                step.actor,
                step.other,
                t,
                flagged=step.flagged,
                details=details,
            )
        )
    return chips, events
