"""A lab's own loop, instrumented with `Monitor`, records what the verifier passes.

The loop here is a plain PyTorch loop over the functions of
``examples/train_loop.py`` (the replay contract), on a real chip; the
transcript is checked by the real `verify_transcript` with sandboxed replay
workers, and by the CLI's ``cluster verify`` in `test_cli_cluster_verify`.
"""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from torch.utils.data import DataLoader

from computewatch.attacks._harness import recommit
from computewatch.datacenter import (
    Monitor,
    RunSpec,
    TranscriptPaths,
    describe_optimizer,
    load_checkpoint,
    save_checkpoint,
)
from computewatch.errors import FormatError, ParameterError
from computewatch.testing import TinyRun, maker_key, provisioned_chip
from computewatch.verification import CheckStatus

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[2]
LOOP = ROOT / "examples" / "train_loop.py"
EX: dict[str, Any] = runpy.run_path(str(LOOP))
CONFIG = {"context": 4, "width": 8, "points": 256, "lr": 3e-3}


def _spec(**kw: Any) -> RunSpec:
    base: dict[str, Any] = {
        "run_id": "loop-1",
        "program_path": LOOP,
        "config": dict(CONFIG),
        "batch_size": 8,
        "steps": 24,
        "data_seed": 3,
        "checkpoint_every": 6,
    }
    base.update(kw)
    return RunSpec(**base)


def lab_loop(
    workdir: Path,
    *,
    tamper: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
    config: dict[str, Any] | None = None,
    bf16: bool = False,
    nudge: Callable[[int, torch.nn.Module], None] | None = None,
) -> TinyRun:
    """The lab's loop; `tamper(step, batch)` is the Prover substituting data.

    `nudge(step, model)` runs after each optimizer step: the Prover changing
    weights outside the optimizer.

    `config` replaces the run's configuration; `bf16` runs the forward under
    bf16 autocast, whatever the configuration declares.
    """
    chip = provisioned_chip(workdir / "chip", "CW-L-0", maker=maker_key())
    config = dict(CONFIG) if config is None else config
    model = EX["build_model"](config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=CONFIG["lr"], weight_decay=0.01)
    monitor = Monitor(_spec(config=config), model, optimizer, workdir / "run", chip=chip)
    loader = DataLoader(
        EX["dataset"](config), batch_sampler=monitor.batch_sampler, collate_fn=monitor.collate
    )
    for step, batch in enumerate(loader):
        fed = batch if tamper is None else tamper(step, batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = monitor.observe(EX["loss_fn"](model, fed))
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if nudge is not None:
            nudge(step, model)
    monitor.finish()
    chip.flush()
    chip.close()
    return TinyRun(workdir / "run", chip, maker_key())


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return lab_loop(tmp_path_factory.mktemp("honest"))


def _failed(verdict: Any) -> set[str]:
    return {c.name.split(":")[0] for c in verdict.checks if c.status is CheckStatus.FAIL}


def test_the_lab_loop_replays_bitwise(honest: TinyRun) -> None:
    """Every segment, replayed by computewatch's Trainer, equals the lab's loop exactly."""
    verdict = honest.verify(budget=1.0, exact=True)
    assert verdict.passed, _failed(verdict)
    verdict = honest.verify(budget=0.25)
    assert verdict.passed, _failed(verdict)
    # one chip in this cluster's pinned environment: exact by default (every
    # ε is 0, and no noise twin is replayed)
    eps = [c.metrics["epsilon"] for c in verdict.checks if "epsilon" in c.metrics]
    assert eps, [c.name for c in verdict.checks]
    assert set(eps) == {0.0}


def test_the_manifest_records_the_labs_optimizer(honest: TinyRun) -> None:
    manifest = json.loads(TranscriptPaths(honest.run_dir).manifest.read_text())
    opt = manifest["config"]["optimizer"]
    assert opt["class"] == "AdamW"
    assert opt["hyper"]["weight_decay"] == 0.01
    assert manifest["program"]["name"] == "loop-example"


def test_a_substituted_batch_is_caught(tmp_path: Path) -> None:
    def swap(step: int, batch: torch.Tensor) -> torch.Tensor:
        return batch.flip(0).roll(1, dims=1) if step == 9 else batch

    run = lab_loop(tmp_path, tamper=swap)
    verdict = run.verify(budget=1.0)
    assert not verdict.passed
    assert _failed(verdict) & {"segment", "snapshot"}


def test_a_one_ulp_change_to_the_weights_is_caught(tmp_path: Path) -> None:
    """Far below any measured tolerance: one weight moved to the next float32, once."""

    def nudge(step: int, model: torch.nn.Module) -> None:
        if step == 9:
            with torch.no_grad():
                w = next(model.parameters()).view(-1)
                w[0] = torch.nextafter(w[0], torch.tensor(float("inf")))

    run = lab_loop(tmp_path, nudge=nudge)
    verdict = run.verify(budget=1.0)
    assert not verdict.passed
    assert _failed(verdict) & {"segment", "snapshot"}
    distances = [
        float(c.metrics["distance"])
        for c in verdict.checks
        if c.status is CheckStatus.FAIL and "distance" in c.metrics
    ]
    assert distances, _failed(verdict)
    assert min(distances) < 1e-5  # the lie's whole size, caught because ε = 0


def test_a_relabelled_checkpoint_is_caught(honest: TinyRun, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(honest.run_dir, run_dir)
    paths = TranscriptPaths(run_dir)
    early = load_checkpoint(paths.checkpoint(6))
    save_checkpoint(  # checkpoint 6's state, labelled step 12
        paths.checkpoint(12),
        step=12,
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


def test_a_loader_off_the_contract_stops_the_run(tmp_path: Path) -> None:
    model = EX["build_model"](CONFIG)
    optimizer = torch.optim.SGD(model.parameters(), lr=CONFIG["lr"])
    monitor = Monitor(_spec(), model, optimizer, tmp_path / "run")
    other = EX["dataset"](CONFIG)
    other.data = other.data.roll(1, dims=1)  # the lab's loader reads other data
    loader: DataLoader[torch.Tensor] = DataLoader(
        other, batch_sampler=monitor.batch_sampler, collate_fn=monitor.collate
    )
    with pytest.raises(ParameterError, match=r"step 0 point 0: the loader's data differs"):
        next(iter(loader))


def test_a_schedule_off_the_contract_stops_the_run(tmp_path: Path) -> None:
    model = EX["build_model"](CONFIG)
    optimizer = torch.optim.SGD(model.parameters(), lr=CONFIG["lr"])
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    monitor = Monitor(_spec(), model, optimizer, tmp_path / "run")
    loader = DataLoader(
        EX["dataset"](CONFIG), batch_sampler=monitor.batch_sampler, collate_fn=monitor.collate
    )

    def train() -> None:
        for batch in loader:
            loss = monitor.observe(EX["loss_fn"](model, batch))
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            scheduler.step()

    with pytest.raises(ParameterError, match=r"step 1: param group 0 has lr 0\.0015"):
        train()


def test_objects_the_replay_cannot_rebuild_are_refused(tmp_path: Path) -> None:
    model = EX["build_model"](CONFIG)
    with pytest.raises(ParameterError, match=r"expected one of torch\.optim\.\{SGD, Adam, AdamW\}"):
        describe_optimizer(torch.optim.Adagrad(model.parameters()))
    groups: list[dict[str, Any]] = [
        {"params": [model.embed.weight], "weight_decay": 0.0},
        {"params": [p for n, p in model.named_parameters() if n != "embed.weight"]},
    ]
    with pytest.raises(ParameterError, match=r"param group 1: weight_decay = 0\.01"):
        describe_optimizer(torch.optim.AdamW(groups, weight_decay=0.01))
    partial = torch.optim.SGD(model.head.parameters(), lr=0.1)
    with pytest.raises(ParameterError, match=r"every model parameter once \(missing 'embed"):
        Monitor(_spec(), model, partial, tmp_path / "a")
    bigger = EX["build_model"]({**CONFIG, "width": 16})
    opt = torch.optim.SGD(bigger.parameters(), lr=0.1)
    with pytest.raises(ParameterError, match=r"parameter 0: the replay contract's model has"):
        Monitor(_spec(), bigger, opt, tmp_path / "b")
    with pytest.raises(ParameterError, match=r"accumulation 3: expected a power of two"):
        Monitor(_spec(batch_size=12), model, torch.optim.SGD(model.parameters()), tmp_path / "d",
                accumulation=3)  # fmt: skip
    with pytest.raises(ParameterError, match=r"world_size 2"):
        Monitor(_spec(world_size=2), model, torch.optim.SGD(model.parameters()), tmp_path / "c")


def test_finish_before_the_last_step_is_refused(tmp_path: Path) -> None:
    model = EX["build_model"](CONFIG)
    optimizer = torch.optim.SGD(model.parameters(), lr=CONFIG["lr"])
    monitor = Monitor(_spec(), model, optimizer, tmp_path / "run")
    with pytest.raises(ParameterError, match=r"finish: 0 optimizer steps done, the run has 24"):
        monitor.finish()


def test_a_step_without_an_observed_loss_or_past_the_run_is_refused(tmp_path: Path) -> None:
    model = EX["build_model"](CONFIG)
    optimizer = torch.optim.SGD(model.parameters(), lr=CONFIG["lr"])
    data = EX["dataset"](CONFIG)

    def one_step(monitor: Monitor, *, observe: bool = True) -> None:
        batch = monitor.collate([data[i] for i in next(iter(monitor.batch_sampler))])
        loss = EX["loss_fn"](model, batch)
        if observe:
            monitor.observe(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with pytest.raises(ParameterError, match=r"step 0: no loss observed"):
        one_step(Monitor(_spec(steps=1), model, optimizer, tmp_path / "a"), observe=False)
    monitor = Monitor(_spec(steps=1), model, optimizer, tmp_path / "b")
    one_step(monitor)
    monitor.finish()
    assert (tmp_path / "b" / "report.json").exists()
    with pytest.raises(ParameterError, match=r"micro-batch 1 is beyond the run's 1 steps"):
        monitor.collate([data[0]] * 8)
    monitor = Monitor(_spec(steps=1), model, optimizer, tmp_path / "c")
    one_step(monitor)
    with pytest.raises(ParameterError, match=r"optimizer step 1: the run has only 1 steps"):
        optimizer.step()


def test_contract_records_the_replay_cannot_read_are_refused() -> None:
    program = EX["PROGRAM"]
    params = list(EX["build_model"](CONFIG).parameters())
    with pytest.raises(FormatError, match=r"config field 'optimizer': expected"):
        program.build_optimizer(params, {})
    bad = {"optimizer": {"class": "LBFGS", "hyper": {}}}
    with pytest.raises(FormatError, match=r"optimizer.class': expected one of"):
        program.build_optimizer(params, bad)
    bad = {"optimizer": {"class": "SGD", "hyper": {"lr": 0.1, "nesterov": True}}}
    with pytest.raises(FormatError, match=r"optimizer.hyper': SGD refuses them"):
        program.build_optimizer(params, bad)
    with pytest.raises(FormatError, match=r"config field 'optimizer': missing"):
        program.learning_rate({}, 0)
    tensor_lr = torch.optim.SGD(params, lr=torch.tensor(0.1))
    with pytest.raises(ParameterError, match=r"hyperparameter 'lr': expected a number"):
        describe_optimizer(tensor_lr)


def test_a_step_is_recorded_at_the_next_step_or_on_flush(tmp_path: Path) -> None:
    """The step's state digest is hashed while the loop runs on; flush records it at once."""
    model = EX["build_model"](CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=CONFIG["lr"], weight_decay=0.01)
    monitor = Monitor(_spec(steps=6, checkpoint_every=3), model, optimizer, tmp_path / "run")
    paths = TranscriptPaths(tmp_path / "run")
    loader = DataLoader(
        EX["dataset"](CONFIG), batch_sampler=monitor.batch_sampler, collate_fn=monitor.collate
    )
    for step, batch in enumerate(loader):
        loss = monitor.observe(EX["loss_fn"](model, batch))
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        if step == 2:
            assert not paths.checkpoint(3).exists()  # step 2 waits for its digest
            monitor.flush()
            assert paths.checkpoint(3).exists()
            lines = paths.metrics.read_text().splitlines()
            assert [json.loads(line)["step"] for line in lines] == [0, 1, 2]
    monitor.finish()
    metrics = [json.loads(line) for line in paths.metrics.read_text().splitlines()]
    assert [m["step"] for m in metrics] == list(range(6))
    assert len({m["state"] for m in metrics}) == 6  # one commitment per step, all different
