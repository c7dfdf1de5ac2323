"""`Memo`: the registry writer's cache of the committed directory.

The writer is the only process that changes the database, so what it read
once stays true until it commits a change itself, which it then `absorb`s.
Chips, actors and each chip's last logged entry are cached (bounded: the
cache is dropped when it grows past `MAX_CACHED`); rarer lookups (keys,
request digests, older entries) go to the database.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from computewatch.supplychain._rules import Effects, ReceiptEffects, ReceiptRecord

if TYPE_CHECKING:
    from computewatch.supplychain._location_geo import LicensedRegion
    from computewatch.supplychain._model import Actor, ChipState
    from computewatch.supplychain._store import RegistryStore

__all__ = ["MAX_CACHED", "Memo"]

#: Most chips (and as many last entries) kept; then the cache starts over.
MAX_CACHED = 200_000
_NONE = ReceiptRecord(-1, b"", -1)  # "this chip has no logged entry", cached


class Memo:
    """A read-through cache of the committed state (a `StateView`)."""

    def __init__(self, store: RegistryStore) -> None:
        """Cache reads of ``store``."""
        self._store = store
        self._lock = threading.Lock()
        self._actors: dict[str, Actor] = {}
        self._chips: dict[str, ChipState] = {}
        self._last: dict[str, ReceiptRecord] = {}

    def clear(self) -> None:
        """Forget everything (after a failed commit)."""
        with self._lock:
            self._actors.clear()
            self._chips.clear()
            self._last.clear()

    def _room(self) -> None:
        if len(self._chips) > MAX_CACHED or len(self._last) > MAX_CACHED:
            self._chips.clear()
            self._last.clear()

    def actor(self, actor_id: str) -> Actor | None:
        """See `StateView.actor`."""
        found = self._actors.get(actor_id)
        if found is None:
            found = self._store.actor(actor_id)
            if found is not None:
                with self._lock:
                    self._actors[actor_id] = found
        return found

    def actor_id_by_key(self, key: bytes) -> str | None:
        """See `StateView.actor_id_by_key`."""
        return self._store.actor_id_by_key(key)

    def chip(self, serial: str) -> ChipState | None:
        """See `StateView.chip`."""
        found = self._chips.get(serial)
        if found is None:
            found = self._store.chip(serial)
            if found is not None:
                with self._lock:
                    self._room()
                    self._chips[serial] = found
        return found

    def serial_by_key(self, key: bytes) -> str | None:
        """See `StateView.serial_by_key`."""
        return self._store.serial_by_key(key)

    def request_index(self, digest: bytes) -> int | None:
        """See `StateView.request_index`."""
        return self._store.request_index(digest)

    def last_receipt(self, serial: str) -> ReceiptRecord | None:
        """See `StateView.last_receipt`."""
        found = self._last.get(serial)
        if found is None:
            found = self._store.last_receipt(serial) or _NONE
            with self._lock:
                self._room()
                self._last[serial] = found
        return None if found is _NONE else found

    def receipt_at(self, serial: str, seq: int) -> ReceiptRecord | None:
        """See `StateView.receipt_at` (no query for a seq above the last one)."""
        last = self.last_receipt(serial)
        if last is None or seq > last.seq:
            return None
        if seq == last.seq:
            return last
        return self._store.receipt_at(serial, seq)

    def licensed_region(self, serial: str) -> LicensedRegion | None:
        """See `StateView.licensed_region` (not cached: only location checks read it)."""
        return self._store.licensed_region(serial)

    def absorb(self, effects: Effects | ReceiptEffects) -> None:
        """Take in the effects of a committed write."""
        with self._lock:
            if isinstance(effects, ReceiptEffects):
                last = self._last.get(effects.serial)
                if last is None or last is _NONE or last.seq < effects.seq:
                    self._last[effects.serial] = ReceiptRecord(
                        effects.seq, effects.leaf, effects.index
                    )
                return
            for actor in effects.actors:
                self._actors[actor.actor_id] = actor
            for chip in effects.chips:
                self._chips[chip.serial] = chip
