"""The Zhang et al. 2022 adversarial-example spoof: its machinery is exact, and it is caught."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from torch.nn import functional as F  # noqa: N812 - the usual alias

from computewatch.attacks import AdversarialExamples, HonestRun, run_on_chip
from computewatch.attacks._adversarial import _adamw, craft_batch, relaxed_loss
from computewatch.datacenter import Trainer, TranscriptPaths
from computewatch.verification import Replayer, TranscriptReader, VerificationPolicy
from tests.attacks.runs import run_with_a_snapshot

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> list[HonestRun]:
    root = tmp_path_factory.mktemp("zhang")
    # a secret run whose chip logged no snapshot leaves no ω to measure the
    # forgery's distance against
    secret = run_with_a_snapshot(root, "secret", "CW-Z-0")
    return [secret, run_on_chip(root, name="cover", serial="CW-Z-1", data_seed=50)]


def _trainer(run: HonestRun) -> tuple[Trainer, Replayer]:
    reader = TranscriptReader.open(run.run_dir, TranscriptPaths(run.run_dir).report)
    trainer = Trainer(reader.program, reader.config)
    trainer.load(reader.checkpoint(0))
    return trainer, Replayer(reader)


def test_relaxed_loss_is_the_program_loss_on_one_hot_bytes(bases: list[HonestRun]) -> None:
    trainer, replayer = _trainer(bases[0])
    batch = replayer.batch(0)
    real = trainer.program.loss(trainer.model, batch)
    relaxed = relaxed_loss(trainer.model, F.one_hot(batch.long(), 256).float())
    assert float(relaxed.detach()) == pytest.approx(float(real.detach()), rel=1e-5)


def test_the_forgers_adamw_step_is_the_optimizers(bases: list[HonestRun]) -> None:
    # crafting relies on predicting the real step exactly; check it over steps
    # where Adam's moments are empty and where they are not
    trainer, replayer = _trainer(bases[0])
    for step in range(3):
        batch = replayer.batch(step)
        loss = trainer.program.loss(trainer.model, batch)
        params = [p for _, p in trainer.model.named_parameters()]
        grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)])
        predicted = _adamw(trainer, step, grad)
        trainer.step(step, batch)
        assert torch.allclose(predicted, trainer.flat, rtol=0, atol=1e-6)


def test_crafting_moves_toward_the_target_and_keeps_bytes_printable(
    bases: list[HonestRun],
) -> None:
    trainer, replayer = _trainer(bases[0])
    target = replayer.run(0, 1, capture={1})[1][1]
    cover = _trainer(bases[1])[1].batch(0)
    before = trainer.flat.clone()
    crafted, stats = craft_batch(trainer, 0, cover, target, rounds=4, candidates=8)
    assert torch.equal(trainer.flat, before)  # the trainer is not stepped
    assert stats.crafted < stats.cover
    assert 0 < stats.changed <= 0.25
    changed = crafted != cover
    assert bool(((crafted[changed] >= 32) | (crafted[changed] == 10)).all())


@pytest.mark.slow
def test_zhang_spoof_is_caught_and_replay_is_far_outside_epsilon(
    tmp_path: Path, bases: list[HonestRun]
) -> None:
    attack = AdversarialExamples(rounds=2, candidates=4)
    attempt = attack.create(tmp_path, 0, bases)
    # the crafted data really is the claimed data: the transcript's own W_0
    # replays its crafted steps exactly, yet it ends far from the secret path
    assert 0 < attempt.data["bytes_changed"] <= 0.25
    assert attempt.data["final_distance"] > 0
    result = attack.detect(attempt, VerificationPolicy(), np.random.default_rng(0))
    assert result.detected
    assert {"precommit-logged", "init"} <= set(result.checks)
    if "snapshot_distance_over_eps_min" in attempt.data:  # a measured tolerance (ADR 0004)
        assert attempt.data["snapshot_distance_over_eps_min"] > 1
    if "snapshot_distance_min_exact" in attempt.data:  # ε = 0 (ADR 0033)
        assert attempt.data["snapshot_distance_min_exact"] > 0
    assert attempt.data.keys() & {"snapshot_distance_over_eps_min", "snapshot_distance_min_exact"}
