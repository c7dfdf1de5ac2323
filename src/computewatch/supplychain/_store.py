"""`RegistryStore`: the directory and its Merkle log in one SQL database.

The store owns the schema (created on first open, checked on every open:
schema version, log origin and registrar must match the settings), reads
the committed directory (a `StateView` for the rules), and persists the
effects of a batch of checked requests and chip entries in the caller's
transaction, next to the log append (see `computewatch.supplychain._registry`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, insert, inspect, select, update

from computewatch.errors import FormatError
from computewatch.supplychain._directory import registrar_actor
from computewatch.supplychain._location_store import (
    checks_of,
    create_missing,
    outside_candidates,
    persist_locations,
    region_of,
)
from computewatch.supplychain._model import (
    Actor,
    ChipEvent,
    ChipState,
    ChipStatus,
    EventKind,
    Role,
)
from computewatch.supplychain._reports import (
    DiscrepancyKind,
    DiscrepancyReport,
    ReportPolicy,
    find_discrepancies,
)
from computewatch.supplychain._requests import RequestKind
from computewatch.supplychain._rules import Effects, ReceiptEffects, ReceiptRecord
from computewatch.supplychain._sqllog import SQLLogStore
from computewatch.supplychain._tables import (
    LATER_TABLES,
    SCHEMA_VERSION,
    WRITE,
    actors,
    chip_events,
    chips,
    meta,
    metadata,
    open_engine,
    receipts,
    requests,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Connection, Engine

    from computewatch.crypto import VerifyingKey
    from computewatch.supplychain._location import LocationCheck
    from computewatch.supplychain._location_geo import LicensedRegion

__all__ = ["RegistryStore"]

_US = 1_000_000


def _actor(row: Row[Any]) -> Actor:
    return Actor(
        row.actor_id,
        Role(row.role),
        bytes(row.key),
        row.name,
        int(row.registered_us),
        int(row.last_counter),
        int(row.log_index),
    )


def _actor_row(a: Actor) -> dict[str, Any]:
    return {
        "actor_id": a.actor_id,
        "role": a.role.value,
        "key": a.key,
        "name": a.name,
        "registered_us": a.registered_us,
        "last_counter": a.last_counter,
        "log_index": a.log_index,
    }


def _chip(row: Row[Any]) -> ChipState:
    return ChipState(
        row.serial,
        bytes(row.key),
        row.model,
        tuple(json.loads(row.capabilities)),
        row.fab,
        ChipStatus(row.status),
        row.holder,
        row.pending_to,
        row.owner,
        bool(row.ever_registered),
        bool(row.damaged),
        int(row.fabricated_us),
        int(row.status_since_us),
        int(row.last_event_us),
        int(row.last_index),
    )


def _chip_row(c: ChipState) -> dict[str, Any]:
    return {
        "serial": c.serial,
        "key": c.key,
        "model": c.model,
        "capabilities": json.dumps(list(c.capabilities)),
        "fab": c.fab,
        "status": c.status.value,
        "holder": c.holder,
        "pending_to": c.pending_to,
        "owner": c.owner,
        "ever_registered": c.ever_registered,
        "damaged": c.damaged,
        "fabricated_us": c.fabricated_us,
        "status_since_us": c.status_since_us,
        "last_event_us": c.last_event_us,
        "last_index": c.last_index,
    }


def _event(row: Row[Any]) -> ChipEvent:
    return ChipEvent(
        row.serial,
        int(row.log_index),
        EventKind(row.kind),
        row.actor,
        row.counterparty,
        int(row.time_us),
        bool(row.flagged),
        json.loads(row.details),
    )


def _partition(
    effects: Sequence[Effects],
) -> tuple[dict[str, Actor], dict[str, Actor], dict[str, ChipState], dict[str, ChipState]]:
    """Split a batch's actors and chips into new and changed ones (the last state wins)."""
    new_actors: dict[str, Actor] = {}
    changed_actors: dict[str, Actor] = {}
    new_chips: dict[str, ChipState] = {}
    changed_chips: dict[str, ChipState] = {}
    for fx in effects:
        for a in fx.actors:
            fresh = a.actor_id in new_actors or a.log_index == fx.index
            (new_actors if fresh else changed_actors)[a.actor_id] = a
        for c in fx.chips:
            fresh = c.serial in new_chips or fx.request.kind is RequestKind.FABRICATE
            (new_chips if fresh else changed_chips)[c.serial] = c
    for actor_id in new_actors:
        changed_actors.pop(actor_id, None)
    return new_actors, changed_actors, new_chips, changed_chips


class RegistryStore:
    """The registry's database: directory tables and the Merkle log (one writer process)."""

    def __init__(
        self, engine: Engine, *, origin: str, registrar_id: str, registrar_key: VerifyingKey
    ) -> None:
        """Open the registry in ``engine``'s database, creating the schema if it is empty.

        Raises:
            FormatError: The database holds other tables, another schema
                version, or a registry with another origin or registrar.
        """
        self.engine = engine
        self.origin = origin
        self.registrar = registrar_actor(registrar_id, registrar_key)
        self._init_schema()
        self.log_store = SQLLogStore(engine)

    @classmethod
    def open(
        cls, url: str, *, origin: str, registrar_id: str, registrar_key: VerifyingKey
    ) -> RegistryStore:
        """Open (or create) the registry database at ``url`` (see `open_engine`)."""
        engine = open_engine(url)
        try:
            return cls(
                engine, origin=origin, registrar_id=registrar_id, registrar_key=registrar_key
            )
        except BaseException:
            engine.dispose()
            raise

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def _init_schema(self) -> None:
        where = f"registry database {self.engine.url.render_as_string(hide_password=True)}"
        want = {
            "schema": SCHEMA_VERSION,
            "origin": self.origin,
            "registrar_id": self.registrar.actor_id,
            "registrar_key": self.registrar.key.hex(),
        }
        tables = set(inspect(self.engine).get_table_names())
        if not tables:
            with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
                metadata.create_all(conn)
                conn.execute(insert(meta), [{"key": k, "value": v} for k, v in want.items()])
                conn.execute(insert(actors).values(**_actor_row(self.registrar)))
            return
        if "meta" not in tables:
            msg = f"{where}: expected a computewatch registry, found tables {sorted(tables)[:5]}"
            raise FormatError(msg)
        with self.engine.connect() as conn:
            have = dict(conn.execute(select(meta.c.key, meta.c.value)).tuples().all())
        for key, value in want.items():
            if have.get(key) != value:
                msg = f"{where}: expected {key} {value!r}, the database has {have.get(key)!r}"
                raise FormatError(msg)
        if not {t.name for t in LATER_TABLES} <= tables:
            with self.engine.connect().execution_options(**WRITE) as conn, conn.begin():
                create_missing(conn, tables)

    # --- StateView over the committed state --------------------------------------

    def actor(self, actor_id: str) -> Actor | None:
        """See `StateView.actor`."""
        with self.engine.connect() as conn:
            row = conn.execute(select(actors).where(actors.c.actor_id == actor_id)).first()
        return None if row is None else _actor(row)

    def actor_id_by_key(self, key: bytes) -> str | None:
        """See `StateView.actor_id_by_key`."""
        with self.engine.connect() as conn:
            return conn.execute(select(actors.c.actor_id).where(actors.c.key == key)).scalar()

    def chip(self, serial: str) -> ChipState | None:
        """See `StateView.chip`."""
        return self.chips_many([serial]).get(serial)

    def chips_many(self, serials: Sequence[str]) -> dict[str, ChipState]:
        """Return the known chips among ``serials``, by serial (one query)."""
        if not serials:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(chips).where(chips.c.serial.in_(list(serials)))).all()
        return {row.serial: _chip(row) for row in rows}

    def serial_by_key(self, key: bytes) -> str | None:
        """See `StateView.serial_by_key`."""
        with self.engine.connect() as conn:
            return conn.execute(select(chips.c.serial).where(chips.c.key == key)).scalar()

    def request_index(self, digest: bytes) -> int | None:
        """See `StateView.request_index`."""
        with self.engine.connect() as conn:
            q = select(requests.c.log_index).where(requests.c.digest == digest)
            value = conn.execute(q).scalar()
        return None if value is None else int(value)

    def receipt_at(self, serial: str, seq: int) -> ReceiptRecord | None:
        """See `StateView.receipt_at`."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(receipts.c.seq, receipts.c.leaf, receipts.c.log_index).where(
                    receipts.c.serial == serial, receipts.c.seq == seq
                )
            ).first()
        return None if row is None else ReceiptRecord(int(row[0]), bytes(row[1]), int(row[2]))

    def last_receipt(self, serial: str) -> ReceiptRecord | None:
        """See `StateView.last_receipt`."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(receipts.c.seq, receipts.c.leaf, receipts.c.log_index)
                .where(receipts.c.serial == serial)
                .order_by(receipts.c.seq.desc())
                .limit(1)
            ).first()
        return None if row is None else ReceiptRecord(int(row[0]), bytes(row[1]), int(row[2]))

    def licensed_region(self, serial: str) -> LicensedRegion | None:
        """See `StateView.licensed_region`."""
        found = self.licence(serial)
        return None if found is None else found[0]

    def licence(self, serial: str) -> tuple[LicensedRegion, int] | None:
        """The chip's licensed region and the log index of its licence, if any."""
        with self.engine.connect() as conn:
            return region_of(conn, serial)

    def location_checks(self, serial: str, *, limit: int = 100) -> list[LocationCheck]:
        """The chip's latest ``limit`` logged location checks, oldest first."""
        with self.engine.connect() as conn:
            return checks_of(conn, serial, limit)

    # --- writing (inside the caller's transaction) -------------------------------

    def persist(
        self, conn: Connection, effects: Sequence[Effects], entries: Sequence[ReceiptEffects]
    ) -> None:
        """Write a batch's effects through ``conn`` (no commit; the log append joins it).

        Later effects of the batch win: a chip changed twice is written once,
        in its final state.
        """
        new_actors, changed_actors, new_chips, changed_chips = _partition(effects)
        events: list[ChipEvent] = []
        reqs: list[dict[str, Any]] = []
        for fx in effects:
            events.extend(fx.events)
            reqs.append(
                {
                    "digest": fx.digest,
                    "log_index": fx.index,
                    "actor": fx.request.actor,
                    "kind": fx.request.kind.value,
                }
            )
        if new_actors:
            conn.execute(insert(actors), [_actor_row(a) for a in new_actors.values()])
        for a in changed_actors.values():
            conn.execute(
                update(actors)
                .where(actors.c.actor_id == a.actor_id)
                .values(last_counter=a.last_counter)
            )
        if new_chips:
            conn.execute(insert(chips), [_chip_row(c) for c in new_chips.values()])
        for c in changed_chips.values():
            row = _chip_row(c)
            del row["serial"]
            conn.execute(update(chips).where(chips.c.serial == c.serial).values(**row))
        if events:
            conn.execute(
                insert(chip_events),
                [
                    {
                        "serial": e.serial,
                        "log_index": e.log_index,
                        "kind": e.kind.value,
                        "actor": e.actor,
                        "counterparty": e.counterparty,
                        "time_us": e.time_us,
                        "flagged": e.flagged,
                        "details": json.dumps(e.details, sort_keys=True),
                    }
                    for e in events
                ],
            )
        if reqs:
            conn.execute(insert(requests), reqs)
        persist_locations(conn, effects)
        if entries:
            conn.execute(
                insert(receipts),
                [
                    {
                        "serial": r.serial,
                        "seq": r.seq,
                        "leaf": r.leaf,
                        "log_index": r.index,
                        "time_us": r.time_us,
                    }
                    for r in entries
                ],
            )

    # --- reading the directory ---------------------------------------------------

    def history(self, serial: str) -> list[ChipEvent]:
        """The custody history of a chip, oldest first (empty if unknown)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(chip_events)
                .where(chip_events.c.serial == serial)
                .order_by(chip_events.c.log_index)
            ).all()
        return [_event(r) for r in rows]

    def receipt_count(self, serial: str) -> int:
        """How many of the chip's log entries the registry holds."""
        with self.engine.connect() as conn:
            q = select(receipts.c.seq).where(receipts.c.serial == serial)
            return len(conn.execute(q).all())

    def discrepancies(
        self, policy: ReportPolicy, now_us: int, *, limit: int = 10_000
    ) -> DiscrepancyReport:
        """The discrepancy report over the whole directory (see `find_discrepancies`).

        The database preselects the candidates (indexed queries); the report
        itself is computed by `find_discrepancies`, the same code that runs
        over an in-memory `Directory`. At most ``limit`` candidates per kind
        are read; kinds cut short are listed in ``truncated``.
        """
        grace = now_us - round(policy.never_registered_after_s * _US)
        transit = now_us - round(policy.max_transit_s * _US)
        window = now_us - round(policy.mass_loss_window_s * _US)
        alive = [ChipStatus.HELD.value, ChipStatus.IN_TRANSIT.value]
        queries = {
            DiscrepancyKind.NEVER_REGISTERED: select(chips).where(
                chips.c.ever_registered.is_(False),
                chips.c.fabricated_us < grace,
                chips.c.status.in_(alive),
            ),
            DiscrepancyKind.TRANSIT_TOO_LONG: select(chips).where(
                chips.c.status == ChipStatus.IN_TRANSIT.value, chips.c.status_since_us < transit
            ),
        }
        event_queries = {
            DiscrepancyKind.OWNER_MISMATCH: select(chip_events).where(
                chip_events.c.kind == EventKind.INSPECTED.value, chip_events.c.flagged.is_(True)
            ),
            DiscrepancyKind.MASS_LOSS: select(chip_events).where(
                chip_events.c.kind.in_([EventKind.LOST.value, EventKind.DESTROYED.value]),
                chip_events.c.time_us >= window,
            ),
        }
        found_chips: dict[str, ChipState] = {}
        found_events: list[ChipEvent] = []
        truncated = []
        with self.engine.connect() as conn:
            for kind, q in queries.items():
                rows = conn.execute(q.order_by(chips.c.serial).limit(limit + 1)).all()
                if len(rows) > limit:
                    truncated.append(kind)
                found_chips.update((r.serial, _chip(r)) for r in rows[:limit])
            for kind, q in event_queries.items():
                rows = conn.execute(q.order_by(chip_events.c.log_index).limit(limit + 1)).all()
                if len(rows) > limit:
                    truncated.append(kind)
                found_events.extend(_event(r) for r in rows[:limit])
            locations, cut = outside_candidates(conn, now_us, limit)
            if cut:
                truncated.append(DiscrepancyKind.OUTSIDE_REGION)
            missing = sorted({c.serial for c in locations} - set(found_chips))
        found_chips.update(self.chips_many(missing))  # their holders, for the findings
        report = find_discrepancies(
            found_chips.values(), found_events, policy, now_us, locations=locations
        )
        return DiscrepancyReport(report.now_us, report.policy, report.items, tuple(truncated))
