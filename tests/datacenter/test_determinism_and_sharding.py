"""Replay determinism, multi-chip sharding, and a real kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
import torch
from safetensors.torch import load_file

from computewatch.chip import Chip, sign_firmware
from computewatch.crypto import SigningKey, shard_hash
from computewatch.datacenter import (
    DataSchedule,
    Trainer,
    TranscriptPaths,
    load_checkpoint,
    load_program,
    set_determinism,
    train,
    train_distributed,
)
from tests.datacenter.conftest import EXAMPLE, TINY, make_spec

if TYPE_CHECKING:
    from pathlib import Path


def _replay(run: Path, start: int, stop: int, threads: int) -> torch.Tensor:
    """Replay steps [start, stop) of a recorded run in one process."""
    manifest = json.loads((run / "manifest.json").read_text())
    set_determinism(manifest["determinism"]["seed"], threads)
    program, _ = load_program(run / "code" / "program.py")
    trainer = Trainer(program, manifest["config"])
    trainer.load(load_checkpoint(TranscriptPaths(run).checkpoint(start)))
    schedule = DataSchedule.from_json(manifest["data"])
    for step in range(start, stop):
        batch = torch.stack(
            [program.data_point(manifest["config"], i) for i in schedule.indices(step)]
        )
        trainer.step(step, batch)
    return trainer.flat.clone()


def test_same_thread_count_replays_bitwise(tmp_path: Path) -> None:
    train(make_spec(), tmp_path / "run")
    replayed = _replay(tmp_path / "run", 6, 18, threads=1)
    assert torch.equal(
        replayed, load_checkpoint(TranscriptPaths(tmp_path / "run").checkpoint(18)).weights
    )


def test_other_thread_count_drifts_slightly(tmp_path: Path) -> None:
    cfg = dict(TINY, n_embd=64, n_head=4)
    train(make_spec(config=cfg, batch_size=16), tmp_path / "run")
    recorded = load_checkpoint(TranscriptPaths(tmp_path / "run").checkpoint(24)).weights
    replayed = _replay(tmp_path / "run", 0, 24, threads=2)
    drift = float((replayed - recorded).norm())
    # not bitwise (reduction order), but close: the verifier's tolerance covers it
    assert drift < 1e-2


@pytest.mark.slow
def test_four_chip_run_shards_match_a_single_process_replay(
    tmp_path: Path, maker: SigningKey
) -> None:
    # the processes use the wall clock: 60 snapshots a second make some certain
    # (a 12-step run on chips forked from a preloaded server lasts about a second)
    firmware = sign_firmware(
        name="cw-fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=86_400 * 60
    )
    folders = []
    for r in range(4):
        Chip.provision(tmp_path / f"chip{r}", f"CW-Z{r}", maker.verifying_key).close()
        folders.append(tmp_path / f"chip{r}")
    spec = make_spec(world_size=4, batch_size=8, steps=12, checkpoint_every=4)
    summary = train_distributed(spec, tmp_path / "run", folders, firmware.to_json())
    report = summary.report
    assert report is not None
    manifest = json.loads((tmp_path / "run/manifest.json").read_text())
    slices = [tuple(c["slice"]) for c in manifest["sharding"]["chips"]]
    assert slices[0][0] == 0
    assert slices[-1][1] == manifest["numel"]
    # every chip logged the same precommitment, and its own snapshots
    for folder in folders:
        with Chip.open(folder) as chip:
            pre = next(e for e in chip.log_entries() if e.kind == "precommit")
            assert pre.body["commitment"] == report["precommitment"]
    assert {c["serial"] for c in report["snapshots"]} <= {f"CW-Z{r}" for r in range(4)}
    # a snapshot's ω is its chip's slice of a single-process replay, within noise
    claim = report["snapshots"][-1]
    omega = load_file(
        str(tmp_path / "run" / f"snapshots/{claim['serial']}-{claim['seq']:08d}.safetensors")
    )["omega"]
    assert str(shard_hash(omega)) == claim["h"]
    start = (claim["step"] // 4) * 4
    a, b = claim["slice"]
    replayed = _replay(tmp_path / "run", start, claim["step"], threads=1)[a:b]
    assert float((replayed - omega).norm()) < 1e-3


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_weights(tmp_path: Path) -> None:
    run = tmp_path / "run"
    script = (
        "import sys, time; sys.path.insert(0, '.');"
        "from tests.datacenter.conftest import make_spec;"
        "from computewatch.datacenter import train;"
        f"train(make_spec(steps=60, checkpoint_every=10), {str(run)!r},"
        " progress=lambda d, t: (print(d, flush=True), time.sleep(0.05)))"
    )
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(EXAMPLE.parents[1]),
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if int(line) >= 27:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    # the transcript is consistent up to its last checkpoint, and resumes
    resumed = train(make_spec(steps=60, checkpoint_every=10), run, resume=True)
    full = train(make_spec(steps=60, checkpoint_every=10), tmp_path / "full")
    a = load_checkpoint(TranscriptPaths(run).checkpoint(60)).weights
    b = load_checkpoint(TranscriptPaths(tmp_path / "full").checkpoint(60)).weights
    assert torch.equal(a, b)
    assert resumed.report is not None
    assert full.report is not None
    assert resumed.report["data_root"] == full.report["data_root"]


def test_the_data_order_is_a_fixed_function_of_the_schedule() -> None:
    # known answers (torch's seeded randperm, an epoch of 512 steps): a cached
    # permutation must give exactly what a fresh one gives, in any call order
    schedule = DataSchedule(4096, 8, 3000, 7)
    want = {
        2999: [1818, 1532, 3075, 3934, 374, 3796, 2169, 3724],
        0: [175, 2093, 2641, 3166, 3119, 2898, 403, 849],
        512: [451, 734, 2587, 2510, 1877, 222, 512, 1279],
    }
    for _ in range(2):
        for step, indices in want.items():
            assert schedule.indices(step) == indices
    epoch = [i for step in range(512) for i in schedule.indices(step)]
    assert sorted(epoch) == list(range(4096))  # without replacement within an epoch
    got = schedule.indices(0)
    got.append(-1)  # the caller's list is its own
    assert schedule.indices(0) == want[0]
