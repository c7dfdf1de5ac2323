"""What the rules read and return: the `StateView` protocol and the `Effects` of a write.

The rules (`check_request`, `check_receipt`) read the directory through a
`StateView` (an in-memory `Directory`, the registry writer's cache, or a
batch overlay of either) and return effects that the caller applies or
persists; they never write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from computewatch.supplychain._location import LocationCheck
    from computewatch.supplychain._location_geo import LicensedRegion
    from computewatch.supplychain._model import Actor, ChipEvent, ChipState
    from computewatch.supplychain._requests import Request

__all__ = ["Effects", "ReceiptEffects", "ReceiptRecord", "StateView"]


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """A chip log entry already in the log.

    Attributes:
        seq: The entry's sequence number in the chip's log.
        leaf: Its RFC 9162 leaf hash.
        index: Its index in the transparency log.
    """

    seq: int
    leaf: bytes
    index: int


class StateView(Protocol):
    """Read access to the directory's committed (or batch-pending) state."""

    def actor(self, actor_id: str) -> Actor | None:
        """Return the actor, or None if unknown."""
        ...

    def actor_id_by_key(self, key: bytes) -> str | None:
        """Return the id of the actor registered with this raw key, if any."""
        ...

    def chip(self, serial: str) -> ChipState | None:
        """Return the chip, or None if unknown."""
        ...

    def serial_by_key(self, key: bytes) -> str | None:
        """Return the serial of the chip registered with this raw key, if any."""
        ...

    def request_index(self, digest: bytes) -> int | None:
        """Return the log index of the request with this payload digest, if logged."""
        ...

    def receipt_at(self, serial: str, seq: int) -> ReceiptRecord | None:
        """Return the logged entry ``seq`` of chip ``serial``, if any."""
        ...

    def last_receipt(self, serial: str) -> ReceiptRecord | None:
        """Return the logged entry of chip ``serial`` with the highest seq, if any."""
        ...

    def licensed_region(self, serial: str) -> LicensedRegion | None:
        """Return the region chip ``serial`` is licensed to, if any."""
        ...


@dataclass(frozen=True, slots=True)
class Effects:
    """What an accepted request changes; nothing is written until the caller persists it.

    Attributes:
        request: The verified request.
        digest: SHA-256 of its payload (the replay table's key).
        index: The log index the request gets.
        actors: Actors created or updated (the submitter's counter).
        chips: Chips created or updated.
        events: History entries, one per chip named.
        regions: Licences granted, as (serial, region) (``license-region``).
        locations: Location checks logged, with this log index (``location-check``).
    """

    request: Request
    digest: bytes
    index: int
    actors: tuple[Actor, ...]
    chips: tuple[ChipState, ...]
    events: tuple[ChipEvent, ...]
    regions: tuple[tuple[str, LicensedRegion], ...] = field(default=())
    locations: tuple[LocationCheck, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class ReceiptEffects:
    """An accepted chip log entry.

    Attributes:
        serial: The chip.
        seq: The entry's position in the chip's log.
        time_us: The chip's time for the entry.
        kind: The entry kind (``snapshot``, ...).
        leaf: The RFC 9162 leaf hash of the envelope bytes.
        index: The log index it gets.
    """

    serial: str
    seq: int
    time_us: int
    kind: str
    leaf: bytes
    index: int
