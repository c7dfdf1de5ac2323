"""The chip-owner directory in memory: derived from custody events, auditable from the log.

`Directory` holds actors, chips, their histories and the logged chip
entries, and applies the `Effects` of checked requests. It is the state
view the rules run against in unit tests, and what an auditor rebuilds from
the registry's transparency log with `Directory.replay`: every log entry is
re-checked by the same rules (`check_request`, `check_receipt`) in log
order, so a registry that logged an event the rules forbid, or whose
directory differs from what its log implies, is caught.

Example:
    >>> from computewatch.crypto import SigningKey
    >>> from computewatch.supplychain import Directory, Role
    >>> registrar = SigningKey.from_seed(bytes(32))
    >>> d = Directory("example/log", "registrar", registrar.verifying_key)
    >>> d.actor("registrar").role is Role.REGISTRAR
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from computewatch.chip import LOG_ENTRY_PAYLOAD_TYPE
from computewatch.crypto import Envelope
from computewatch.errors import ComputeWatchError, FormatError, IntegrityError
from computewatch.supplychain._entries import check_receipt
from computewatch.supplychain._model import (
    Actor,
    ChipEvent,
    ChipState,
    Role,
    UnknownEntity,
    check_actor_id,
)
from computewatch.supplychain._rules import (
    Effects,
    ReceiptEffects,
    ReceiptRecord,
    StateView,
    check_request,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from computewatch.crypto import VerifyingKey
    from computewatch.supplychain._location import LocationCheck
    from computewatch.supplychain._location_geo import LicensedRegion

__all__ = ["Directory", "registrar_actor"]


def registrar_actor(actor_id: str, key: VerifyingKey) -> Actor:
    """Return the registrar's actor record (it comes from settings, not from the log)."""
    return Actor(check_actor_id(actor_id, "registrar id"), Role.REGISTRAR, key.raw, "", 0, 0, -1)


class Directory:
    """The directory's state in memory; a `StateView` for the rules."""

    def __init__(
        self,
        origin: str,
        registrar_id: str | None,
        registrar_key: VerifyingKey | None,
        *,
        base: StateView | None = None,
    ) -> None:
        """Create a directory with only its registrar, or an overlay over ``base``.

        Args:
            origin: The log origin requests must name.
            registrar_id: The registrar's actor id (None for an overlay).
            registrar_key: The registrar's public key (a trust root, like the log key).
            base: A state to read through for whatever this directory does not
                hold: the overlay a batch of requests is checked in before it commits.
        """
        self.origin = origin
        self._base = base
        self._actors: dict[str, Actor] = {}
        self._actor_keys: dict[bytes, str] = {}
        if registrar_id is not None and registrar_key is not None:
            registrar = registrar_actor(registrar_id, registrar_key)
            self._actors[registrar.actor_id] = registrar
            self._actor_keys[registrar.key] = registrar.actor_id
        self._chips: dict[str, ChipState] = {}
        self._chip_keys: dict[bytes, str] = {}
        self._events: dict[str, list[ChipEvent]] = {}
        self._requests: dict[bytes, int] = {}
        self._receipts: dict[str, dict[int, ReceiptRecord]] = {}
        self._last_receipt: dict[str, ReceiptRecord] = {}
        self._regions: dict[str, LicensedRegion] = {}
        self._location_checks: dict[str, list[LocationCheck]] = {}
        self.size = 0

    # --- StateView -------------------------------------------------------------

    def actor(self, actor_id: str) -> Actor | None:
        """See `StateView.actor`."""
        found = self._actors.get(actor_id)
        return found if found is not None or self._base is None else self._base.actor(actor_id)

    def actor_id_by_key(self, key: bytes) -> str | None:
        """See `StateView.actor_id_by_key`."""
        found = self._actor_keys.get(key)
        if found is not None or self._base is None:
            return found
        return self._base.actor_id_by_key(key)

    def chip(self, serial: str) -> ChipState | None:
        """See `StateView.chip`."""
        found = self._chips.get(serial)
        return found if found is not None or self._base is None else self._base.chip(serial)

    def serial_by_key(self, key: bytes) -> str | None:
        """See `StateView.serial_by_key`."""
        found = self._chip_keys.get(key)
        if found is not None or self._base is None:
            return found
        return self._base.serial_by_key(key)

    def request_index(self, digest: bytes) -> int | None:
        """See `StateView.request_index`."""
        found = self._requests.get(digest)
        if found is not None or self._base is None:
            return found
        return self._base.request_index(digest)

    def receipt_at(self, serial: str, seq: int) -> ReceiptRecord | None:
        """See `StateView.receipt_at`."""
        found = self._receipts.get(serial, {}).get(seq)
        if found is not None or self._base is None:
            return found
        return self._base.receipt_at(serial, seq)

    def last_receipt(self, serial: str) -> ReceiptRecord | None:
        """See `StateView.last_receipt`."""
        found = self._last_receipt.get(serial)
        if found is not None or self._base is None:
            return found
        return self._base.last_receipt(serial)

    # --- reading ---------------------------------------------------------------

    @property
    def actors(self) -> list[Actor]:
        """Every actor this directory holds (not its base's), by id."""
        return [self._actors[k] for k in sorted(self._actors)]

    @property
    def chips(self) -> list[ChipState]:
        """Every chip this directory holds (not its base's), by serial."""
        return [self._chips[k] for k in sorted(self._chips)]

    def history(self, serial: str) -> list[ChipEvent]:
        """The custody history of a chip, oldest first (empty if unknown)."""
        return list(self._events.get(serial, []))

    def events(self) -> list[ChipEvent]:
        """Every custody event, in log order."""
        return sorted((e for h in self._events.values() for e in h), key=lambda e: e.log_index)

    def receipts(self, serial: str) -> list[ReceiptRecord]:
        """The chip's logged entries, by seq."""
        return sorted(self._receipts.get(serial, {}).values(), key=lambda r: r.seq)

    # --- licensed regions and location checks (docs/location.md) --------------

    def license_region(self, serial: str, region: LicensedRegion) -> None:
        """Record where chip ``serial`` is licensed to be (replacing an earlier licence).

        This records the licence in memory only; the registry logs licences
        and checks as ``license-region`` and ``location-check`` requests,
        which `apply` (and `replay`) take in like any other request.

        Raises:
            UnknownEntity: The directory does not know the chip.
        """
        if self.chip(serial) is None:
            msg = f"chip S/N {serial}: not in the directory, so it cannot be licensed a region"
            raise UnknownEntity(msg)
        self._regions[serial] = region

    def licensed_region(self, serial: str) -> LicensedRegion | None:
        """The chip's licensed region, if it has one (see `StateView.licensed_region`)."""
        found = self._regions.get(serial)
        if found is not None or self._base is None:
            return found
        return self._base.licensed_region(serial)

    def record_location(self, check: LocationCheck) -> None:
        """Keep a (logged) location check of a licensed chip for the discrepancy report.

        Raises:
            UnknownEntity: The chip has no licensed region.
            FormatError: The check is against another region than the licensed one.
        """
        region = self._regions.get(check.serial)
        if region is None:
            msg = f"chip S/N {check.serial}: no licensed region to check a location against"
            raise UnknownEntity(msg)
        if check.region_id != region.region_id:
            msg = (
                f"chip S/N {check.serial}: location check against region {check.region_id!r}, "
                f"licensed region is {region.region_id!r}"
            )
            raise FormatError(msg)
        self._location_checks.setdefault(check.serial, []).append(check)

    def location_checks(self, serial: str | None = None) -> list[LocationCheck]:
        """Recorded location checks (of one chip, or all), oldest first."""
        found = (
            self._location_checks.get(serial, [])
            if serial is not None
            else [c for cs in self._location_checks.values() for c in cs]
        )
        return sorted(found, key=lambda c: (c.time_us, c.serial))

    # --- writing ---------------------------------------------------------------

    def apply(self, effects: Effects | ReceiptEffects) -> None:
        """Apply checked effects (from `check_request` or `check_receipt` on this state)."""
        if isinstance(effects, ReceiptEffects):
            record = ReceiptRecord(effects.seq, effects.leaf, effects.index)
            self._receipts.setdefault(effects.serial, {})[effects.seq] = record
            last = self._last_receipt.get(effects.serial)
            if last is None or last.seq < record.seq:
                self._last_receipt[effects.serial] = record
            return
        for actor in effects.actors:
            self._actors[actor.actor_id] = actor
            self._actor_keys[actor.key] = actor.actor_id
        for chip in effects.chips:
            self._chips[chip.serial] = chip
            self._chip_keys[chip.key] = chip.serial
        for event in effects.events:
            self._events.setdefault(event.serial, []).append(event)
        for serial, region in effects.regions:
            self._regions[serial] = region
        for check in effects.locations:
            self._location_checks.setdefault(check.serial, []).append(check)
        self._requests[effects.digest] = effects.index

    def submit(
        self, data: bytes, *, now_us: int | None = None, max_skew_us: int = 300_000_000
    ) -> int:
        """Check a request or chip entry, apply it as the next log entry, and return its index.

        A byte-identical chip entry already logged returns its index and
        changes nothing.

        Raises:
            ComputeWatchError: As `check_request` and `check_receipt` do.
        """
        effects: Effects | ReceiptEffects | ReceiptRecord
        if _payload_type(data) == LOG_ENTRY_PAYLOAD_TYPE:
            effects = check_receipt(self, data, index=self.size)
            if isinstance(effects, ReceiptRecord):
                return effects.index
        else:
            effects = check_request(
                self,
                data,
                origin=self.origin,
                index=self.size,
                now_us=now_us,
                max_skew_us=max_skew_us,
            )
        self.apply(effects)
        self.size += 1
        return effects.index

    @classmethod
    def replay(
        cls,
        entries: Iterable[bytes],
        origin: str,
        registrar_id: str,
        registrar_key: VerifyingKey,
    ) -> Directory:
        """Rebuild the directory from a registry's log entries, re-checking every rule.

        Args:
            entries: The log's entries from index 0, in order.
            origin: The log origin.
            registrar_id: The registrar's id (a trust root).
            registrar_key: The registrar's key (a trust root).

        Raises:
            IntegrityError: An entry breaks a rule or a signature, or is a
                duplicate the registry should never have logged; the message
                names its index.
        """
        directory = cls(origin, registrar_id, registrar_key)
        for index, data in enumerate(entries):
            try:
                got = directory.submit(data)
            except (FormatError, IntegrityError) as e:
                msg = f"registry log entry {index}: an invalid entry was logged ({e.message})"
                raise IntegrityError(msg) from e
            except ComputeWatchError as e:
                msg = f"registry log entry {index}: the registry logged a refused request ({e})"
                raise IntegrityError(msg) from e
            if got != index:
                msg = f"registry log entry {index}: a duplicate of entry {got}"
                raise IntegrityError(msg)
        return directory


def _payload_type(data: bytes) -> str:
    try:
        return Envelope.from_json(data).payload_type
    except FormatError:
        return ""
