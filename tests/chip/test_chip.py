"""The chip's firmware: boot policy, snapshots, receipts, capacity, attestation."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

import pytest
import torch
from safetensors.torch import load_file

from computewatch.chip import (
    ATTESTATION_PAYLOAD_TYPE,
    Chip,
    ChipError,
    LogFullError,
    ManualClock,
    SnapshotStalledError,
    sign_firmware,
)
from computewatch.crypto import (
    Digest,
    Envelope,
    SigningKey,
    canonical_json,
    json_digest,
    shard_hash,
    sign_envelope,
    verify_envelope,
)
from computewatch.errors import ComputeWatchError, IntegrityError, ParameterError

if TYPE_CHECKING:
    from pathlib import Path

CODE = json_digest({"train.py": "v1"})
COMMIT = json_digest({"manifest": 1, "data_order": [1, 2, 3]})


def _train(chip: Chip, clock: ManualClock, w: torch.Tensor, steps: int, dt: float = 60.0) -> int:
    taken = 0
    for step in range(steps):
        with torch.no_grad():
            w.add_(0.001 * (step + 1))
        clock.advance(dt)
        taken += chip.on_step(step)
    chip.flush()
    return taken


def test_full_lifecycle(
    chip: Chip, clock: ManualClock, firmware: dict[int, Envelope], tmp_path: Path
) -> None:
    chip.boot(firmware[1])
    chip.precommit("run-1", COMMIT)
    w = torch.zeros(4096)
    b = torch.ones(64)
    chip.register("run-1", {"w": w, "b": b}, CODE, tmp_path / "omega")
    taken = _train(chip, clock, w, 100)
    assert taken == len(chip.snapshots) > 20  # about 63 expected at one a minute
    entries = chip.log_entries()
    kinds = [e.kind for e in entries]
    assert kinds[:4] == ["firmware-update", "boot", "precommit", "register"]
    assert kinds.count("snapshot") == taken
    for rec in chip.snapshots:
        entry = entries[rec.seq]
        assert entry.kind == "snapshot"
        assert entry.body["h"] == str(rec.shard_hash)
        assert entry.body["step"] == rec.step
        omega = load_file(str(rec.path))["omega"]
        assert omega.shape == (4096 + 64,)
        assert shard_hash(omega) == rec.shard_hash
        assert torch.all(omega[4096:] == 1)
    # the precommitment precedes every snapshot in the log
    assert entries[2].seq < min(r.seq for r in chip.snapshots)


def test_snapshot_copy_is_the_weights_at_that_step(
    chip: Chip, firmware: dict[int, Envelope], tmp_path: Path
) -> None:
    chip.boot(firmware[1])
    w = torch.arange(10, dtype=torch.float32)
    chip.register("run", {"w": w}, CODE, tmp_path / "o")
    rec = chip.snapshot_now(step=7)
    w.add_(100)  # training goes on after the freeze
    assert torch.equal(load_file(str(rec.path))["omega"], torch.arange(10, dtype=torch.float32))
    assert rec.step == 7


def test_hooks_refuse_before_boot_and_register(
    chip: Chip, firmware: dict[int, Envelope], tmp_path: Path
) -> None:
    with pytest.raises(ChipError, match="not booted"):
        chip.precommit("r", COMMIT)
    with pytest.raises(ChipError, match="not booted"):
        chip.on_step(0)
    chip.boot(firmware[1])
    with pytest.raises(ChipError, match="before register"):
        chip.on_step(0)
    with pytest.raises(ParameterError, match="one dtype"):
        chip.register(
            "r", {"a": torch.zeros(2), "b": torch.zeros(2, dtype=torch.float64)}, CODE, tmp_path
        )
    with pytest.raises(ParameterError, match="at least one"):
        chip.register("r", {}, CODE, tmp_path)
    with pytest.raises(ParameterError, match="run id"):
        chip.precommit("", COMMIT)
    with pytest.raises(ParameterError, match="nonce"):
        chip.attest(b"short")


def test_firmware_rollback_is_refused_and_named(chip: Chip, firmware: dict[int, Envelope]) -> None:
    chip.boot(firmware[2])
    with pytest.raises(IntegrityError, match=r"rollback refused .* v1 .* floor v2"):
        chip.boot(firmware[1])
    chip.boot(firmware[3])
    with pytest.raises(IntegrityError, match="rollback"):
        chip.boot(firmware[2])
    ups = [e for e in chip.log_entries() if e.kind == "firmware-update"]
    assert [u.body["to"]["v"] for u in ups] == [2, 3]


def test_firmware_from_another_maker_or_without_logging_is_refused(
    chip: Chip, maker: SigningKey
) -> None:
    rogue = SigningKey.generate()
    with pytest.raises(IntegrityError, match="required keys"):
        chip.boot(sign_firmware(name="x", version=9, code=b"x", chipmaker=rogue))
    image = {
        "name": "nolog",
        "version": 9,
        "code_hash": str(json_digest({})),
        "features": [],
        "snapshot_rate_per_day": 0.1,
    }
    env = sign_envelope(
        "application/vnd.computewatch.firmware+json", canonical_json(image), [maker]
    )
    with pytest.raises(IntegrityError, match="weight-snapshot-logging"):
        chip.boot(env)
    assert chip.firmware is None


def test_reopen_keeps_log_and_counters(
    tmp_path: Path, maker: SigningKey, firmware: dict[int, Envelope]
) -> None:
    c = Chip.provision(tmp_path / "c", "CW-R", maker.verifying_key)
    c.boot(firmware[2])
    c.close()
    c2 = Chip.open(tmp_path / "c")
    assert [e.kind for e in c2.log_entries()] == ["firmware-update", "boot"]
    with pytest.raises(IntegrityError, match="rollback"):
        c2.boot(firmware[1])
    c2.boot(firmware[2])
    assert [e.kind for e in c2.log_entries()] == ["firmware-update", "boot", "boot"]
    c2.close()


def test_log_full_halts_training_never_drops(
    tmp_path: Path, maker: SigningKey, firmware: dict[int, Envelope], clock: ManualClock
) -> None:
    c = Chip.provision(tmp_path / "c", "CW-F", maker.verifying_key, capacity=6, clock=clock)
    c.boot(firmware[1])
    w = torch.zeros(8)
    c.register("r", {"w": w}, CODE, tmp_path / "o")  # 3 entries used
    with pytest.raises(SnapshotStalledError, match="log full"):
        _train(c, clock, w, 200)
    assert len(c.log_entries()) == 6
    with pytest.raises(SnapshotStalledError):
        c.on_step(999)  # stays halted
    with pytest.raises(LogFullError):
        c.precommit("r2", COMMIT)
    with pytest.raises(SnapshotStalledError, match="halted"):
        c.close()  # releases the chip, and still reports the stall


def test_receipts_block_until_acknowledged(
    tmp_path: Path, maker: SigningKey, firmware: dict[int, Envelope], clock: ManualClock
) -> None:
    acks: list[Envelope] = []
    c = Chip.provision(tmp_path / "c", "CW-A", maker.verifying_key, clock=clock)
    c.close()

    def ack(entry: Envelope) -> str:
        acks.append(entry)
        return f"receipt-{len(acks)}"

    c = Chip.open(tmp_path / "c", clock=clock, receipts=ack)
    c.boot(firmware[1])
    w = torch.zeros(8)
    c.register("r", {"w": w}, CODE, tmp_path / "o")
    rec = c.snapshot_now(1)
    assert rec.receipt == "receipt-1"
    assert acks[0] == c.log_entries()[rec.seq].envelope
    c.close()


def test_missing_receipt_stalls_training(
    tmp_path: Path, maker: SigningKey, firmware: dict[int, Envelope], clock: ManualClock
) -> None:
    release = threading.Event()

    def never(_: Envelope) -> str:
        release.wait(5)
        return "late"

    c = Chip.provision(tmp_path / "c", "CW-S", maker.verifying_key, clock=clock)
    c.close()
    c = Chip.open(tmp_path / "c", clock=clock, receipts=never, receipt_timeout=0.2)
    c.boot(firmware[1])
    c.register("r", {"w": torch.zeros(4)}, CODE, tmp_path / "o")
    with pytest.raises(SnapshotStalledError, match=r"no receipt within 0\.2 s"):
        c.snapshot_now(1)
    with pytest.raises(SnapshotStalledError, match="halted"):
        c.on_step(2)
    release.set()
    with pytest.raises(SnapshotStalledError, match="halted"):
        c.close()  # releases the chip, and still reports the stall

    def refuse(_: Envelope) -> str:
        msg = "receipt server: signature refused"
        raise ComputeWatchError(msg)

    c = Chip.open(tmp_path / "c", clock=clock, receipts=refuse)
    c.boot(firmware[1])
    c.register("r", {"w": torch.zeros(4)}, CODE, tmp_path / "o")
    with pytest.raises(SnapshotStalledError, match="signature refused"):
        c.snapshot_now(1)
    with pytest.raises(SnapshotStalledError, match="halted"):
        c.close()  # releases the chip, and still reports the stall


def test_attestation(chip: Chip, firmware: dict[int, Envelope]) -> None:
    chip.boot(firmware[3])
    nonce = bytes(range(16))
    env = chip.attest(nonce)
    verified = verify_envelope(
        env, {chip.public_key.key_id: chip.public_key}, payload_type=ATTESTATION_PAYLOAD_TYPE
    )
    doc = json.loads(verified.payload)
    assert doc["serial"] == "CW-0001"
    assert doc["nonce"] == nonce.hex()
    assert doc["firmware"]["v"] == 3
    assert doc["counters"]["firmware"] == 3
    assert doc["log"]["size"] == 2 == doc["counters"]["log"]
    assert Digest.parse(doc["log"]["head"]) == chip.log_entries()[-1].entry_hash
    assert doc["seal"]["intact"] is True
    chip.break_seal()
    assert json.loads(chip.attest(nonce).payload)["seal"]["intact"] is False
    assert json.loads(chip.attest(nonce).payload)["seal"]["id"] == doc["seal"]["id"]


def test_provision_refuses_existing_chip(chip: Chip, maker: SigningKey) -> None:
    with pytest.raises(ComputeWatchError, match="already holds a chip"):
        Chip.provision(chip.folder, "CW-0001", maker.verifying_key)
