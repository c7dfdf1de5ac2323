"""The FastAPI app in process (Starlette's TestClient, real SQLite, real signatures).

The live-server tests (test_service.py) run the same app in its own
process; these run it in this one, so each endpoint's error paths are
exercised quickly and measured by coverage.
"""

from __future__ import annotations

import base64
import warnings
from typing import TYPE_CHECKING

import pytest

from computewatch.crypto import Receipt, SigningKey, verify_consistency, verify_receipt
from computewatch.supplychain import RegistrySettings, ReportPolicy, create_app
from tests.supplychain.server import ORIGIN, RegistryKeys
from tests.supplychain.world import World, chip_entry

with warnings.catch_warnings():
    # Starlette's TestClient would rather use httpx2, a dependency we do not take for tests alone.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

T0 = 1_700_000_000.0


@pytest.fixture
def app(keys: RegistryKeys, tmp_path: Path) -> Iterator[tuple[TestClient, World]]:
    settings = RegistrySettings(
        db_url=f"sqlite:///{tmp_path / 'r.db'}",
        log_key_file=keys.log_key_file,
        registrar_key_file=keys.registrar_pub,
        max_body_bytes=64 * 1024,
        policy=ReportPolicy(mass_loss_count=2),
    )
    store = settings.open_store(ORIGIN)
    world = World(ORIGIN, keys.registrar, clock=lambda: T0)
    with TestClient(create_app(settings, store, clock=lambda: T0)) as client:
        for actor, role in [("fab-1", "fab"), ("own-1", "owner"), ("insp-1", "verifier")]:
            assert (
                client.post("/v1/requests", content=world.register(actor, role)).status_code == 200
            )
        yield client, world


def _error(response: object) -> tuple[int, str]:
    status: int = response.status_code  # type: ignore[attr-defined]
    return status, response.json()["error"]["type"]  # type: ignore[attr-defined]


def test_writes_and_reads(app: tuple[TestClient, World], keys: RegistryKeys) -> None:
    client, world = app
    r = client.post("/v1/requests", content=world.fabricate("fab-1", ["A-1", "A-2"]))
    assert r.status_code == 200
    receipt = Receipt.from_text(r.json()["receipt"])
    verify_receipt(receipt, [keys.log.verifier], ORIGIN)
    entry = world.entry("A-1", 0)
    r = client.post("/v1/receipts", content=entry)
    assert (r.status_code, r.headers["x-duplicate"]) == (200, "false")
    index = int(r.headers["x-log-index"])
    verify_receipt(Receipt.from_text(r.text), [keys.log.verifier], ORIGIN, entry=entry)
    assert client.post("/v1/receipts", content=entry).headers["x-duplicate"] == "true"
    chip = client.get("/v1/chips/A-1").json()
    assert (chip["holder"], chip["receipts"]) == ("fab-1", 1)
    assert [e["kind"] for e in client.get("/v1/chips/A-1/history").json()] == ["fabricated"]
    assert client.get("/v1/actors/own-1").json()["role"] == "owner"
    assert client.get("/healthz").json() == {"status": "ok", "size": index + 1}
    assert client.get("/v1/registry").json()["backend"] == "sqlite"
    note = client.get("/v1/log/checkpoint").text
    assert note.startswith(f"{ORIGIN}\n{index + 1}\n")
    got = client.get(f"/v1/log/entries/{index}").json()
    assert base64.b64decode(got["entry"]) == entry
    page = client.get("/v1/log/entries", params={"start": 0, "end": index + 1}).json()
    assert [e["index"] for e in page] == list(range(index + 1))
    verify_receipt(
        Receipt.from_text(client.get("/v1/log/receipt/0").text), [keys.log.verifier], ORIGIN
    )
    proof = client.get("/v1/log/proof/inclusion", params={"index": 1, "size": index + 1}).json()
    assert proof["index"] == 1
    cons = client.get("/v1/log/proof/consistency", params={"old": 2, "size": index + 1}).json()
    roots = [Receipt.from_text(client.get(f"/v1/log/receipt/{i}").text) for i in (1, index)]
    assert roots[1].checkpoint.checkpoint.size == index + 1
    verify_consistency(
        old_size=2,
        new_size=index + 1,
        proof=[base64.b64decode(h) for h in cons["proof"]],
        old_root=_root_at(client, 2),
        new_root=roots[1].checkpoint.checkpoint.root_hash,
    )


def _root_at(client: TestClient, size: int) -> bytes:
    from computewatch.crypto import MerkleLog  # noqa: PLC0415

    log = MerkleLog.in_memory()
    page = client.get("/v1/log/entries", params={"start": 0, "end": size}).json()
    log.append_many([base64.b64decode(e["entry"]) for e in page])
    return log.root()


def test_errors_map_to_statuses(app: tuple[TestClient, World]) -> None:
    client, world = app
    client.post("/v1/requests", content=world.fabricate("fab-1", ["E-1"]))
    forged = world.request("damage", "fab-1", {"serials": ["E-1"]}, signers=[SigningKey.generate()])
    assert _error(client.post("/v1/requests", content=forged)) == (401, "IntegrityError")
    ok = world.custody("damage", "fab-1", ["E-1"])
    assert client.post("/v1/requests", content=ok).status_code == 200
    assert _error(client.post("/v1/requests", content=ok)) == (409, "ReplayError")
    r = client.post("/v1/requests", content=world.custody("receive", "own-1", ["E-1"]))
    assert _error(r) == (409, "CustodyViolation")
    assert r.json()["error"]["rule"] == "in-order"
    assert _error(client.get("/v1/chips/NOPE")) == (404, "UnknownEntity")
    assert _error(client.get("/v1/chips/NOPE/history")) == (404, "UnknownEntity")
    assert _error(client.get("/v1/actors/nobody")) == (404, "UnknownEntity")
    assert _error(client.get("/v1/chips/bad%20serial")) == (400, "FormatError")
    assert _error(client.post("/v1/requests", content=b"[]")) == (400, "FormatError")
    too_big = client.post("/v1/requests", content=b"x" * (65 * 1024))
    assert _error(too_big) == (413, "FormatError")  # refused by the limits, before reading
    assert _error(client.get("/v1/log/entries", params={"start": 5, "end": 2})) == (
        400,
        "FormatError",
    )
    assert _error(client.get("/v1/log/proof/inclusion", params={"index": -1, "size": 1})) == (
        400,
        "FormatError",
    )
    assert _error(client.get("/v1/log/entries/999")) == (400, "FormatError")
    entry = chip_entry(SigningKey.generate(), "E-1", 0)
    assert _error(client.post("/v1/receipts", content=entry)) == (401, "IntegrityError")
    assert _error(client.post("/v1/receipts", content=ok)) == (400, "FormatError")
    assert _error(client.post("/v1/requests", content=world.entry("E-1", 0))) == (
        400,
        "FormatError",
    )


def test_report_endpoint(app: tuple[TestClient, World]) -> None:
    client, world = app
    client.post("/v1/requests", content=world.fabricate("fab-1", ["P-1", "P-2", "P-3", "P-4"]))
    client.post("/v1/requests", content=world.custody("transfer", "fab-1", ["P-1"], to="own-1"))
    client.post("/v1/requests", content=world.custody("lose", "fab-1", ["P-2"]))
    client.post("/v1/requests", content=world.custody("destroy", "fab-1", ["P-3"]))
    r = client.post(
        "/v1/requests",
        content=world.custody(
            "inspect", "insp-1", ["P-4"], found_holder="fab-1", seal_intact=False
        ),
    )
    assert r.status_code == 200
    now = client.get("/v1/reports/discrepancies").json()
    kinds = [i["kind"] for i in now["items"]]
    assert kinds == ["owner-mismatch-at-inspection", "mass-loss-or-destruction"]
    assert "seal broken" in now["items"][0]["message"]
    later = round((T0 + 200 * 86400) * 1e6)
    report = client.get("/v1/reports/discrepancies", params={"now_us": later, "limit": 1}).json()
    assert "in-transit-too-long" in [i["kind"] for i in report["items"]]
    assert "fabricated-never-registered" in report["truncated"]


def test_the_log_is_served_as_tiles(app: tuple[TestClient, World]) -> None:
    client, world = app
    assert client.post("/v1/requests", content=world.fabricate("fab-1", ["T-1"])).status_code == 200
    note = client.get("/checkpoint")
    assert note.status_code == 200
    assert note.headers["cache-control"] == "public, max-age=5"
    size = int(note.text.splitlines()[1])
    assert size == 4  # three actors and one fabrication
    level0 = client.get(f"/tile/0/000.p/{size}")
    assert level0.status_code == 200
    assert level0.headers["cache-control"].endswith("immutable")
    assert len(level0.content) == 32 * size  # one hash a leaf
    bundle = client.get(f"/tile/entries/000.p/{size}")
    assert bundle.status_code == 200
    assert bundle.content
    assert client.get("/tile/0/not-a-tile").status_code == 400
    assert client.get("/tile/0/001").status_code == 404  # beyond the tree


def test_high_water_is_a_receipt_for_the_chip_s_newest_entry(
    app: tuple[TestClient, World], keys: RegistryKeys
) -> None:
    from computewatch.supplychain import HighWater  # noqa: PLC0415

    client, world = app
    assert client.post("/v1/requests", content=world.fabricate("fab-1", ["H-1"])).status_code == 200
    assert _error(client.get("/v1/chips/H-1/high-water")) == (404, "UnknownEntity")
    for seq in (0, 1, 4):  # gaps are allowed; the mark is the highest seq logged
        assert client.post("/v1/receipts", content=world.entry("H-1", seq)).status_code == 200
    r = client.get("/v1/chips/H-1/high-water")
    assert r.status_code == 200
    receipt = Receipt.from_text(r.text)
    verify_receipt(receipt, [keys.log.verifier], ORIGIN, entry=world.entry("H-1", 4))
    assert receipt.entry is not None
    mark = HighWater.from_entry(receipt.entry, log_index=receipt.index)
    assert (mark.serial, mark.seq, mark.as_attestation()["log"]["size"]) == ("H-1", 4, 5)
    assert _error(client.get("/v1/chips/bad serial!/high-water"))[0] == 400


def test_a_high_water_mark_is_only_made_from_a_chip_log_entry(
    app: tuple[TestClient, World],
) -> None:
    from computewatch.errors import FormatError  # noqa: PLC0415
    from computewatch.supplychain import HighWater  # noqa: PLC0415

    _, world = app
    with pytest.raises(FormatError, match="not a chip log entry"):
        HighWater.from_entry(world.fabricate("fab-1", ["H-2"]), log_index=3)
    with pytest.raises(FormatError):
        HighWater.from_entry(b"{not json", log_index=3)
    mark = HighWater.from_entry(world.entry("H-2", 7), log_index=9)  # no fw, no chip_time
    assert (mark.firmware, mark.resets) == (None, None)
    assert mark.as_attestation() == {
        "serial": "H-2",
        "log": {"size": 8},
        "counters": {"log": 8},
    }
    assert mark.to_json()["log_index"] == 9


def test_audit_queries_answer_with_proofs_and_refuse_bad_sizes(
    app: tuple[TestClient, World],
) -> None:
    from computewatch.crypto import verify_inclusion  # noqa: PLC0415

    client, world = app
    serials = ["H-1", "H-2"]
    for request in (
        world.fabricate("fab-1", serials),
        world.custody("transfer", "fab-1", serials, to="own-1"),
        world.custody("receive", "own-1", serials),
        world.custody("register-owner", "own-1", serials),
    ):
        assert client.post("/v1/requests", content=request).status_code == 200
    size = client.get("/healthz").json()["size"]
    root = _root_at(client, size)
    held = client.get("/v1/audit/holdings/own-1", params={"size": size}).json()
    assert (held["actor"], held["size"]) == ("own-1", size)
    assert sorted(c["serial"] for c in held["chips"]) == ["H-1", "H-2"]
    for chip in held["chips"]:
        proof = [base64.b64decode(h) for h in chip["proof"]]
        entry = base64.b64decode(chip["entry"])
        verify_inclusion(entry, index=chip["last_index"], size=size, proof=proof, root=root)
    # before it registered as their owner, own-1 held nothing
    before = client.get("/v1/audit/holdings/own-1", params={"size": size - 1}).json()
    assert before["chips"] == []
    none = client.get("/v1/audit/commitments", params={"period": "2026-12", "size": size}).json()
    assert none == {"period": "2026-12", "size": size, "commitments": []}
    too_big = client.get("/v1/audit/holdings/own-1", params={"size": size + 1})
    assert _error(too_big) == (400, "FormatError")
    assert "the log's size" in too_big.json()["error"]["message"]
    assert client.get("/v1/audit/holdings/own-1", params={"size": 0}).status_code == 400
    assert _error(client.get("/v1/audit/holdings/bad%20id", params={"size": 1})) == (
        400,
        "FormatError",
    )
    big = client.get("/v1/audit/commitments", params={"period": "p", "size": size + 5})
    assert _error(big) == (400, "FormatError")
    assert client.get("/v1/audit/commitments", params={"period": "", "size": 1}).status_code == 400
