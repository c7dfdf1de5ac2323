"""A ``transformers.Trainer`` run recorded by `MonitorCallback` is what the verifier passes.

The run is ``examples/train_hf.py``'s tiny GPT-2 (built from ``GPT2Config``,
no download) trained by the real HF Trainer with gradient accumulation, on a
real chip; the real `verify_transcript` replays it in sandboxed workers.
"""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from transformers import Trainer, TrainingArguments

from computewatch.attacks._harness import recommit
from computewatch.datacenter import (
    RunSpec,
    TranscriptPaths,
    load_checkpoint,
    read_index,
    save_checkpoint,
)
from computewatch.errors import ParameterError
from computewatch.integrations.hf import MonitorCallback, hf_learning_rate
from computewatch.testing import TinyRun, maker_key, provisioned_chip
from computewatch.verification import CheckStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "train_hf.py"
EX: dict[str, Any] = runpy.run_path(str(SCRIPT))
CONFIG: dict[str, Any] = EX["CONFIG"]
STEPS, BATCH, ACCUMULATION, EVERY = 16, 8, 2, 4


def _spec(config: dict[str, Any] | None = None) -> RunSpec:
    return RunSpec(
        run_id="hf-1",
        program_path=SCRIPT,
        config=dict(CONFIG if config is None else config),
        batch_size=BATCH,
        steps=STEPS,
        data_seed=5,
        checkpoint_every=EVERY,
    )


def _args(out: Path, **kw: Any) -> TrainingArguments:
    base: dict[str, Any] = {
        "output_dir": str(out),
        "max_steps": STEPS,
        "learning_rate": 3e-3,
        "per_device_train_batch_size": BATCH // ACCUMULATION,
        "gradient_accumulation_steps": ACCUMULATION,
        "warmup_steps": 3,
        "max_grad_norm": 0.0,
        "train_sampling_strategy": "sequential",
        "save_strategy": "steps",
        "save_steps": EVERY,
        "save_only_model": True,
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
    }
    base.update(kw)
    return TrainingArguments(**base)


def hf_run(
    workdir: Path,
    *,
    tamper: Callable[[int, dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
    config: dict[str, Any] | None = None,
    **args: Any,
) -> TinyRun:
    """The lab's HF script; `tamper(micro_batch, inputs)` is the Prover substituting data."""
    chip = provisioned_chip(workdir / "chip", "CW-H-0", maker=maker_key())
    callback = MonitorCallback(_spec(config), workdir / "run", chip=chip)
    fed = [0]

    def collate(points: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        inputs = callback.collate(points)  # checked against the commitment
        fed[0] += 1
        return inputs if tamper is None else tamper(fed[0] - 1, inputs)

    trainer = Trainer(
        model=EX["build_model"](CONFIG),
        args=_args(workdir / "hf", **args),
        train_dataset=callback.train_dataset(EX["dataset"](CONFIG)),
        data_collator=collate,
        callbacks=[callback],
    )
    try:
        trainer.train()
    finally:
        chip.flush()
        chip.close()
    return TinyRun(workdir / "run", chip, maker_key())


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return hf_run(tmp_path_factory.mktemp("hf"))


def _failed(verdict: Any) -> set[str]:
    return {c.name.split(":")[0] for c in verdict.checks if c.status is CheckStatus.FAIL}


def test_an_hf_trainer_run_replays_bitwise(honest: TinyRun) -> None:
    """Accumulated micro-batches, the Trainer's schedule and AdamW, replayed exactly."""
    verdict = honest.verify(budget=1.0, exact=True)
    assert verdict.passed, _failed(verdict)


def test_the_manifest_records_the_trainers_choices(honest: TinyRun) -> None:
    manifest = json.loads(TranscriptPaths(honest.run_dir).manifest.read_text())
    assert manifest["sharding"]["accumulation"] == ACCUMULATION
    assert manifest["config"]["hf_schedule"] == {
        "name": "linear",
        "lr": 3e-3,
        "warmup_steps": 3,
        "steps": STEPS,
    }
    assert manifest["config"]["optimizer"]["class"] == "AdamW"
    # the contract's schedule is the Trainer's: warm-up from 0, then linear decay
    rates = [hf_learning_rate(manifest["config"], s) for s in range(STEPS)]
    assert rates[0] == 0.0
    assert rates[3] == pytest.approx(3e-3)
    assert rates[-1] < rates[4]
    steps = [e.step for e in read_index(TranscriptPaths(honest.run_dir))]
    assert steps == list(range(0, STEPS + 1, EVERY))  # one at every save of the Trainer


def test_a_substituted_batch_is_caught(tmp_path: Path) -> None:
    def swap(micro: int, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if micro != 11:  # the second micro-batch of step 5
            return inputs
        other = inputs["input_ids"].roll(3, dims=1)
        return {"input_ids": other, "labels": other}

    run = hf_run(tmp_path, tamper=swap)
    verdict = run.verify(budget=1.0)
    assert not verdict.passed
    assert _failed(verdict) & {"segment", "snapshot"}


def test_a_relabelled_checkpoint_is_caught(honest: TinyRun, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(honest.run_dir, run_dir)
    paths = TranscriptPaths(run_dir)
    early = load_checkpoint(paths.checkpoint(4))
    save_checkpoint(  # checkpoint 4's state, labelled step 8
        paths.checkpoint(8),
        step=8,
        weights=early.weights,
        optimizer_state=early.optimizer_state,
        param_groups=early.param_groups,
        rng_state=early.rng_state,
        layout_digest=early.layout_digest,
    )
    recommit(run_dir)
    verdict = TinyRun(run_dir, honest.chip, honest.maker).verify(budget=1.0)
    assert not verdict.passed
    assert _failed(verdict) & {"segment", "snapshot"}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"max_grad_norm": 1.0}, r"max_grad_norm = 1\.0: expected 0 \(the replay does not clip"),
        ({"train_sampling_strategy": "random"}, r"train_sampling_strategy = 'random'"),
        ({"save_steps": 3}, r"save_steps = 3: expected the transcript's checkpoint interval 4"),
        ({"gradient_accumulation_steps": 4}, r"per_device_train_batch_size = 4: expected"),
        ({"bf16": True}, r"bf16 = True: the run's config declares autocast None"),
    ],
)
def test_trainer_settings_the_replay_cannot_meet_are_refused(
    tmp_path: Path, setting: dict[str, Any], message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        hf_run(tmp_path, **setting)


def test_a_bf16_trainer_run_replays_bitwise(tmp_path: Path) -> None:
    """``bf16=True``: the Trainer's CPU autocast, declared in the config, replayed exactly."""
    run = hf_run(tmp_path, bf16=True, config=dict(CONFIG, autocast="bfloat16"))
    verdict = run.verify(budget=1.0, exact=True)
    assert verdict.passed, _failed(verdict)


def test_a_declared_precision_the_trainer_does_not_use_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"bf16 = False: the run's config declares"):
        hf_run(tmp_path, config=dict(CONFIG, autocast="bfloat16"))


def test_a_loss_normalised_off_the_contract_is_refused(tmp_path: Path) -> None:
    """GPT-2 without a loss type: the Trainer would divide by every label, not the predicted."""
    callback = MonitorCallback(_spec(), tmp_path / "run")
    model = EX["build_model"](CONFIG)
    model.loss_type = None
    trainer = Trainer(
        model=model,
        args=_args(tmp_path / "hf"),
        train_dataset=callback.train_dataset(EX["dataset"](CONFIG)),
        data_collator=callback.collate,
        callbacks=[callback],
    )
    with pytest.raises(ParameterError, match=r"divides the loss by 128 tokens.*the 120 predicted"):
        trainer.train()


def test_data_off_the_contract_is_refused(tmp_path: Path) -> None:
    callback = MonitorCallback(_spec(), tmp_path / "run")
    data = EX["dataset"](CONFIG)
    with pytest.raises(ParameterError, match=r"collate: called before the Trainer began"):
        callback.collate([data[0]])
    smaller = EX["dataset"]({**CONFIG, "points": 128})  # not the contract's data set
    trainer = Trainer(
        model=EX["build_model"](CONFIG),
        args=_args(tmp_path / "hf"),
        train_dataset=callback.train_dataset(smaller),
        data_collator=callback.collate,
        callbacks=[callback],
    )
    with pytest.raises(ParameterError, match=r"data set of 128 points, the contract has 512"):
        trainer.train()
