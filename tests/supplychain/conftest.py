"""Fixtures for the supply-chain tests: a throwaway PostgreSQL and the registry's keys."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest

from tests.supplychain.pg import PostgresServer, postgres_server, require_postgres
from tests.supplychain.server import RegistryKeys

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session (skipped, or failed under CI=true, if missing)."""
    require_postgres()
    with postgres_server() as server:
        yield server


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres.create_database(f"cw_test_{next(_names)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh registry database URL on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def keys(tmp_path: Path) -> RegistryKeys:
    """Fresh registry keys (log note key, registrar key pair) in ``tmp_path/keys``."""
    return RegistryKeys.create(tmp_path / "keys")
