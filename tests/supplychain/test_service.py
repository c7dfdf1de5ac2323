"""The registry service, live: a `computewatch registry serve` process on 127.0.0.1.

Every test runs against a real uvicorn server process, on SQLite and on a
real PostgreSQL, through real HTTP, with real signatures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest

from computewatch.chip import Chip, ManualClock, SnapshotStalledError, sign_firmware
from computewatch.crypto import (
    Envelope,
    MerkleLog,
    NoteSigner,
    SigningKey,
    VerifyingKey,
    verify_receipt,
)
from computewatch.errors import CheckUnavailable, FormatError, IntegrityError
from computewatch.supplychain import (
    ChipStatus,
    CustodyViolation,
    Directory,
    DiscrepancyKind,
    ReceiptClient,
    RegistryClient,
    ReplayError,
    Rule,
    UnknownEntity,
)
from tests.supplychain.server import ORIGIN, RegistryKeys, RegistryServer, registry_server
from tests.supplychain.world import World

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow


@dataclass
class Live:
    server: RegistryServer
    keys: RegistryKeys
    world: World
    client: RegistryClient


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp(f"live-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'registry.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database(
            f"cw_live_{int(time.time() * 1e3)}"
        )
    keys = RegistryKeys.create(folder / "keys")
    with registry_server(keys, url, args=("--mass-loss", "3")) as server:
        world = World(ORIGIN, keys.registrar)
        with RegistryClient(server.url, keys.log.verifier) as client:
            for actor, role in [
                ("fab-1", "fab"),
                ("ship-1", "carrier"),
                ("own-1", "owner"),
                ("own-2", "owner"),
                ("insp-1", "verifier"),
            ]:
                client.submit(world.register(actor, role))
            yield Live(server, keys, world, client)


def test_custody_flow_and_audit(live: Live) -> None:
    w, c = live.world, live.client
    before = c.checkpoint()
    ack = c.submit(w.fabricate("fab-1", ["F-1", "F-2"]))
    assert verify_receipt(ack.receipt, [live.keys.log.verifier], ORIGIN).size > ack.index
    c.submit(w.custody("transfer", "fab-1", ["F-1", "F-2"], to="ship-1"))
    c.submit(w.custody("receive", "ship-1", ["F-1", "F-2"]))
    c.submit(w.custody("transfer", "ship-1", ["F-1"], to="own-1"))
    c.submit(w.custody("receive", "own-1", ["F-1"]))
    c.submit(w.custody("register-owner", "own-1", ["F-1"], site="dc-1"))
    chip = c.chip("F-1")
    assert (chip.status, chip.holder, chip.owner) == (ChipStatus.HELD, "own-1", "own-1")
    assert [e.kind.value for e in c.history("F-1")] == [
        "fabricated",
        "transferred",
        "received",
        "transferred",
        "received",
        "registered",
    ]
    assert c.actor("own-1").last_counter > 0
    after = c.checkpoint()  # checks consistency with every checkpoint seen before
    c.verify_consistency(before, after)
    # anyone can audit: download the log, check the root, replay every rule
    entries = [c.entry(i) for i in range(after.size)]
    log = MerkleLog.in_memory()
    log.append_many(entries)
    assert log.root() == after.root_hash
    replayed = Directory.replay(entries, ORIGIN, "registrar", live.keys.registrar.verifying_key)
    assert replayed.chip("F-1") == c.chip("F-1")
    assert replayed.chip("F-2") == c.chip("F-2")


def test_refused_writes_name_their_error(live: Live) -> None:
    w, c = live.world, live.client
    c.submit(w.fabricate("fab-1", ["R-1"]))
    forged = w.request("damage", "fab-1", {"serials": ["R-1"]}, signers=[SigningKey.generate()])
    with pytest.raises(IntegrityError, match="signed by 0/1 required keys"):
        c.submit(forged)
    env = Envelope.from_json(w.custody("damage", "fab-1", ["R-1"]))
    with pytest.raises(IntegrityError, match="0/1"):
        c.submit(Envelope(env.payload_type, env.payload, ()))
    data = w.custody("damage", "fab-1", ["R-1"])
    index = c.submit(data).index
    with pytest.raises(ReplayError, match=f"logged at index {index}"):
        c.submit(data)
    with pytest.raises(CustodyViolation, match="expected the chip in transit to own-1") as e:
        c.submit(w.custody("receive", "own-1", ["R-1"]))
    assert e.value.rule is Rule.IN_ORDER
    with pytest.raises(CustodyViolation, match="expected the holder fab-1, got own-2") as e:
        c.submit(w.custody("transfer", "own-2", ["R-1"], to="own-1"))
    assert e.value.rule is Rule.HOLDER_ONLY
    with pytest.raises(UnknownEntity, match="not in the directory"):
        c.submit(w.custody("damage", "fab-1", ["R-404"]))
    with pytest.raises(FormatError, match="expected UTF-8 JSON"):
        c.submit(b"{nope")
    raw = httpx.post(f"{live.server.url}/v1/requests", content=forged)
    assert raw.status_code == 401
    assert raw.json()["error"]["type"] == "IntegrityError"
    raw = httpx.post(f"{live.server.url}/v1/requests", content=data)
    assert (raw.status_code, raw.json()["error"]["type"]) == (409, "ReplayError")
    raw = httpx.post(f"{live.server.url}/v1/requests", content=b"x" * (2 << 20))
    assert raw.status_code == 413  # the limits refuse it before the app reads it
    assert "at most" in raw.json()["error"]["message"]


def test_chip_posts_snapshots_and_gets_verified_receipts(live: Live, tmp_path: Path) -> None:
    w, c = live.world, live.client
    maker = SigningKey.from_seed(b"chipmaker-seed-for-tests-0000000")
    image = sign_firmware(
        name="cw-fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=1440.0
    )
    serial = f"E2E-{live.server.port}"
    chip = Chip.provision(tmp_path / "chip", serial, maker.verifying_key, clock=ManualClock(1.7e9))
    key_hex = chip.public_key.raw.hex()
    chip.close()
    c.submit(
        w.request(
            "fabricate", "fab-1", {"chips": [{"serial": serial, "key": key_hex, "model": "cw"}]}
        )
    )
    client = ReceiptClient(live.server.url, [live.keys.log.verifier], ORIGIN)
    import torch  # noqa: PLC0415

    with Chip.open(tmp_path / "chip", clock=ManualClock(1.7e9), receipts=client) as chip:
        chip.boot(image)
        chip.register("run-1", {"w": torch.zeros(8)}, chip.firmware.code_hash, tmp_path / "snaps")  # type: ignore[union-attr]
        records = [chip.snapshot_now(step) for step in range(3)]
        entries = chip.log_entries()
    by_seq = {e.seq: e for e in entries}
    for record in records:
        verify_receipt(
            record.receipt,
            [live.keys.log.verifier],
            ORIGIN,
            entry=by_seq[record.seq].envelope.to_json(),
        )
    assert c.chip(serial).status is ChipStatus.HELD
    # the server holds them: a second client's resubmission is a duplicate, same index
    with ReceiptClient(live.server.url, [live.keys.log.verifier], ORIGIN) as second:
        again = second(by_seq[records[0].seq].envelope)
    assert again.index == records[0].receipt.index
    client.close()


def test_chip_whose_key_is_not_the_directory_s_stalls(live: Live, tmp_path: Path) -> None:
    w, c = live.world, live.client
    maker = SigningKey.from_seed(b"chipmaker-seed-for-tests-0000000")
    image = sign_firmware(name="cw-fw", version=1, code=b"fw", chipmaker=maker)
    serial = f"IMPOSTOR-{live.server.port}"
    c.submit(
        w.request(
            "fabricate",
            "fab-1",
            {
                "chips": [
                    {
                        "serial": serial,
                        "key": SigningKey.generate().verifying_key.raw.hex(),
                        "model": "cw",
                    }
                ]
            },
        )
    )
    client = ReceiptClient(live.server.url, [live.keys.log.verifier], ORIGIN)
    import torch  # noqa: PLC0415

    chip = Chip.provision(tmp_path / "chip", serial, maker.verifying_key, clock=ManualClock(1.7e9))
    chip.close()
    chip = Chip.open(tmp_path / "chip", clock=ManualClock(1.7e9), receipts=client)
    chip.boot(image)
    chip.register("run-1", {"w": torch.zeros(4)}, chip.firmware.code_hash, tmp_path / "s")  # type: ignore[union-attr]
    with pytest.raises(SnapshotStalledError, match="directory's key"):
        chip.snapshot_now(0)
    with pytest.raises(SnapshotStalledError):
        chip.on_step(1)  # training stays halted
    with pytest.raises(SnapshotStalledError, match="halted"):
        chip.close()  # the chip is released and still reports the stall
    client.close()


def test_receipt_client_fails_closed(live: Live) -> None:
    w, c = live.world, live.client
    c.submit(w.fabricate("fab-1", ["RC-1"]))
    wrong = NoteSigner.generate(ORIGIN).verifier
    with (
        ReceiptClient(live.server.url, [wrong], ORIGIN) as rc,
        pytest.raises(IntegrityError, match="trusted key"),
    ):
        rc(Envelope.from_json(w.entry("RC-1", 0)))
    with (
        ReceiptClient(live.server.url, [live.keys.log.verifier], "other/log") as rc,
        pytest.raises(IntegrityError, match="origin"),
    ):
        rc(Envelope.from_json(w.entry("RC-1", 1)))
    start = time.monotonic()
    with (
        ReceiptClient("http://127.0.0.1:9", [wrong], ORIGIN, timeout=0.3) as rc,
        pytest.raises(CheckUnavailable, match="no receipt within"),
    ):
        rc(Envelope.from_json(w.entry("RC-1", 2)))
    assert time.monotonic() - start < 10


def test_discrepancy_report(live: Live) -> None:
    w, c = live.world, live.client
    c.submit(w.fabricate("fab-1", ["D-1", "D-2", "D-3", "D-4", "D-5"]))
    c.submit(w.custody("transfer", "fab-1", ["D-1"], to="ship-1"))
    c.submit(w.custody("transfer", "fab-1", ["D-2"], to="own-1"))
    c.submit(w.custody("receive", "own-1", ["D-2"]))
    c.submit(w.custody("register-owner", "own-1", ["D-2"]))
    c.submit(w.custody("inspect", "insp-1", ["D-2"], found_holder="own-2", seal_intact=True))
    c.submit(w.custody("lose", "fab-1", ["D-3", "D-4"]))
    c.submit(w.custody("destroy", "fab-1", ["D-5"]))
    now = c.discrepancies()
    mismatch = [d for d in now.by_kind(DiscrepancyKind.OWNER_MISMATCH) if d.serials == ("D-2",)]
    assert len(mismatch) == 1
    assert mismatch[0].responsible == "own-1"
    assert "found with own-2" in mismatch[0].message
    mass = now.by_kind(DiscrepancyKind.MASS_LOSS)
    assert any(d.responsible == "fab-1" and {"D-3", "D-4", "D-5"} <= set(d.serials) for d in mass)
    later = c.discrepancies(now_us=round((time.time() + 400 * 86400) * 1e6))
    transit = [d for d in later.by_kind(DiscrepancyKind.TRANSIT_TOO_LONG) if d.serials == ("D-1",)]
    assert transit
    assert transit[0].responsible == "fab-1"
    never = {s for d in later.by_kind(DiscrepancyKind.NEVER_REGISTERED) for s in d.serials}
    assert "D-1" in never
    assert not {"D-2", "D-3", "D-5"} & never
    assert not later.by_kind(DiscrepancyKind.MASS_LOSS)  # outside the one-year window by then


def test_openapi_and_trust_roots(live: Live) -> None:
    schema = httpx.get(f"{live.server.url}/openapi.json").json()
    for path in (
        "/v1/requests",
        "/v1/receipts",
        "/v1/chips/{serial}",
        "/v1/log/checkpoint",
        "/v1/log/proof/consistency",
        "/v1/reports/discrepancies",
    ):
        assert path in schema["paths"], path
    body = schema["paths"]["/v1/requests"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["required"] == ["payload", "payloadType", "signatures"]
    info = live.client.info()
    assert info["log_vkey"] == live.keys.log.verifier.vkey
    assert (
        VerifyingKey.from_raw(bytes.fromhex(info["registrar_key"]))
        == live.keys.registrar.verifying_key
    )
    assert "PRIVATE" not in httpx.get(f"{live.server.url}/v1/registry").text


def test_high_water_mark_is_receipt_proved_and_catches_restored_chip_state(
    live: Live, tmp_path: Path
) -> None:
    import shutil  # noqa: PLC0415

    import torch  # noqa: PLC0415

    from computewatch.chip import ReceiptLog  # noqa: PLC0415
    from computewatch.inspection import DirectoryRecord, inspect_chip  # noqa: PLC0415

    w, c = live.world, live.client
    maker = SigningKey.from_seed(b"chipmaker-seed-for-tests-0000000")
    image = sign_firmware(
        name="cw-fw",
        version=2,
        code=b"fw",
        chipmaker=maker,
        receipt_log=ReceiptLog(ORIGIN, (live.keys.log.verifier,)),
    )
    serial = f"HW-{live.server.port}"
    folder = tmp_path / "chip"
    chip = Chip.provision(folder, serial, maker.verifying_key, clock=ManualClock(1.7e9))
    key = chip.public_key
    chip.close()
    body = {"chips": [{"serial": serial, "key": key.raw.hex(), "model": "cw"}]}
    c.submit(w.request("fabricate", "fab-1", body))
    assert c.high_water(serial) is None  # nothing logged yet
    assert c.high_water("HW-NEVER-FABRICATED") is None
    with ReceiptClient(live.server.url, [live.keys.log.verifier], ORIGIN) as receipts:
        with Chip.open(folder, clock=ManualClock(1.7e9), receipts=receipts) as chip:
            chip.boot(image)
            chip.register("run-1", {"w": torch.zeros(4)}, chip.firmware.code_hash, tmp_path / "s")  # type: ignore[union-attr]
            chip.snapshot_now(1)
        shutil.copytree(folder, tmp_path / "backup")
        with Chip.open(folder, clock=ManualClock(1.7e9), receipts=receipts) as chip:
            chip.boot(image)
            chip.register("run-2", {"w": torch.zeros(4)}, chip.firmware.code_hash, tmp_path / "s")  # type: ignore[union-attr]
            last = chip.snapshot_now(1)
    mark = c.high_water(serial)
    assert mark is not None
    assert (mark.serial, mark.seq, mark.firmware) == (serial, last.seq, 2)
    assert mark.receipt is not None
    assert mark.log_index == last.receipt.index
    record = DirectoryRecord(serial, "lab-a", key)
    nonce = b"inspector-nonce!"
    honest = inspect_chip(
        folder, record, expected_owner="lab-a", nonce=nonce, reports=[], high_water=mark
    )
    assert "state-rolled-back" not in {f.kind for f in honest.findings}
    shutil.rmtree(folder)
    shutil.copytree(tmp_path / "backup", folder)  # the older copy, element files and log
    restored = inspect_chip(
        folder, record, expected_owner="lab-a", nonce=nonce, reports=[], high_water=mark
    )
    rolled = [f for f in restored.findings if f.kind == "state-rolled-back"]
    assert rolled, restored.findings
    assert f"registry high-water: log entry {mark.log_index}" in rolled[0].detail
