"""The registry database's licensed regions and location checks (used by `RegistryStore`).

Licences are one row per chip (``licensed_regions``; a later licence
replaces it), checks one row per log index (``location_checks``). The
discrepancy report's candidates are the checks that are a chip's latest at
the report time and not ``inside``: one indexed query, after which
`find_discrepancies` decides, exactly as over an in-memory `Directory`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, exists, insert, or_, select

from computewatch.supplychain._location import LocationCheck
from computewatch.supplychain._location_geo import LicensedRegion
from computewatch.supplychain._tables import LATER_TABLES, licensed_regions, location_checks

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy import Connection, Row

    from computewatch.supplychain._rules import Effects

__all__ = [
    "checks_of",
    "create_missing",
    "outside_candidates",
    "persist_locations",
    "region_of",
]


def create_missing(conn: Connection, tables: set[str]) -> None:
    """Create the tables added after the first release that ``tables`` lacks (a migration)."""
    for table in LATER_TABLES:
        if table.name not in tables:
            table.create(conn)


def _check(row: Row[Any]) -> LocationCheck:
    return LocationCheck.from_json(json.loads(row.body), int(row.log_index))


def persist_locations(conn: Connection, effects: Sequence[Effects]) -> None:
    """Write a batch's licences and checks through ``conn`` (no commit)."""
    regions: dict[str, dict[str, Any]] = {}
    checks: list[dict[str, Any]] = []
    for fx in effects:
        for serial, region in fx.regions:
            regions[serial] = {
                "serial": serial,
                "region_id": region.region_id,
                "region": json.dumps(region.to_json(), sort_keys=True),
                "log_index": fx.index,
                "time_us": fx.request.time_us,
            }
        checks.extend(
            {
                "log_index": c.log_index if c.log_index is not None else fx.index,
                "serial": c.serial,
                "region_id": c.region_id,
                "time_us": c.time_us,
                "status": c.status.value,
                "inside": c.inside,
                "body": json.dumps(c.to_json() | {"log_index": None}, sort_keys=True),
            }
            for c in fx.locations
        )
    if regions:
        conn.execute(delete(licensed_regions).where(licensed_regions.c.serial.in_(list(regions))))
        conn.execute(insert(licensed_regions), list(regions.values()))
    if checks:
        conn.execute(insert(location_checks), checks)


def region_of(conn: Connection, serial: str) -> tuple[LicensedRegion, int] | None:
    """The chip's licensed region and the log index that granted it, if any."""
    row = conn.execute(
        select(licensed_regions.c.region, licensed_regions.c.log_index).where(
            licensed_regions.c.serial == serial
        )
    ).first()
    if row is None:
        return None
    return LicensedRegion.from_json(json.loads(row.region)), int(row.log_index)


def checks_of(conn: Connection, serial: str, limit: int) -> list[LocationCheck]:
    """The chip's latest ``limit`` checks, oldest first (by check time, then log index)."""
    c = location_checks.c
    rows = conn.execute(
        select(location_checks)
        .where(c.serial == serial)
        .order_by(c.time_us.desc(), c.log_index.desc())
        .limit(limit)
    ).all()
    return [_check(r) for r in reversed(rows)]


def outside_candidates(
    conn: Connection, now_us: int, limit: int
) -> tuple[list[LocationCheck], bool]:
    """Checks at or before ``now_us`` that are not inside and no later check follows.

    Returns the checks (oldest first) and whether more than ``limit`` matched.
    """
    c = location_checks.c
    later = location_checks.alias("later")
    newer = exists().where(
        later.c.serial == c.serial,
        later.c.time_us <= now_us,
        or_(
            later.c.time_us > c.time_us,
            and_(later.c.time_us == c.time_us, later.c.log_index > c.log_index),
        ),
    )
    rows = conn.execute(
        select(location_checks)
        .where(c.inside.is_(False), c.time_us <= now_us, ~newer)
        .order_by(c.time_us, c.log_index)
        .limit(limit + 1)
    ).all()
    return [_check(r) for r in rows[:limit]], len(rows) > limit
