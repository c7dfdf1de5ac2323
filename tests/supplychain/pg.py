"""Run a throwaway PostgreSQL cluster on 127.0.0.1 for tests and benchmarks.

Usage::

    from tests.supplychain.pg import postgres_server, require_postgres

    require_postgres()  # skip (or, under CI=true, fail) if PostgreSQL is missing
    with postgres_server() as pg:
        url = pg.create_database("t1")  # postgresql://postgres@127.0.0.1:PORT/t1

`postgres_server` runs ``initdb`` and ``pg_ctl start`` from Debian's
``postgresql`` package (``/usr/lib/postgresql/<version>/bin``) on a free
port of 127.0.0.1, with its data folder and socket in a fresh temporary
folder, and always stops it (``pg_ctl stop -m immediate``) and removes the
folder. PostgreSQL refuses to run as root: as root, every command runs as
the ``postgres`` system user the package creates (``runuser -u postgres``),
and the folder is given to it. Authentication is ``trust`` on 127.0.0.1
only. ``fsync`` stays on, as in production, so commits are durable.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "HOST",
    "PostgresError",
    "PostgresServer",
    "pg_bindir",
    "postgres_server",
    "require_postgres",
]

HOST = "127.0.0.1"
_START_ATTEMPTS = 5
_TIMEOUT_S = 60


class PostgresError(RuntimeError):
    """PostgreSQL could not be set up or started."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1", "yes"}


def pg_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` that has initdb and pg_ctl."""
    found = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _missing() -> str | None:
    if pg_bindir() is None:
        return "PostgreSQL server binaries (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "the 'postgres' system user (created by Debian's postgresql package)"
        if shutil.which("runuser") is None:
            return "runuser (util-linux), to run PostgreSQL as 'postgres'"
    return None


def require_postgres() -> None:
    """Skip the caller if PostgreSQL is missing; under ``CI=true`` fail instead.

    Install with ``scripts/install-system-deps.sh``.
    """
    missing = _missing()
    if missing is None:
        return
    reason = f"PostgreSQL tests need {missing}; see scripts/install-system-deps.sh"
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: refusing to skip)", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], log: Path) -> None:
    with log.open("ab") as out:
        done = subprocess.run(  # noqa: S603 - fixed argv
            _as_owner(argv),
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            timeout=_TIMEOUT_S,
            check=False,
        )
    if done.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        msg = f"{Path(argv[0]).name} failed (exit {done.returncode}): {' | '.join(tail)}"
        raise PostgresError(msg)


@dataclass(frozen=True)
class PostgresServer:
    """A running throwaway cluster.

    Attributes:
        port: Its TCP port on `HOST`.
        folder: Its temporary folder (data, socket, log).
    """

    port: int
    folder: Path

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of one of its databases (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        import psycopg  # noqa: PLC0415 - only PostgreSQL users need it

        with psycopg.connect(
            f"host={HOST} port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a fresh cluster on a free port of 127.0.0.1; stop and remove it on exit.

    Raises:
        PostgresError: initdb or pg_ctl failed (the message quotes their log).
    """
    bindir = pg_bindir()
    if bindir is None:
        msg = "PostgreSQL is not installed (apt-get install postgresql)"
        raise PostgresError(msg)
    folder = Path(tempfile.mkdtemp(prefix="cw-pg-"))
    log = folder / "postgres.log"
    log.touch()
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(log, "postgres", "postgres")
    data = folder / "data"
    started = False
    try:
        _run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            log,
        )
        for _ in range(_START_ATTEMPTS):
            port = _free_port()
            opts = f"-c listen_addresses={HOST} -p {port} -k {folder} -c fsync=on"
            try:
                _run(
                    [
                        str(bindir / "pg_ctl"),
                        "-D",
                        str(data),
                        "-l",
                        str(log),
                        "-w",
                        "-t",
                        str(_TIMEOUT_S),
                        "-o",
                        opts,
                        "start",
                    ],
                    log,
                )
            except PostgresError:
                continue  # most likely the port was taken in between: try another
            started = True
            break
        if not started:
            msg = f"PostgreSQL did not start after {_START_ATTEMPTS} attempts; log {log}"
            raise PostgresError(msg)
        yield PostgresServer(port, folder)
    finally:
        if started:
            with contextlib.suppress(PostgresError, subprocess.TimeoutExpired):
                _run(
                    [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], log
                )
        shutil.rmtree(folder, ignore_errors=True)
