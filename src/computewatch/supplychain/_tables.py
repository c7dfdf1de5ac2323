"""The registry's database: SQLAlchemy Core tables and engines for SQLite and PostgreSQL.

One schema serves both backends; the URL picks one:

* ``sqlite:///path/registry.db`` (the embedded default): WAL journal,
  ``synchronous=FULL`` (a commit is on disk before it returns), foreign
  keys on; transactions begin explicitly, writers with ``BEGIN IMMEDIATE``.
* ``postgresql://user@host:port/db`` (through psycopg 3): the server's
  defaults (``fsync`` and ``synchronous_commit`` on) make a commit durable.

The Merkle log's tables (``log_leaves``, ``log_nodes``, ``log_head``) live
in the same database as the directory's, so a custody event and its log
entry commit in one transaction. Triggers make the log tables append-only
on both backends.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Column,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from computewatch.errors import FormatError

__all__ = ["LATER_TABLES", "SCHEMA_VERSION", "WRITE", "metadata", "open_engine"]

#: The schema this code reads and writes (kept in the ``meta`` table).
SCHEMA_VERSION = "computewatch-registry/1"
#: Execution option that makes a SQLite transaction start with BEGIN IMMEDIATE.
WRITE = {"cw_write": True}

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
log_leaves = Table(
    "log_leaves",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("entry", LargeBinary, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)
log_nodes = Table(
    "log_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)
log_head = Table(
    "log_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary(32), nullable=False),
)
actors = Table(
    "actors",
    metadata,
    Column("actor_id", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("key", LargeBinary, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("registered_us", BigInteger, nullable=False),
    Column("last_counter", BigInteger, nullable=False),
    Column("log_index", BigInteger, nullable=False),
)
chips = Table(
    "chips",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("key", LargeBinary, nullable=False, unique=True),
    Column("model", String(64), nullable=False),
    Column("capabilities", Text, nullable=False),
    Column("fab", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("holder", String(64), nullable=False),
    Column("pending_to", String(64)),
    Column("owner", String(64)),
    Column("ever_registered", Boolean, nullable=False),
    Column("damaged", Boolean, nullable=False),
    Column("fabricated_us", BigInteger, nullable=False),
    Column("status_since_us", BigInteger, nullable=False),
    Column("last_event_us", BigInteger, nullable=False),
    Column("last_index", BigInteger, nullable=False),
    Index("chips_unregistered", "ever_registered", "fabricated_us"),
    Index("chips_status", "status", "status_since_us"),
    Index("chips_holder", "holder"),
)
chip_events = Table(
    "chip_events",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("log_index", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("counterparty", String(64)),
    Column("time_us", BigInteger, nullable=False),
    Column("flagged", Boolean, nullable=False),
    Column("details", Text, nullable=False),
    Index("chip_events_kind_time", "kind", "time_us"),
)
requests = Table(
    "requests",
    metadata,
    Column("digest", LargeBinary(32), primary_key=True),
    Column("log_index", BigInteger, nullable=False, unique=True),
    Column("actor", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
)
receipts = Table(
    "receipts",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf", LargeBinary(32), nullable=False),
    Column("log_index", BigInteger, nullable=False, unique=True),
    Column("time_us", BigInteger, nullable=False),
)
#: A chip's current licence (``license-region`` requests; the last one wins).
licensed_regions = Table(
    "licensed_regions",
    metadata,
    Column("serial", String(64), primary_key=True),
    Column("region_id", String(64), nullable=False),
    Column("region", Text, nullable=False),
    Column("log_index", BigInteger, nullable=False),
    Column("time_us", BigInteger, nullable=False),
)
#: Logged location checks (``location-check`` requests), one per log index.
location_checks = Table(
    "location_checks",
    metadata,
    Column("log_index", BigInteger, primary_key=True, autoincrement=False),
    Column("serial", String(64), nullable=False),
    Column("region_id", String(64), nullable=False),
    Column("time_us", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("inside", Boolean, nullable=False),
    Column("body", Text, nullable=False),
    Index("location_checks_serial_time", "serial", "time_us", "log_index"),
    Index("location_checks_inside_time", "inside", "time_us"),
)
#: Tables added after schema 1 was first released: created when missing on open.
LATER_TABLES = (licensed_regions, location_checks)

_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER {t}_append_only_{op[0].lower()} BEFORE {op} ON {t} "
    f"BEGIN SELECT RAISE(ABORT, '{t} is append-only'); END"
    for t in ("log_leaves", "log_nodes")
    for op in ("UPDATE", "DELETE")
]
_PG_TRIGGERS = [
    (
        "CREATE OR REPLACE FUNCTION cw_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION '%% is append-only', TG_TABLE_NAME; END $$"
    ),
    *(
        f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
        "FOR EACH ROW EXECUTE FUNCTION cw_append_only()"
        for t in ("log_leaves", "log_nodes")
    ),
]
for _sql in _SQLITE_TRIGGERS:
    event.listen(metadata, "after_create", DDL(_sql).execute_if(dialect="sqlite"))  # type: ignore[no-untyped-call]
for _sql in _PG_TRIGGERS:
    event.listen(metadata, "after_create", DDL(_sql).execute_if(dialect="postgresql"))  # type: ignore[no-untyped-call]


def _sqlite_events(engine: Engine) -> None:
    """Durable SQLite: WAL, synchronous=FULL, explicit BEGIN (pysqlite's own is off)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy, not pysqlite, begins transactions
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get("cw_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def open_engine(url: str) -> Engine:
    """Create an engine for a registry database URL (SQLite or PostgreSQL).

    Raises:
        FormatError: The URL is malformed or names another database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        msg = f"registry database URL: expected sqlite:///PATH or postgresql://..., got {url!r:.80}"
        raise FormatError(msg) from e
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in {None, "", ":memory:"}:
            msg = "registry database URL: expected a SQLite file (sqlite:///PATH), got in-memory"
            raise FormatError(msg)
        engine = create_engine(parsed, pool_size=8, max_overflow=8)
        _sqlite_events(engine)
        return engine
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, whatever was asked
        return create_engine(parsed, pool_size=8, max_overflow=8)
    msg = f"registry database URL: expected sqlite or postgresql, got {backend!r}"
    raise FormatError(msg)
