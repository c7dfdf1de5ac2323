"""Each snapshot's receipt is checked against that very snapshot entry and the trusted log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from computewatch.chip import Chip, ManualClock, sign_firmware
from computewatch.crypto import (
    Cosigner,
    Envelope,
    MerkleLog,
    NoteSigner,
    Policy,
    Receipt,
    SigningKey,
    json_digest,
)
from computewatch.inspection import check_receipts

if TYPE_CHECKING:
    from pathlib import Path

    from computewatch.chip import LogEntry

ORIGIN = "registry.example/log"


class _Registry:
    """The Verifier-trusted log, in memory: appends each entry and returns its receipt."""

    def __init__(self, signer: NoteSigner) -> None:
        self.log = MerkleLog.in_memory()
        self.signer = signer

    def __call__(self, envelope: Envelope) -> Receipt:
        index = self.log.append(envelope.to_json())
        return self.log.receipt(index, self.log.checkpoint(self.signer, origin=ORIGIN))


class _Witnessed(_Registry):
    """The same log, each receipt's checkpoint cosigned by ``cosigners``."""

    def __init__(self, signer: NoteSigner, cosigners: list[Cosigner]) -> None:
        super().__init__(signer)
        self.cosigners = cosigners

    def __call__(self, envelope: Envelope) -> Receipt:
        index = self.log.append(envelope.to_json())
        signed = self.log.checkpoint(self.signer, origin=ORIGIN)
        lines = [c.cosign(signed.checkpoint, timestamp=1_800_000_000) for c in self.cosigners]
        return self.log.receipt(index, signed.with_signatures(lines))


def _chip(tmp_path: Path, registry: _Registry) -> tuple[Chip, list[int]]:
    maker = SigningKey.from_seed(b"chipmaker-seed-for-tests-0000000")
    clock = ManualClock()
    Chip.provision(tmp_path / "c", "CW-RC", maker.verifying_key, clock=clock).close()
    chip = Chip.open(tmp_path / "c", clock=clock, receipts=registry)
    chip.boot(sign_firmware(name="fw", version=1, code=b"", chipmaker=maker))
    chip.register("run", {"w": torch.zeros(4)}, json_digest({"c": 1}), tmp_path / "o")
    seqs = [chip.snapshot_now(step).seq for step in range(3)]
    return chip, seqs


def test_every_snapshot_holds_its_own_receipt(tmp_path: Path) -> None:
    signer = NoteSigner.generate(ORIGIN)
    with _chip(tmp_path, _Registry(signer))[0] as chip:
        entries = chip.log_entries()
        receipts = {r.seq: r.receipt for r in chip.snapshots}
        stored = {
            int(p.stem.rsplit("-", 1)[1]): p.read_text() for p in (tmp_path / "o").glob("*.receipt")
        }
    assert check_receipts(entries, receipts, [signer.verifier], ORIGIN, serial="CW-RC") == []
    assert check_receipts(entries, stored, [signer.verifier], ORIGIN, serial="CW-RC") == []


def test_missing_reused_old_and_foreign_receipts_are_findings(tmp_path: Path) -> None:
    signer = NoteSigner.generate(ORIGIN)
    with _chip(tmp_path, _Registry(signer))[0] as chip:
        entries = chip.log_entries()
        good = {r.seq: r.receipt for r in chip.snapshots}
    a, b, c = sorted(good)
    trusted = [signer.verifier]
    missing = {a: good[a], b: good[b]}
    assert [f.kind for f in check_receipts(entries, missing, trusted, ORIGIN, serial="S")] == [
        "receipt-missing"
    ]
    reused = {a: good[a], b: good[a], c: good[c]}  # an old receipt shown for a newer snapshot
    assert [f.kind for f in check_receipts(entries, reused, trusted, ORIGIN, serial="S")] == [
        "receipt-invalid"
    ]
    other = NoteSigner.generate(ORIGIN)  # a log the Verifier does not trust
    foreign_chip, _ = _chip(tmp_path / "f", _Registry(other))
    with foreign_chip:
        foreign = {r.seq: r.receipt for r in foreign_chip.snapshots}
    kinds = [f.kind for f in check_receipts(entries, foreign, trusted, ORIGIN, serial="S")]
    assert kinds == ["receipt-invalid"] * 3
    garbage = {a: "not a receipt", b: good[b], c: good[c]}
    assert [f.kind for f in check_receipts(entries, garbage, trusted, ORIGIN, serial="S")] == [
        "receipt-invalid"
    ]


def test_an_offline_bundle_is_the_receipts_plus_a_tlog_policy(tmp_path: Path) -> None:
    signer = NoteSigner.generate(ORIGIN)
    witnesses = [Cosigner.generate(f"w{i}.witness.example") for i in range(3)]
    text = f"log {signer.verifier.vkey}\n"
    text += "".join(f"witness W{i} {c.key.vkey}\n" for i, c in enumerate(witnesses))
    policy = Policy.parse(text + "group g 2 W0 W1 W2\nquorum g\n")
    for k in (1, 2, 3):
        with _chip(tmp_path / f"k{k}", _Witnessed(signer, witnesses[:k]))[0] as chip:
            entries = chip.log_entries()
            stored = {
                int(p.stem.rsplit("-", 1)[1]): p.read_text()
                for p in (tmp_path / f"k{k}" / "o").glob("*.receipt")
            }
        assert len(stored) == 3
        # the log's signature alone accepts them all; the policy needs 2 of 3 cosignatures
        assert check_receipts(entries, stored, [signer.verifier], ORIGIN, serial="S") == []
        found = check_receipts(entries, stored, policy, ORIGIN, serial="S")
        if k == 1:
            assert [f.kind for f in found] == ["receipt-invalid"] * 3
            assert all("quorum 'g' not met" in f.detail for f in found)
        else:
            assert found == []


def test_inspection_checks_every_waited_for_snapshot_s_receipt_from_the_live_registry(
    tmp_path: Path,
) -> None:
    from computewatch.inspection import (  # noqa: PLC0415
        DirectoryRecord,
        HeldReceipts,
        inspect_chip,
        receipts_beside,
    )
    from computewatch.testing import LocalRegistry, maker_key  # noqa: PLC0415

    folder, omega = tmp_path / "chip", tmp_path / "omega"
    Chip.provision(folder, "CW-HR", maker_key().verifying_key).close()
    with LocalRegistry.create(tmp_path / "registry") as registry:
        with Chip.open(folder, read_only=True) as chip:
            key = chip.public_key
        registry.enrol("CW-HR", key)
        image = sign_firmware(
            name="fw",
            version=1,
            code=b"fw",
            chipmaker=maker_key(),
            receipt_log=registry.receipt_log,
        )
        with Chip.open(folder, clock=ManualClock(), receipts=registry) as chip:
            chip.boot(image)
            chip.register("run-1", {"w": torch.zeros(4)}, json_digest({"c": 1}), omega)
            records = [chip.snapshot_now(step) for step in range(3)]
        trusted, origin = [registry.signer.verifier], registry.origin
    assert all(r.receipt is not None for r in records)
    assert all(e.body.get("receipt_log") == origin for e in _snapshot_entries(folder))

    def inspect(held: dict[int, bytes]) -> list[str]:
        result = inspect_chip(
            folder,
            DirectoryRecord("CW-HR", "lab-a", key),
            expected_owner="lab-a",
            nonce=b"inspection-nonce",
            reports=[],
            receipts=HeldReceipts(held, trusted, origin),
        )
        return sorted(f.kind for f in result.findings if f.kind.startswith("receipt"))

    held = receipts_beside([omega], "CW-HR")
    assert sorted(held) == [r.seq for r in records]
    assert inspect(held) == []
    assert inspect({k: v for k, v in held.items() if k != records[1].seq}) == ["receipt-missing"]
    swapped = {**held, records[2].seq: held[records[0].seq]}
    assert inspect(swapped) == ["receipt-invalid"]


def _snapshot_entries(folder: Path) -> list[LogEntry]:
    from computewatch.chip import read_chip_log, verify_chip_log  # noqa: PLC0415

    with Chip.open(folder, read_only=True) as chip:
        key = chip.public_key
    entries = verify_chip_log(read_chip_log(folder / "nvram.log"), key, "CW-HR")
    return [e for e in entries if e.kind == "snapshot"]
