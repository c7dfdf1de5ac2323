"""The firmware checks each snapshot's receipt itself before training resumes (issue 16)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import torch

from computewatch.chip import (
    Chip,
    ChipError,
    FirmwareImage,
    ManualClock,
    ReceiptLog,
    SnapshotStalledError,
    sign_firmware,
    verify_firmware,
)
from computewatch.crypto import Envelope, MerkleLog, NoteSigner, Receipt, json_digest
from computewatch.errors import FormatError, IntegrityError
from computewatch.testing import maker_key

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

ORIGIN = "receipts.test.computewatch/log"


class _Log:
    """A receipt server's Merkle log in memory, signing under ``signer``."""

    def __init__(self, signer: NoteSigner) -> None:
        self.log = MerkleLog.in_memory()
        self.signer = signer

    def __call__(self, envelope: Envelope) -> Receipt:
        index = self.log.append(envelope.to_json())
        return self.log.receipt(index, self.log.checkpoint(self.signer, origin=ORIGIN))


def _chip(tmp_path: Path, receipts: Callable[[Envelope], Any] | None, log: ReceiptLog) -> Chip:
    folder = tmp_path / "chip"
    if not folder.exists():
        Chip.provision(folder, "CW-RC", maker_key().verifying_key).close()
    chip = Chip.open(folder, clock=ManualClock(), receipts=receipts)
    chip.boot(
        sign_firmware(name="fw", version=1, code=b"fw", chipmaker=maker_key(), receipt_log=log)
    )
    return chip


def _register(chip: Chip, tmp_path: Path) -> None:
    chip.register("run-1", {"w": torch.zeros(4)}, json_digest({"c": 1}), tmp_path / "omega")


def test_receipt_log_round_trips_through_the_signed_image() -> None:
    signer = NoteSigner.generate(ORIGIN)
    log = ReceiptLog(ORIGIN, (signer.verifier,))
    assert ReceiptLog.from_json(log.to_json()) == log
    image = verify_firmware(
        sign_firmware(name="fw", version=1, code=b"x", chipmaker=maker_key(), receipt_log=log),
        maker_key().verifying_key,
    )
    assert image.receipt_log == log
    plain = FirmwareImage.from_json(
        FirmwareImage(image.name, 1, image.code_hash, image.features).to_json()
    )
    assert "receipt_log" not in plain.to_json()  # images without one keep their bytes
    bads: list[object] = [None, {"origin": ORIGIN}, {"origin": ORIGIN, "keys": [1]}, {"keys": []}]
    for bad in bads:
        with pytest.raises(FormatError):
            ReceiptLog.from_json(bad)


def test_firmware_holds_a_checked_receipt_for_every_snapshot(tmp_path: Path) -> None:
    signer = NoteSigner.generate(ORIGIN)
    server = _Log(signer)
    with _chip(tmp_path, server, ReceiptLog(ORIGIN, (signer.verifier,))) as chip:
        _register(chip, tmp_path)
        records = [chip.snapshot_now(step) for step in range(3)]
    assert [r.receipt.index for r in records] == [0, 1, 2]
    assert all(isinstance(r.receipt, Receipt) for r in records)
    assert all(r.path.with_suffix(".receipt").exists() for r in records)


def test_firmware_naming_a_log_refuses_to_train_without_a_receipt_server(tmp_path: Path) -> None:
    log = ReceiptLog(ORIGIN, (NoteSigner.generate(ORIGIN).verifier,))
    with _chip(tmp_path, None, log) as chip, pytest.raises(ChipError, match="receipts="):
        _register(chip, tmp_path)


def _old(server: _Log) -> Callable[[Envelope], Any]:
    seen: list[Receipt] = []

    def host(envelope: Envelope) -> Receipt:
        if not seen:
            seen.append(server(envelope))
        return seen[0]

    return host


@pytest.mark.parametrize(
    ("cheat", "match"),
    [
        ("old", "does not prove this entry"),
        ("foreign-key", "does not prove this entry"),
        ("another-entry", "does not prove this entry"),
        ("none", "expected a receipt"),
        ("text-garbage", "does not prove this entry"),
    ],
)
def test_a_wrong_receipt_halts_training(tmp_path: Path, cheat: str, match: str) -> None:
    signer = NoteSigner.generate(ORIGIN)
    server = _Log(signer)
    rogue = _Log(NoteSigner.generate(ORIGIN))  # same origin, another key
    hosts: dict[str, Callable[[Envelope], Any]] = {
        "old": _old(server),
        "foreign-key": lambda env: server(env) if server.log.size == 0 else rogue(env),
        "another-entry": lambda env: (
            server(env)
            if server.log.size == 0
            else server(Envelope(env.payload_type, env.payload + b" ", env.signatures))
        ),
        "none": lambda env: server(env) if server.log.size == 0 else None,
        "text-garbage": lambda env: server(env) if server.log.size == 0 else "not a receipt",
    }
    chip = _chip(tmp_path, hosts[cheat], ReceiptLog(ORIGIN, (signer.verifier,)))
    _register(chip, tmp_path)
    chip.snapshot_now(0)  # the first goes through honestly
    with pytest.raises(SnapshotStalledError, match=match):
        chip.snapshot_now(1)
    with pytest.raises(SnapshotStalledError, match="halted"):
        chip.on_step(2)  # and training stays halted
    with pytest.raises(SnapshotStalledError):
        chip.close()


def test_an_index_below_the_last_receipt_s_is_an_old_receipt(tmp_path: Path) -> None:
    signer = NoteSigner.generate(ORIGIN)
    server = _Log(signer)
    log = ReceiptLog(ORIGIN, (signer.verifier,))
    with _chip(tmp_path, server, log) as chip:
        _register(chip, tmp_path)
        first = chip.snapshot_now(0)
        entry = chip.log_entries()[-1]
    with pytest.raises(IntegrityError, match="not above the last receipt's"):
        log.check(first.receipt, entry, after_index=first.receipt.index)
