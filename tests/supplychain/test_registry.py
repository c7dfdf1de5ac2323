"""The registry core in process (real SQLite): group commit, durable acks, settings."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text

from computewatch.crypto import NoteSigner, SigningKey, verify_receipt
from computewatch.errors import CheckUnavailable, FormatError, ParameterError
from computewatch.supplychain import (
    Directory,
    Overloaded,
    Registry,
    RegistrySettings,
    RegistryStore,
    ReportPolicy,
    create_app,
    status_for,
    write_log_key,
)
from computewatch.supplychain._model import CustodyViolation, Rule
from tests.supplychain.server import ORIGIN, RegistryKeys
from tests.supplychain.world import World, chip_entry

if TYPE_CHECKING:
    from pathlib import Path


def _store(url: str, keys: RegistryKeys) -> RegistryStore:
    return RegistryStore.open(
        url, origin=ORIGIN, registrar_id="registrar", registrar_key=keys.registrar.verifying_key
    )


def test_concurrent_writes_are_group_committed_and_all_verify(
    keys: RegistryKeys, db_url: str
) -> None:
    world = World(ORIGIN, keys.registrar)
    serials = [f"G-{i}" for i in range(20)]
    with Registry(_store(db_url, keys), keys.log) as registry:
        registry.write(world.register("fab-1", "fab"))
        registry.write(world.fabricate("fab-1", serials))
        bodies = [world.entry(s, seq) for seq in range(10) for s in serials]
        futures = [registry.submit(b) for b in bodies]
        acks = [f.result(timeout=60) for f in futures]
        assert sorted(a.index for a in acks) == list(range(2, 2 + len(bodies)))
        sizes = {a.receipt.checkpoint.checkpoint.size for a in acks}
        assert len(sizes) < len(acks) / 4  # many entries per commit
        for body, ack in zip(bodies, acks, strict=True):
            verify_receipt(ack.receipt, [keys.log.verifier], ORIGIN, entry=body)
        entries = [registry.entry(i) for i in range(registry.size)]
        final = registry.checkpoint().checkpoint
    with Registry(_store(db_url, keys), keys.log) as reopened:  # durable, and re-checked on open
        assert reopened.checkpoint().checkpoint == final
        replay = Directory.replay(entries, ORIGIN, "registrar", keys.registrar.verifying_key)
        assert [reopened.store.chip(s) for s in serials] == [replay.chip(s) for s in serials]
        assert reopened.store.receipt_count("G-3") == 10


def test_a_failed_commit_acknowledges_nothing(keys: RegistryKeys, tmp_path: Path) -> None:
    world = World(ORIGIN, keys.registrar)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with Registry(_store(url, keys), keys.log) as registry:
        registry.write(world.register("fab-1", "fab"))
        registry.write(world.fabricate("fab-1", ["X-1"]))
        size = registry.size
        with registry.store.engine.begin() as conn:  # sabotage: the event insert will fail
            conn.execute(text("DROP TABLE chip_events"))
        with pytest.raises(CheckUnavailable, match="not stored"):
            registry.write(world.custody("damage", "fab-1", ["X-1"]))
        assert registry.size == size  # the log rolled back with the directory
        assert registry.log.root() == registry.log.store.tree_head()[1]
        assert not registry.store.chip("X-1").damaged  # type: ignore[union-attr]
        registry.write(world.entry("X-1", 0))  # the writer goes on
        assert registry.size == size + 1


def test_refusals_reach_the_caller_and_leave_no_trace(keys: RegistryKeys, tmp_path: Path) -> None:
    world = World(ORIGIN, keys.registrar)
    with Registry(_store(f"sqlite:///{tmp_path / 'r.db'}", keys), keys.log) as registry:
        registry.write(world.register("fab-1", "fab"))
        size = registry.size
        with pytest.raises(CustodyViolation) as e:
            registry.write(world.register("fab-1", "fab"))
        assert e.value.rule is Rule.NO_DOUBLE_REGISTRATION
        assert status_for(e.value) == 409
        assert registry.size == size
    with pytest.raises(Overloaded, match="not accepting"):
        registry.submit(chip_entry(SigningKey.generate(), "X", 0))


def test_overload_is_refused_not_queued_forever(keys: RegistryKeys, tmp_path: Path) -> None:
    registry = Registry(_store(f"sqlite:///{tmp_path / 'r.db'}", keys), keys.log, queue_limit=1)
    registry._thread = threading.Thread()  # queued, but no writer drains the queue
    world = World(ORIGIN, keys.registrar)
    registry.submit(world.register("a-1", "fab"))
    with pytest.raises(Overloaded, match="1 writes are queued"):
        registry.submit(world.register("a-2", "fab"))
    registry.store.close()


def test_store_refuses_another_registry_s_database(keys: RegistryKeys, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    _store(url, keys).close()
    with pytest.raises(FormatError, match="expected origin"):
        RegistryStore.open(
            url, origin="other/log", registrar_id="registrar",
            registrar_key=keys.registrar.verifying_key,
        )  # fmt: skip
    with pytest.raises(FormatError, match="expected registrar_key"):
        RegistryStore.open(
            url, origin=ORIGIN, registrar_id="registrar",
            registrar_key=SigningKey.generate().verifying_key,
        )  # fmt: skip
    with pytest.raises(FormatError, match="expected the name"):
        Registry(_store(url, keys), NoteSigner.generate("other/log"))


def test_settings_refuse_default_and_unsafe_secrets(keys: RegistryKeys, tmp_path: Path) -> None:
    def settings(key: Path) -> RegistrySettings:
        return RegistrySettings(
            db_url=f"sqlite:///{tmp_path / 'r.db'}",
            log_key_file=key,
            registrar_key_file=keys.registrar_pub,
        )

    assert settings(keys.log_key_file).load_signer().name == ORIGIN
    with pytest.raises(FormatError, match="cannot read"):
        settings(tmp_path / "missing.skey").load_signer()
    loose = tmp_path / "loose.skey"
    loose.write_text(keys.log.skey + "\n")
    loose.chmod(0o644)
    with pytest.raises(FormatError, match="chmod 600"):
        settings(loose).load_signer()
    placeholder = tmp_path / "zero.skey"
    fd = os.open(placeholder, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, NoteSigner.from_seed(ORIGIN, bytes(32)).skey.encode())
    os.close(fd)
    with pytest.raises(FormatError, match="placeholder"):
        settings(placeholder).load_signer()
    with pytest.raises(FormatError, match="no default"):
        RegistrySettings(
            db_url="sqlite:///x.db",
            log_key_file=None,  # type: ignore[arg-type]
            registrar_key_file=keys.registrar_pub,
        )
    with pytest.raises(ParameterError, match="max_batch"):
        RegistrySettings(
            db_url="sqlite:///x.db", log_key_file=loose, registrar_key_file=loose, max_batch=0
        )
    with pytest.raises(FormatError, match="cannot create"):
        write_log_key(keys.log_key_file, ORIGIN)  # never overwrites a key
    with pytest.raises(ParameterError, match="mass_loss_count"):
        ReportPolicy(mass_loss_count=0)
    store = settings(keys.log_key_file).open_store(ORIGIN)
    try:
        with pytest.raises(FormatError, match="placeholder"):
            create_app(settings(placeholder), store)
    finally:
        store.close()
