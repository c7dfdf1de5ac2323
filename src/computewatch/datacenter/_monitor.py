"""Recording a lab's own training loop: attach to its model, optimizer and data.

`Monitor` records the transcript the trusted cluster verifies (the same
files as `train`, written by the same `Recorder`) while the loop stays the
lab's. It attaches at three points:

- the **model**: its parameters are moved into one flat float32 vector in
  place (`flatten_model`; the Parameter objects stay the ones the optimizer
  holds), so the chip registers and snapshots the live weights with no copy,
  and W_0 is written there from the precommitted seed;
- the **optimizer**: a step pre-hook checks the learning rate against the
  replay contract, a post-hook records the step (data record, metrics, the
  firmware's chance to snapshot, a checkpoint every `k` steps). The step's
  commitment to the weights and optimizer state is hashed on a thread while
  the loop runs the next forward and backward, which only read them; the
  step is recorded when the next optimizer step begins, before anything
  changes, or at once on `flush` (ADR 0040);
- the **data**: `batch_sampler` yields the precommitted order (pass it to
  the lab's ``DataLoader``), and `collate` stacks each micro-batch after
  checking every point against its committed hash, so a loader that feeds
  something else than the contract's data stops the run at once.

The loss value for the metrics comes from `observe` (it returns its
argument, so ``loss = monitor.observe(loss_fn(model, batch))``).

What the replay needs (the *replay contract*, docs/instrument.md, ADR 0031)
is the lab's script itself, naming its model, loss and data functions in a
`LoopProgram`; the optimizer is read from the lab's object.

Example::

    >>> from computewatch.datacenter import DataSchedule
    >>> order = CommittedBatches(DataSchedule(dataset_size=6, batch_size=4, steps=2, seed=1), 2)
    >>> len(order), [len(b) for b in order]
    (4, [2, 2, 2, 2])
    >>> monitor = Monitor(spec, model, optimizer, "runs/r1", chip=chip)  # doctest: +SKIP
    >>> loader = DataLoader(data, batch_sampler=monitor.batch_sampler,
    ...                     collate_fn=monitor.collate)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NoReturn

from computewatch.datacenter._contract import describe_optimizer
from computewatch.datacenter._data import point_hash
from computewatch.datacenter._determinism import set_determinism
from computewatch.datacenter._layout import FlatLayout, flatten_model, init_flat
from computewatch.datacenter._precision import autocast_for, autocast_name
from computewatch.datacenter._program import load_program
from computewatch.datacenter._recorder import Recorder
from computewatch.datacenter._trainer import StepResult
from computewatch.errors import ParameterError

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    import torch

    from computewatch.chip import Chip
    from computewatch.crypto import Digest
    from computewatch.datacenter._data import DataSchedule
    from computewatch.datacenter._determinism import Determinism
    from computewatch.datacenter._program import TrainingProgram
    from computewatch.datacenter._run import InitFn, RunSpec

__all__ = ["CommittedBatches", "Monitor"]


class CommittedBatches:
    """The precommitted data order as a ``DataLoader`` batch sampler.

    Yields, for every step from `start`, its global batch's indices cut into
    `accumulation` equal micro-batches, in order.
    """

    def __init__(self, schedule: DataSchedule, accumulation: int, start: int = 0) -> None:
        """The order of `schedule` from step `start`."""
        self.schedule = schedule
        self.accumulation = accumulation
        self.start = start

    def __iter__(self) -> Iterator[list[int]]:
        """Micro-batches of indices, step after step."""
        per = self.schedule.batch_size // self.accumulation
        for step in range(self.start, self.schedule.steps):
            idx = self.schedule.indices(step)
            for a in range(self.accumulation):
                yield idx[a * per : (a + 1) * per]

    def __len__(self) -> int:
        """Micro-batches left."""
        return (self.schedule.steps - self.start) * self.accumulation


class _Attached:
    """A lab's model and optimizer seen as the recorder's `TrainState` (one chip)."""

    def __init__(
        self,
        program: TrainingProgram,
        config: dict[str, Any],
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
    ) -> None:
        self.program = program
        self.config = config
        self.optimizer = optimizer
        self.params = [p for _, p in model.named_parameters()]
        self.names = [n for n, _ in model.named_parameters()]
        self.layout, self.flat = flatten_model(model)
        self.shard = self.flat  # one chip: its slice is all of it, live
        self.reduction = None  # the lab's loop sums gradients its own way (legacy replay order)
        self.start, self.stop = 0, self.layout.numel

    def _state_parts(self) -> tuple[dict[str, list[torch.Tensor]], dict[str, torch.Tensor]]:
        """The optimizer's per-parameter state tensors in flat order, and its scalars."""
        import torch  # noqa: PLC0415

        state = self.optimizer.state
        scalars: dict[str, torch.Tensor] = {}
        parts: dict[str, list[torch.Tensor]] = {}
        if not any(p in state for p in self.params):
            return parts, scalars
        for name, p in zip(self.names, self.params, strict=True):
            if p not in state:
                msg = (
                    f"parameter {name!r}: the optimizer never stepped it (no gradient); "
                    "the replay steps every parameter of the flat vector"
                )
                raise ParameterError(msg)
            for key, value in sorted(state[p].items()):
                if not isinstance(value, torch.Tensor):
                    continue  # None buffers (SGD without momentum): nothing to restore
                if value.shape == p.shape and p.ndim > 0:
                    parts.setdefault(key, []).append(value.detach())
                elif key not in scalars:
                    scalars[key] = value.detach()
        return parts, scalars

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        """The lab's per-parameter optimizer state laid out on the flat vector."""
        import torch  # noqa: PLC0415

        parts, scalars = self._state_parts()
        full = {key: torch.cat([c.reshape(-1) for c in chunks]) for key, chunks in parts.items()}
        full.update({key: value.clone() for key, value in scalars.items()})
        return dict(sorted(full.items())), [describe_optimizer(self.optimizer)["hyper"]]

    def state_digest(self) -> Digest:
        """The per-step commitment (ADR 0034), as a one-chip `Trainer` makes it.

        Each per-parameter state is hashed as the one flat vector a checkpoint
        holds, streamed part by part (`concat_leaf_hash`): nothing is copied.
        """
        from computewatch.datacenter._step_state import (  # noqa: PLC0415
            combine_slice_digests,
            concat_leaf_hash,
            leaf_hash,
            slice_digest_of,
        )

        parts, scalars = self._state_parts()
        digests = {key: concat_leaf_hash(chunks) for key, chunks in parts.items()}
        digests.update({key: leaf_hash(value) for key, value in scalars.items()})
        return combine_slice_digests([slice_digest_of(leaf_hash(self.flat.detach()), digests)])


def attach_contract(
    spec: RunSpec, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[Determinism, TrainingProgram, Digest, dict[str, Any]]:
    """Check a lab's model and optimizer against its replay contract; fix the numerics.

    Returns the determinism set, the loaded program, its code hash and the
    run's configuration with the lab's optimizer recorded in it.

    Raises:
        ParameterError: the optimizer does not hold exactly the model's
            parameters, or the contract's optimizer or model layout differs.
    """
    _covers(model, optimizer)
    determinism = set_determinism(spec.global_seed, spec.threads)
    program, code_hash = load_program(spec.program_path)
    config = dict(spec.config)
    record = describe_optimizer(optimizer)
    if config.setdefault("optimizer", record) != record:
        msg = "config field 'optimizer': differs from the attached optimizer's"
        raise ParameterError(msg)
    _same_layout(FlatLayout.from_model(program.build_model(config)), FlatLayout.from_model(model))
    return determinism, program, code_hash, config


def _same_layout(contract: FlatLayout, lab: FlatLayout) -> None:
    for i, (a, b) in enumerate(zip(contract.names, lab.names, strict=False)):
        if a != b or contract.shapes[i] != lab.shapes[i]:
            msg = (
                f"model parameter {i}: the replay contract's model has {a!r} "
                f"{list(contract.shapes[i])}, the attached model {b!r} {list(lab.shapes[i])}"
            )
            raise ParameterError(msg)
    if len(contract.names) != len(lab.names):
        msg = (
            f"model: the replay contract's model has {len(contract.names)} parameters, "
            f"the attached model {len(lab.names)}"
        )
        raise ParameterError(msg)


def _covers(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    held = [id(p) for g in optimizer.param_groups for p in g["params"]]
    params = {id(p): n for n, p in model.named_parameters()}
    if len(held) != len(set(held)) or set(held) != set(params):
        missing = [n for i, n in params.items() if i not in held]
        msg = "optimizer: expected to hold every model parameter once" + (
            f" (missing {missing[0]!r})" if missing else " (it holds others or duplicates)"
        )
        raise ParameterError(msg)


def _mismatch(
    step: int, first: int, points: Sequence[torch.Tensor], expected: Sequence[Digest]
) -> str:
    """Why a fed micro-batch is not the committed one ("" if it is)."""
    if len(points) != len(expected):
        return f"step {step}: {len(points)} points fed, {len(expected)} committed"
    for j, (point, digest) in enumerate(zip(points, expected, strict=True)):
        got = point_hash(point)
        if got != digest:
            return (
                f"step {step} point {first + j}: the loader's data differs from the replay "
                f"contract's (expected {digest.hex[:12]}..., got {got.hex[:12]}...)"
            )
    return ""


class Monitor:
    """Records a lab's own one-chip training loop as a verifiable transcript."""

    def __init__(
        self,
        spec: RunSpec,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        run_dir: str | Path,
        *,
        chip: Chip | None = None,
        accumulation: int = 1,
        init: InitFn = init_flat,
    ) -> None:
        """Attach to `model` and `optimizer` and commit the run (before the lab's first step).

        Fixes the run's numerics first (`set_determinism` with the spec's
        global seed and thread count, recorded in the manifest).

        Args:
            spec: the run; ``spec.program_path`` is the lab's script holding
                the `LoopProgram` named ``PROGRAM`` (the replay contract).
            model: the lab's model (float32 parameters, none stepped yet).
            optimizer: the lab's optimizer over exactly the model's parameters.
            run_dir: the transcript folder.
            chip: this process's chip (None records unmonitored).
            accumulation: micro-batches per optimizer step (the loop sums their
                gradients, each micro-batch's mean loss divided by it, as
                HF's Trainer does; the replay cuts each batch the same way).
            init: W_0 from the precommitted seed (a seam for the attack corpus).

        Raises:
            ParameterError: the lab's objects and its replay contract disagree
                (model layout, optimizer), or a setting the replay cannot meet.
        """
        if spec.world_size != 1:
            msg = f"world_size {spec.world_size}: Monitor records one-chip loops"
            raise ParameterError(msg)
        if accumulation < 1 or spec.batch_size % accumulation:
            msg = f"accumulation {accumulation}: expected a divisor of batch_size {spec.batch_size}"
            raise ParameterError(msg)
        if accumulation & (accumulation - 1):
            # the loop sums g_i / A, the replay averages (sum g_i) / A: equal to the
            # bit only when dividing by A is exact (measured: A = 3 differs by 3e-6)
            msg = f"accumulation {accumulation}: expected a power of two (ADR 0032)"
            raise ParameterError(msg)
        autocast_name(spec.config)  # a precision the replay can meet
        determinism, program, code_hash, config = attach_contract(spec, model, optimizer)
        self.spec = dataclasses.replace(spec, config=config)
        self.accumulation = accumulation
        self.state = _Attached(program, config, model, optimizer)
        self.recorder = Recorder(
            self.spec,
            run_dir,
            self.state,
            chip=chip,
            chip_serials=[str(chip.serial)] if chip is not None else [],
            determinism=determinism,
            code_hash=code_hash,
            init=init,
            accumulation=accumulation,
        )
        self.recorder.begin()
        self.step = 0
        self._fed = 0
        self._losses: list[float] = []
        self._before = self.state.flat.detach().clone()  # W_0: the weights before step 0
        self._t_last = time.perf_counter()
        self.recording_seconds = 0.0
        self._hasher = ThreadPoolExecutor(1, thread_name_prefix="computewatch-step-state")
        self._pending: tuple[int, float, float, float, float] | None = None
        self._digest: Future[tuple[float, Digest]] | None = None
        self._hooks = [
            optimizer.register_step_pre_hook(self._pre_step),
            optimizer.register_step_post_hook(self._post_step),
        ]

    # -- data ----------------------------------------------------------------

    @property
    def batch_sampler(self) -> CommittedBatches:
        """The precommitted order, for ``DataLoader(batch_sampler=...)``."""
        return CommittedBatches(self.recorder.schedule, self.accumulation)

    def collate(self, points: Sequence[torch.Tensor]) -> torch.Tensor:
        """Stack a micro-batch after checking each point against its committed hash.

        Raises:
            ParameterError: a point differs from the contract's data (the
                loader and the replay contract disagree), or called in a
                loader worker (the check counts micro-batches in order:
                use ``num_workers=0``).
        """
        import torch  # noqa: PLC0415
        import torch.utils.data  # noqa: PLC0415

        if torch.utils.data.get_worker_info() is not None:
            msg = "collate: called in a DataLoader worker; use num_workers=0"
            raise ParameterError(msg)
        step, part = divmod(self._fed, self.accumulation)
        if step >= self.spec.steps:
            self._stop(
                f"collate: micro-batch {self._fed} is beyond the run's {self.spec.steps} steps"
            )
        per = self.spec.batch_size // self.accumulation
        expected = self.recorder.planned_points(step)[part * per : (part + 1) * per]
        problem = _mismatch(step, part * per, points, expected)
        if problem:
            self._stop(problem)
        self._fed += 1
        return torch.stack(list(points))

    # -- the step --------------------------------------------------------------

    def observe(self, loss: torch.Tensor) -> torch.Tensor:
        """Note a micro-batch's mean loss for the step's metrics; return it unchanged.

        The step's recorded loss is the mean of what was observed since the
        last step (observe the micro-batch's own mean, before any scaling).
        """
        self._losses.append(float(loss.detach().item()))
        return loss

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The run's declared autocast (``config["autocast"]``), for the loop's forward and loss.

        ``with monitor.autocast(): loss = loss_fn(model, batch)`` computes the
        loss as the replay will; a no-op for float32 runs.
        """
        return autocast_for(self.spec.config)

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        del args, kwargs
        self.flush()
        if self.step >= self.spec.steps:
            self._stop(f"optimizer step {self.step}: the run has only {self.spec.steps} steps")
        lr = self.state.program.learning_rate(self.state.config, self.step)
        for i, group in enumerate(optimizer.param_groups):
            if group["lr"] != lr:
                self._stop(
                    f"step {self.step}: param group {i} has lr {group['lr']!r}, the replay "
                    f"contract's schedule gives {lr!r}"
                )

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        del args, kwargs
        t_record = time.perf_counter()
        if not self._losses:
            self._stop(f"step {self.step}: no loss observed (loss = monitor.observe(loss))")
        import torch  # noqa: PLC0415

        grads = [p.grad for p in self.state.params if p.grad is not None]
        grad_norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
        loss = sum(self._losses) / len(self._losses)
        lr = float(optimizer.param_groups[0]["lr"])
        # the update norm and the step's commitment (a hash of the weights and the
        # optimizer state) are computed on a thread while the loop runs the next
        # forward and backward, which only read them; the next optimizer step
        # waits for it before anything changes (ADR 0040)
        self._pending = (self.step, loss, lr, grad_norm, t_record - self._t_last)
        self._digest = self._hasher.submit(self._after_step)
        self._losses.clear()
        self.step += 1
        self._t_last = time.perf_counter()
        self.recording_seconds += self._t_last - t_record

    # -- after the loop --------------------------------------------------------

    def _after_step(self) -> tuple[float, Digest]:
        """The update norm against the weights before the step, then the step's digest."""
        import torch  # noqa: PLC0415

        flat = self.state.flat.detach()
        update = float(torch.linalg.vector_norm(self._before.sub_(flat)))  # in place
        self._before.copy_(flat)  # the weights before the next step
        return update, self.state.state_digest()

    def flush(self) -> None:
        """Record the last optimizer step now: its metrics, chip snapshot and checkpoint.

        Otherwise a step is recorded when the next one begins (its state digest
        is hashed meanwhile); call this before reading the transcript mid-run.
        """
        if self._pending is None or self._digest is None:
            return
        t0 = time.perf_counter()
        step, loss, lr, grad_norm, seconds = self._pending
        self._pending = None
        update, digest = self._digest.result()
        result = StepResult(loss=loss, lr=lr, update_norm=update, grad_norm=grad_norm)
        self.recorder.record_step(step, result, seconds, digest)
        self.recording_seconds += time.perf_counter() - t0

    def close(self) -> None:
        """Record the last step, detach, close the transcript's line files (idempotent)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        try:
            self.flush()
        finally:
            self._hasher.shutdown()
            self.recorder.close()

    def _stop(self, msg: str) -> NoReturn:
        """The loop left the replay contract: stop recording, say why."""
        self.close()
        raise ParameterError(msg)

    def finish(self) -> dict[str, Any]:
        """Detach, write the chip's claims, the commitment and the Prover report.

        Raises:
            ParameterError: the loop stopped before the run's last step.
        """
        if self.step != self.spec.steps:
            self._stop(f"finish: {self.step} optimizer steps done, the run has {self.spec.steps}")
        self.close()
        self.recorder.write_chip_claims()
        return self.recorder.finish()
