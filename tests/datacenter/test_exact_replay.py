"""ε = 0 across chips: a fixed tree reduction makes one-process replays bitwise (ADR 0033)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

from computewatch.chip import Chip, read_chip_log, sign_firmware
from computewatch.crypto import SigningKey, shard_hash
from computewatch.datacenter import (
    DataSchedule,
    Determinism,
    Manifest,
    Reduction,
    Trainer,
    TranscriptPaths,
    cpu_capability,
    load_checkpoint,
    load_program,
    set_determinism,
    train,
    train_distributed,
    tree_sum,
)
from computewatch.errors import FormatError, ParameterError
from computewatch.verification import ChipEvidence, VerificationPolicy, verify_transcript
from tests.datacenter.conftest import make_spec

if TYPE_CHECKING:
    from pathlib import Path


def _replay(run: Path, start: int, stop: int, *, replay_shards: int | None = None) -> torch.Tensor:
    """Replay [start, stop) in one process, as the manifest's reduction says."""
    manifest = json.loads((run / "manifest.json").read_text())
    det = manifest["determinism"]
    set_determinism(det["seed"], det["threads"])
    program, _ = load_program(run / "code" / "program.py")
    world = manifest["sharding"]["world_size"]
    trainer = Trainer(
        program,
        manifest["config"],
        reduction=Reduction.from_json(manifest["sharding"]["reduction"]),
        replay_shards=world if replay_shards is None else replay_shards,
    )
    trainer.load(load_checkpoint(TranscriptPaths(run).checkpoint(start)))
    schedule = DataSchedule.from_json(manifest["data"])
    for step in range(start, stop):
        points = [program.data_point(manifest["config"], i) for i in schedule.indices(step)]
        trainer.step(step, torch.stack(points))
    return trainer.flat.clone()


def _multi_chip_run(tmp_path: Path, maker: SigningKey, world: int, **kw: Any) -> list[Path]:
    # 60 snapshots a chip-second: an 8-step run lasts well under a second now
    # that chips fork from a preloaded server, and this test needs snapshots.
    firmware = sign_firmware(
        name="cw-fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=86_400 * 60
    )
    folders = []
    for r in range(world):
        folder = tmp_path / f"chip{world}-{r}"
        Chip.provision(folder, f"CW-X{world}{r}", maker.verifying_key).close()
        folders.append(folder)
    spec = make_spec(world_size=world, batch_size=8, steps=8, checkpoint_every=4, **kw)
    train_distributed(spec, tmp_path / f"run{world}", folders, firmware.to_json())
    return folders


def test_tree_sum_order_is_pairwise_and_odd_one_carried() -> None:
    # 1e8 absorbs a lone 1.0 in float32: the grouping shows in the result
    big, one = torch.tensor([1e8]), torch.tensor([1.0])
    assert torch.equal(tree_sum([big, one, -big, one]), torch.tensor([0.0]))
    assert torch.equal(tree_sum([one, one, big, -big]), torch.tensor([2.0]))
    assert torch.equal(tree_sum([one]), one)
    with pytest.raises(ValueError, match="nothing to sum"):
        tree_sum([])


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"scheme": "ring", "micro_shards": 2}, "expected 'tree-v1'"),
        ({"scheme": "tree-v1", "micro_shards": 0}, r"expected an int in \[1"),
        ({"scheme": "tree-v1", "micro_shards": True}, "expected an int"),
        ({"scheme": "tree-v1"}, "expected"),
        ([], "expected"),
    ],
)
def test_a_malformed_reduction_is_refused(doc: object, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        Reduction.from_json(doc)


def test_micro_shards_must_fit_the_world_and_the_batch() -> None:
    with pytest.raises(ParameterError, match="multiple of world_size 2"):
        make_spec(world_size=2, micro_shards=3, batch_size=6)
    with pytest.raises(ParameterError, match="divides batch_size 8"):
        make_spec(micro_shards=3)
    assert make_spec(world_size=2).reduction.micro_shards == 2


def test_the_manifest_records_the_reduction_and_cpu_capability(tmp_path: Path) -> None:
    train(make_spec(micro_shards=4, steps=6), tmp_path / "run")
    doc = json.loads((tmp_path / "run/manifest.json").read_text())
    assert doc["sharding"]["reduction"] == {"scheme": "tree-v1", "micro_shards": 4}
    assert doc["determinism"]["cpu_capability"] == cpu_capability()
    assert Determinism.from_json(doc["determinism"]).pinned_here()
    bad = json.loads(json.dumps(doc))
    bad["sharding"]["reduction"]["micro_shards"] = 16  # does not divide the batch of 8
    with pytest.raises(FormatError, match=r"sharding\.reduction.*divides batch_size 8"):
        Manifest.from_dict(bad)


def test_a_manifest_without_them_is_legacy_and_not_pinned(tmp_path: Path) -> None:
    train(make_spec(steps=6), tmp_path / "run")
    doc = json.loads((tmp_path / "run/manifest.json").read_text())
    del doc["sharding"]["reduction"]
    del doc["determinism"]["cpu_capability"]
    assert Manifest.from_dict(doc).reduction is None
    assert not Determinism.from_json(doc["determinism"]).pinned_here()
    other = dict(doc["determinism"], cpu_capability="NOT-THIS-CPU")
    assert not Determinism.from_json(other).pinned_here()


def test_single_process_micro_shards_replay_bitwise(tmp_path: Path) -> None:
    train(make_spec(micro_shards=4, steps=12), tmp_path / "run")
    recorded = load_checkpoint(TranscriptPaths(tmp_path / "run").checkpoint(12)).weights
    assert torch.equal(_replay(tmp_path / "run", 6, 12), recorded)


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 4])
def test_multi_chip_runs_replay_bitwise_in_one_process(
    tmp_path: Path, maker: SigningKey, world: int
) -> None:
    folders = _multi_chip_run(tmp_path, maker, world, micro_shards=4)
    run = tmp_path / f"run{world}"
    paths = TranscriptPaths(run)
    for a, b in ((0, 4), (4, 8)):
        recorded = load_checkpoint(paths.checkpoint(b)).weights
        replayed = _replay(run, a, b)
        assert torch.equal(replayed, recorded)
        assert shard_hash(replayed) == shard_hash(recorded)
    # every chip's logged snapshot is bit for bit its slice of the replay
    report = json.loads(paths.report.read_text())
    assert report["snapshots"]
    for claim in report["snapshots"]:
        replayed = _replay(run, claim["step"] // 4 * 4, claim["step"])
        a, b = claim["slice"]
        assert str(shard_hash(replayed[a:b])) == claim["h"]
    # the verifier compares exactly and runs no noise twins
    evidence = []
    for f in folders:
        with Chip.open(f) as chip:
            evidence.append(
                ChipEvidence.from_log(
                    str(chip.serial), chip.public_key, read_chip_log(chip.log_path)
                )
            )
    verdict = verify_transcript(
        run,
        paths.report,
        evidence,
        VerificationPolicy(budget=1.0, pol_segments=2),
        np.random.default_rng(0),
    )
    assert verdict.passed, [c.detail for c in verdict.checks if not c]
    segments = [c for c in verdict.checks if c.name.startswith("segment:")]
    assert segments
    assert all(c.metrics["epsilon"] == 0.0 for c in segments)
    assert all(c.metrics["distance"] == 0.0 for c in segments)
    env = next(c for c in verdict.checks if c.name == "environment")
    assert env
    # one replay per segment, one per snapshot base (up to its last snapshot): no twins
    reach: dict[int, int] = {}
    for c in verdict.checks:
        if c.name.startswith("snapshot:") and "base" in c.metrics:
            base = int(c.metrics["base"])
            reach[base] = max(reach.get(base, base), int(c.metrics["step"]))
    once = sum(int(c.metrics["stop"]) - int(c.metrics["start"]) for c in segments)
    once += sum(step - base for base, step in reach.items())
    assert verdict.replayed_steps == once
