"""What firmware snapshots cost the training step (issue: chip).

* **Stall**: the time `Chip.on_step` holds the step when it snapshots (the
  copy of ω into a host buffer; hashing, writing and signing happen on the
  firmware worker), as a ratio to a plain copy of the same shard into a
  preallocated buffer measured in the same process. Goal <= 1.2x.
* **Off the critical path**: how long the worker then takes (hash, write the
  safetensors copy, sign and append), reported per part.
* **Per log entry**: signing and durable appending, for each secure-element
  backend available here (the TPM one when swtpm and tpm2-pytss are installed).
* **Waiting for receipts**: with a receipt server required, the firmware does
  not let training resume until the entry it just wrote is acknowledged; the
  time from the snapshotting step to holding the receipt (freeze, hash,
  write, sign, append, the registry's Merkle append, signed checkpoint and
  inclusion proof) per snapshot, as a ratio to the plain copy of the same
  shard measured in the same run. The firmware image names the receipt log,
  so the firmware checks each receipt itself (that very entry, under the
  log's key) before training resumes. Two registries: the Merkle log in
  memory (the floor of what a receipt costs) and the registry core on
  SQLite in process (its rules and durable commit; no HTTP).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from computewatch.chip import Chip, ManualClock, ReceiptLog, SecureElement, sign_firmware
from computewatch.crypto import (
    Envelope,
    MerkleLog,
    NoteSigner,
    Receipt,
    SigningKey,
    json_digest,
    shard_hash,
)
from computewatch.testing import LocalRegistry

_ORIGIN = "bench.example/log"


def _best(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _entry_costs(se: SecureElement, n: int) -> dict[str, float]:
    msg = b"x" * 300
    sign = _best(lambda: se.sign(msg), n) * 1e6
    start = time.perf_counter()
    for _ in range(n):
        se.increment_counter("bench")
    counter = (time.perf_counter() - start) / n * 1e6
    return {"sign_us": sign, "counter_increment_us": counter}


def run(*, quick: bool) -> dict[str, Any]:
    """Measure the snapshot stall and per-entry costs."""
    torch.set_num_threads(1)
    numel = (16 if quick else 256) * (1 << 20) // 4
    w = torch.randn(numel)
    buf = torch.empty_like(w)
    copy_s = _best(lambda: buf.copy_(w), 5)
    hash_s = _best(lambda: shard_hash(buf), 3)
    maker = SigningKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clock = ManualClock()
        chip = Chip.provision(root / "chip", "CW-BENCH", maker.verifying_key, clock=clock)
        chip.boot(
            sign_firmware(
                name="bench",
                version=1,
                code=b"b",
                chipmaker=maker,
                snapshot_rate_per_day=86_400.0 * 60,
            )
        )
        chip.register("bench", {"w": w}, json_digest({"bench": 1}), root / "omega")
        stalls, worker, copies = [], [], []
        for step in range(7 if quick else 9):
            # the baseline, measured under the same conditions right before
            copies.append(_best(lambda: buf.copy_(w), 1))
            clock.advance(86_400.0)  # a long gap: the poll snapshots with p ~ 1
            start = time.perf_counter()
            took = chip.on_step(step)
            stalls.append(time.perf_counter() - start)
            chip.flush()
            worker.append(time.perf_counter() - start)
            if not took:  # pragma: no cover - p = 1 - exp(-3600*86400)
                msg = "expected a snapshot"
                raise RuntimeError(msg)
        for p in (root / "omega").glob("*.safetensors"):
            p.unlink()
        n = 50 if quick else 300
        start = time.perf_counter()
        for _ in range(n):
            chip.precommit("bench", json_digest({"x": 1}))
        append_us = (time.perf_counter() - start) / n * 1e6
        file_costs = _entry_costs(chip._se, n)  # noqa: SLF001 - benchmark of the SE itself
        chip.close()
    stall = statistics.median(stalls)
    ratios = [s / c for s, c in zip(stalls, copies, strict=True)]
    backends: dict[str, Any] = {"file": {"append_entry_us": append_us, **file_costs}}
    backends["tpm"] = _tpm_costs(n)
    receipts = _receipt_stall(w, buf, 5 if quick else 7)
    return {
        "shard_bytes": numel * 4,
        "plain_copy_s": statistics.median(copies),
        "plain_copy_best_s": copy_s,
        "snapshot_stall_s": stall,
        "stall_ratio_to_copy": statistics.median(ratios),
        "stall_ratios": ratios,
        "goal_stall_ratio": 1.2,
        "off_critical_path": {
            "worker_total_s": statistics.median(worker) - stall,
            "shard_hash_sha256_s": hash_s,
        },
        "per_entry": backends,
        "receipt_wait": receipts,
    }


class _Registry:
    """The receipt server's log in memory: append, sign a checkpoint, prove inclusion."""

    def __init__(self) -> None:
        self.log = MerkleLog.in_memory()
        self.signer = NoteSigner.generate(_ORIGIN)

    def __call__(self, envelope: Envelope) -> Receipt:
        index = self.log.append(envelope.to_json())
        return self.log.receipt(index, self.log.checkpoint(self.signer, origin=_ORIGIN))


def _receipt_stall(w: torch.Tensor, buf: torch.Tensor, snapshots: int) -> dict[str, Any]:
    """The stall per snapshot until the firmware holds a receipt it checked, per registry."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        memory = _Registry()
        out["in_memory_log"] = _stall_with(
            root / "a",
            w,
            buf,
            snapshots=snapshots,
            server=memory,
            log=ReceiptLog(_ORIGIN, (memory.signer.verifier,)),
        )
        with LocalRegistry.create(root / "registry") as registry:
            out["registry_sqlite"] = _stall_with(
                root / "b",
                w,
                buf,
                snapshots=snapshots,
                server=registry,
                log=registry.receipt_log,
                enrol=registry,
            )
    out["registries"] = {
        "in_memory_log": "the Merkle log in memory: append, signed checkpoint, proof",
        "registry_sqlite": "the registry core in process on SQLite (rules, durable commit, "
        "signed checkpoint, proof; no HTTP)",
    }
    return out


def _stall_with(
    root: Path,
    w: torch.Tensor,
    buf: torch.Tensor,
    *,
    snapshots: int,
    server: Any,
    log: ReceiptLog,
    enrol: LocalRegistry | None = None,
) -> dict[str, Any]:
    """Per snapshot: from the snapshotting step until the firmware holds its checked receipt."""
    maker = SigningKey.generate()
    clock = ManualClock()
    chip = Chip.provision(root / "chip", "CW-BENCH-R", maker.verifying_key, clock=clock)
    if enrol is not None:
        enrol.enrol("CW-BENCH-R", chip.public_key)
    chip.close()
    chip = Chip.open(root / "chip", clock=clock, receipts=server)
    chip.boot(
        sign_firmware(
            name="bench",
            version=1,
            code=b"b",
            chipmaker=maker,
            snapshot_rate_per_day=5e6,
            receipt_log=log,  # the firmware checks each receipt itself
        )
    )
    chip.register("bench", {"w": w}, json_digest({"bench": 1}), root / "omega")
    waits, copies = [], []
    for step in range(snapshots):
        copies.append(_best(lambda: buf.copy_(w), 1))
        clock.advance(86_400.0)
        start = time.perf_counter()
        if not chip.on_step(step):  # pragma: no cover - p ~ 1
            msg = "expected a snapshot"
            raise RuntimeError(msg)
        chip.flush()  # training resumes only here: the checked receipt is held
        waits.append(time.perf_counter() - start)
        for p in (root / "omega").glob("*.safetensors"):
            p.unlink()
    held = all(isinstance(r.receipt, Receipt) for r in chip.snapshots)
    chip.close()
    ratios = [s / c for s, c in zip(waits, copies, strict=True)]
    return {
        "snapshots": snapshots,
        "every_snapshot_holds_a_checked_receipt": held,
        "stall_until_receipt_s": statistics.median(waits),
        "plain_copy_s": statistics.median(copies),
        "stall_ratio_to_copy": statistics.median(ratios),
        "stall_ratios": ratios,
    }


def _tpm_costs(n: int) -> dict[str, Any]:
    try:
        from tests.chip.swtpm import swtpm_server  # noqa: PLC0415

        from computewatch.chip import provision_secure_element  # noqa: PLC0415
    except ImportError as e:
        return {"available": False, "reason": str(e)}
    try:
        with tempfile.TemporaryDirectory() as tmp, swtpm_server(Path(tmp)) as (host, port):
            se = provision_secure_element(f"tpm:{host}:{port}", "CW-BENCH-TPM")
            try:
                return {"available": True, **_entry_costs(se, max(10, n // 10))}
            finally:
                se.close()
    except Exception as e:  # noqa: BLE001 - report, do not fail the benchmark run
        return {"available": False, "reason": f"{type(e).__name__}: {e}"}
