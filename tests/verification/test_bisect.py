"""Per-step commitments and disputes by bisection (ADR 0034)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import TYPE_CHECKING

import pytest
import torch

from computewatch.attacks import FinalCheckpointSwap, HonestRun
from computewatch.datacenter import (
    DataSchedule,
    MetricsRecord,
    Trainer,
    TranscriptPaths,
    set_determinism,
    state_digest,
)
from computewatch.errors import FormatError
from computewatch.testing import train_on_chip
from computewatch.verification import (
    TranscriptReader,
    bisect_first_bad,
    checkpoint_commitments,
    committed_states,
    confirm_step,
)

if TYPE_CHECKING:
    from pathlib import Path

    from computewatch.testing import TinyRun

BAD_STEP = 15  # inside the checkpoint interval 12-18 of the tiny run


def _next(state: bytes, batch: int) -> bytes:
    """One step of a synthetic training chain: the state after a batch."""
    return hashlib.sha256(state + batch.to_bytes(8, "big")).digest()


@pytest.mark.parametrize("bad", [0, 1, 4_999, 7_321, 9_998, 9_999])
def test_one_bad_step_among_ten_thousand_in_fourteen_rounds_and_one_step(bad: int) -> None:
    # a synthetic commitment chain of 10^4 steps (the real run is 24 steps:
    # see below); the Prover's chain goes wrong at step `bad` and stays wrong
    k = 10_000
    honest, claimed = [b"w0"], [b"w0"]
    for step in range(k):
        honest.append(_next(honest[-1], step))
        claimed.append(_next(claimed[-1], step + 1 if step == bad else step))
    asked: list[int] = []

    def agree(n: int) -> bool:
        asked.append(n)
        return honest[n] == claimed[n]

    found = bisect_first_bad(0, k, agree)
    assert found.step == bad
    assert found.rounds == len(asked) <= math.ceil(math.log2(k)) == 14
    # a third party replays one step from the agreed state and sees the lie
    assert claimed[found.step] == honest[found.step]
    assert _next(claimed[found.step], found.step) != claimed[found.step + 1]


def test_bisection_refuses_an_empty_range() -> None:
    with pytest.raises(ValueError, match="lo < hi"):
        bisect_first_bad(5, 5, lambda _n: True)


def test_metrics_carry_a_state_digest_and_refuse_a_malformed_one() -> None:
    rec = MetricsRecord(0, 1.0, 0.1, 0.2, 0.3, 0.0, 0.01, state="sha256:" + "ab" * 32)
    assert MetricsRecord.from_dict(rec.to_dict(), "m") == rec
    old = MetricsRecord(0, 1.0, 0.1, 0.2, 0.3, 0.0, 0.01)
    assert "state" not in old.to_dict()
    assert MetricsRecord.from_dict(old.to_dict(), "m").state is None
    with pytest.raises(FormatError, match=r"metrics\.jsonl line 3.*state"):
        MetricsRecord.from_dict(dict(rec.to_dict(), state="sha256:zz"), "metrics.jsonl line 3")


@pytest.fixture(scope="module")
def substituted(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """A tiny run that trains on other points at one step (the commitments are honest)."""

    def batches(schedule: DataSchedule, step: int, rank: int, world: int) -> list[int]:
        idx = schedule.local_indices(step, rank, world)
        if step != BAD_STEP:
            return idx
        return [(i + 1) % schedule.dataset_size for i in idx]

    return train_on_chip(tmp_path_factory.mktemp("sub"), batches=batches)


def test_every_checkpoint_matches_its_step_commitment(substituted: TinyRun) -> None:
    reader = TranscriptReader.open(substituted.run_dir, TranscriptPaths(substituted.run_dir).report)
    assert sorted(committed_states(reader)) == list(range(1, 25))
    assert checkpoint_commitments(reader)
    ckpt = reader.checkpoint(12)
    slices = [(0, reader.layout.numel)]
    assert (
        str(state_digest(ckpt.weights, ckpt.optimizer_state, slices))
        == committed_states(reader)[12]
    )


def test_a_failed_segment_names_the_bad_step_and_one_step_confirms_it(
    substituted: TinyRun,
) -> None:
    verdict = substituted.verify(budget=1.0)
    assert not verdict.passed
    seg = next(c for c in verdict.checks if c.name == "segment:12-18")
    assert not seg
    assert f"first bad step {BAD_STEP}" in seg.detail
    rounds = re.search(r"(\d+) rounds", seg.detail)
    assert rounds is not None
    assert int(rounds.group(1)) <= 3  # ceil(log2 6)
    others = [c for c in verdict.checks if c.name.startswith("segment:") and c.name != seg.name]
    assert others
    assert all(others)
    # a third party: the state after 15 steps (here regenerated from checkpoint
    # 12 with the committed data) matches the commitment; one more step does not
    reader = TranscriptReader.open(substituted.run_dir, TranscriptPaths(substituted.run_dir).report)
    committed = committed_states(reader)
    set_determinism(reader.determinism.seed, reader.determinism.threads)
    trainer = Trainer(reader.program, reader.config, reduction=reader.reduction)
    trainer.load(reader.checkpoint(12))

    def batch(step: int) -> torch.Tensor:
        points = reader.schedule.indices(step)
        return torch.stack([reader.program.data_point(reader.config, i) for i in points])

    for step in range(12, BAD_STEP):
        trainer.step(step, batch(step))
    assert str(trainer.state_digest()) == committed[BAD_STEP]
    assert confirm_step(trainer, BAD_STEP, batch(BAD_STEP), committed[BAD_STEP + 1])


@pytest.mark.slow
def test_a_swapped_final_checkpoint_fails_the_commitments_without_replay(
    substituted: TinyRun, tmp_path: Path
) -> None:
    base = HonestRun(substituted.run_dir, substituted.chip)
    attempt = FinalCheckpointSwap().create(tmp_path, 0, [base])
    assert attempt.run is not None
    run_dir = attempt.run.run_dir
    reader = TranscriptReader.open(run_dir, TranscriptPaths(run_dir).report)
    check = checkpoint_commitments(reader)
    assert not check
    assert "checkpoint 24" in check.detail
    doc = json.loads(TranscriptPaths(run_dir).metrics.read_text().splitlines()[-1])
    assert doc["state"] == committed_states(reader)[24]
