"""An FSDP2 run (one process per chip, gloo, CPU mesh) recorded by `FSDP2Monitor`.

The run is `examples/train_fsdp2.py`; a one-process replay by computewatch's
`Trainer` over the manifest's shard map must land on every chip's logged ω
and on every checkpoint, bitwise (ADR 0039).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from computewatch.crypto import shard_hash
from computewatch.datacenter import TranscriptPaths
from computewatch.verification._reader import TranscriptReader
from computewatch.verification._replay import Replayer

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
import train_fsdp2  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("chips", [2, 4])
def test_a_one_process_replay_is_bitwise_equal_to_the_fsdp2_run(tmp_path: Path, chips: int) -> None:
    train_fsdp2.run(tmp_path, chips=chips, steps=8, batch=8, every=4)
    run = tmp_path / "run"
    reader = TranscriptReader.open(run, TranscriptPaths(run).report)
    manifest = json.loads(TranscriptPaths(run).manifest.read_text())
    assert manifest["sharding"]["kind"] == "fsdp2"
    lengths = [[p["length"] for p in c["shards"]] for c in manifest["sharding"]["chips"]]
    if chips == 4:
        assert 0 in lengths[-1]  # torch.chunk leaves the last chip empty rows
    replayer = Replayer(reader)
    replayer.trainer.load(reader.checkpoint(0))
    by_step: dict[int, list[tuple[str, int]]] = {}
    for claim in reader.claims:
        by_step.setdefault(claim.step, []).append((claim.serial, claim.seq))
    assert by_step
    for step in range(reader.steps):
        replayer.trainer.step(step, replayer.batch(step))
        for serial, seq in by_step.get(step + 1, []):
            omega = reader.omega(serial, seq)
            assert torch.equal(reader.omega_of(replayer.trainer.flat, serial), omega)
            assert str(shard_hash(omega)) == next(
                str(c.h) for c in reader.claims if c.seq == seq and c.serial == serial
            )
        if step + 1 in reader.checkpoint_steps:
            assert torch.equal(replayer.trainer.flat, reader.checkpoint(step + 1).weights)
