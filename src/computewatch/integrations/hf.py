"""Recording a Hugging Face ``transformers.Trainer`` run (the ``hf`` extra).

`MonitorCallback` is a ``TrainerCallback`` that starts a `Monitor` when the
Trainer begins (its model and optimizer then exist) and finishes it when
the Trainer ends. A callback never sees a batch, so the data goes through
two objects the lab hands the Trainer itself:

- `MonitorCallback.train_dataset` puts the lab's data set in the
  precommitted order (read sequentially: ``train_sampling_strategy=
  "sequential"``), one micro-batch after the other;
- `MonitorCallback.collate` is the ``data_collator``: it checks every point
  against its committed hash and makes the model's inputs.

The weights are recorded after each optimizer step (the Monitor's step
hooks on the optimizer inside accelerate's wrapper), the loss from the
model's output (a forward hook), and a transcript checkpoint is taken every
``save_steps`` (a save at a step without one stops the run). The schedule
the Trainer builds is recorded in the run's configuration (``"hf_schedule"``),
and `hf_learning_rate` recomputes it with transformers' own ``get_scheduler``
for the replay, so the contract's learning rate is the Trainer's to the bit.

Example::

    >>> schedule = {"name": "linear", "lr": 1e-3, "warmup_steps": 2, "steps": 10}
    >>> [round(hf_learning_rate({"hf_schedule": schedule}, s), 6) for s in (0, 1, 2, 9)]
    [0.0, 0.0005, 0.001, 0.000125]
    >>> callback = MonitorCallback(spec, "runs/r1", chip=chip)  # doctest: +SKIP
    >>> trainer = Trainer(model=model, args=args, callbacks=[callback],
    ...                   train_dataset=callback.train_dataset(data),
    ...                   data_collator=callback.collate)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import TrainerCallback

from computewatch.datacenter import DataSchedule, Monitor, TranscriptPaths, read_index
from computewatch.errors import ParameterError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from transformers import TrainerControl, TrainerState, TrainingArguments

    from computewatch.chip import Chip
    from computewatch.datacenter import RunSpec
    from computewatch.datacenter._contract import Indexable

__all__ = [
    "CommittedOrder",
    "MonitorCallback",
    "causal_lm_inputs",
    "causal_lm_loss",
    "hf_learning_rate",
]


def causal_lm_inputs(batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """A causal LM's inputs from stacked token windows (the labels are the inputs)."""
    return {"input_ids": batch, "labels": batch}


def causal_lm_loss(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """The mean loss the Trainer computes for a causal LM on `batch` (the replay's loss)."""
    loss: torch.Tensor = model(**causal_lm_inputs(batch)).loss
    return loss


@lru_cache(maxsize=8)
def _rates(name: str, lr: float, warmup: int, steps: int) -> tuple[float, ...]:
    from transformers import get_scheduler  # noqa: PLC0415

    dummy = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = get_scheduler(name, dummy, num_warmup_steps=warmup, num_training_steps=steps)
    out = []
    for _ in range(steps):
        out.append(float(dummy.param_groups[0]["lr"]))
        dummy.step()
        scheduler.step()
    return tuple(out)


def hf_learning_rate(config: Mapping[str, Any], step: int) -> float:
    """The Trainer's learning rate at `step`, from ``config["hf_schedule"]``.

    Recomputed with transformers' ``get_scheduler`` exactly as the Trainer
    built it (name, base rate, warm-up steps, training steps).
    """
    s = config["hf_schedule"]
    return _rates(str(s["name"]), float(s["lr"]), int(s["warmup_steps"]), int(s["steps"]))[step]


class CommittedOrder(torch.utils.data.Dataset[Any]):
    """A data set in the precommitted order: item ``p`` is step ``p // B``'s point ``p % B``."""

    def __init__(self, data: Indexable, schedule: DataSchedule) -> None:
        """`data` in the order of `schedule`."""
        self.data = data
        self.schedule = schedule
        self._step = -1
        self._indices: list[int] = []

    def __len__(self) -> int:
        """Every point of every step."""
        return self.schedule.steps * self.schedule.batch_size

    def __getitem__(self, position: int) -> Any:
        """The point at `position` of the run's order."""
        step, j = divmod(position, self.schedule.batch_size)
        if step != self._step:
            self._step, self._indices = step, self.schedule.indices(step)
        return self.data[self._indices[j]]


def _check_args(args: TrainingArguments, spec: RunSpec) -> int:
    """The Trainer settings the replay can meet; returns the accumulation steps."""
    accumulation = int(args.gradient_accumulation_steps)
    problems = {
        "max_grad_norm": (not args.max_grad_norm, "0 (the replay does not clip gradients)"),
        "train_sampling_strategy": (
            str(args.train_sampling_strategy) == "sequential",
            '"sequential" (the order is the committed one)',
        ),
        "per_device_train_batch_size": (
            args.per_device_train_batch_size * accumulation == spec.batch_size,
            f"batch_size {spec.batch_size} / gradient_accumulation_steps {accumulation}",
        ),
        "max_steps": (args.max_steps == spec.steps, f"the run's {spec.steps} steps"),
        "dataloader_num_workers": (args.dataloader_num_workers == 0, "0"),
        "fp16": (not args.fp16, "off (its loss scaler's skipped steps are not replayed; use bf16)"),
        "world_size": (args.world_size == 1, "1 (one chip)"),
    }
    if args.save_strategy == "steps":
        problems["save_steps"] = (
            args.save_steps == spec.checkpoint_every,
            f"the transcript's checkpoint interval {spec.checkpoint_every}",
        )
    for name, (ok, expected) in problems.items():
        if not ok:
            msg = f"TrainingArguments.{name} = {getattr(args, name, None)!r}: expected {expected}"
            raise ParameterError(msg)
    return accumulation


class MonitorCallback(TrainerCallback):
    """Records a ``transformers.Trainer`` run as a verifiable transcript (one chip).

    Args:
        spec: the run (``program_path`` is the lab's script holding the
            `LoopProgram` ``PROGRAM``; ``batch_size`` is the global batch:
            per-device batch x accumulation steps).
        run_dir: the transcript folder.
        chip: this process's chip.
        inputs: the model's inputs from a stacked micro-batch (default
            `causal_lm_inputs`).
    """

    def __init__(
        self,
        spec: RunSpec,
        run_dir: str | Path,
        *,
        chip: Chip | None = None,
        inputs: Callable[[torch.Tensor], dict[str, torch.Tensor]] = causal_lm_inputs,
    ) -> None:
        """Prepare; the run is committed when the Trainer begins."""
        self.spec = spec
        self.run_dir = Path(run_dir)
        self.chip = chip
        self.inputs = inputs
        self.monitor: Monitor | None = None
        self.report: dict[str, Any] | None = None
        self._schedule: DataSchedule | None = None
        self._hook: torch.utils.hooks.RemovableHandle | None = None
        self._accumulation = 1

    def train_dataset(self, data: Indexable) -> CommittedOrder:
        """The lab's data set in the run's committed order (for ``train_dataset=``)."""
        self._schedule = DataSchedule(
            dataset_size=len(data),
            batch_size=self.spec.batch_size,
            steps=self.spec.steps,
            seed=self.spec.data_seed,
        )
        return CommittedOrder(data, self._schedule)

    def collate(self, points: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The ``data_collator``: check each point against its commitment, make the inputs."""
        if self.monitor is None:
            msg = "collate: called before the Trainer began (MonitorCallback not in callbacks?)"
            raise ParameterError(msg)
        return self.inputs(self.monitor.collate(points))

    def _observe(
        self, module: torch.nn.Module, args: Any, kwargs: dict[str, Any], output: Any
    ) -> None:
        del args
        loss = getattr(output, "loss", None)
        if self.monitor is None or loss is None or not module.training:
            return
        if not torch.is_grad_enabled():
            return
        # a loss normalised by the step's token count is this micro-batch's share
        items = kwargs.get("num_items_in_batch")
        labels = kwargs.get("labels")
        if items is not None and isinstance(labels, torch.Tensor):
            predicted = self._accumulation * int(labels[..., 1:].ne(-100).sum())
            if int(items) != predicted:
                self.monitor.close()
                msg = (
                    f"step {self.monitor.step}: the Trainer divides the loss by {int(items)} "
                    f"tokens, the contract's mean by the {predicted} predicted ones "
                    '(set model.loss_type = "ForCausalLM")'
                )
                raise ParameterError(msg)
        share = items is not None
        self.monitor.observe(loss.detach() * self._accumulation if share else loss.detach())

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        """Check the settings, record the schedule, attach the Monitor, commit the run."""
        del state, control
        self._accumulation = _check_args(args, self.spec)
        model, optimizer = kwargs["model"], kwargs["optimizer"]
        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper
        config = dict(self.spec.config)
        config["hf_schedule"] = {
            "name": str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type)),
            "lr": float(args.learning_rate),
            "warmup_steps": int(args.get_warmup_steps(self.spec.steps)),
            "steps": self.spec.steps,
        }
        declared = config.get("autocast")
        if bool(args.bf16) != (declared == "bfloat16"):
            msg = (
                f"TrainingArguments.bf16 = {args.bf16!r}: the run's config declares autocast "
                f"{declared!r} (set config['autocast'] = 'bfloat16' exactly when bf16=True)"
            )
            raise ParameterError(msg)
        if args.lr_scheduler_kwargs:
            msg = "TrainingArguments.lr_scheduler_kwargs: expected none (not recorded yet)"
            raise ParameterError(msg)
        spec = dataclasses.replace(self.spec, config=config)
        self.monitor = Monitor(
            spec, model, inner, self.run_dir, chip=self.chip, accumulation=self._accumulation
        )
        if self._schedule is not None and self._schedule != self.monitor.recorder.schedule:
            self.monitor.close()
            msg = (
                "train_dataset: its committed order differs from the replay contract's "
                f"(data set of {self._schedule.dataset_size} points, the contract has "
                f"{self.monitor.recorder.schedule.dataset_size})"
            )
            raise ParameterError(msg)
        self._hook = model.register_forward_hook(self._observe, with_kwargs=True)

    def on_save(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        """The Trainer saved: the transcript must hold a checkpoint of that step."""
        del args, control, kwargs
        if self.monitor is not None:
            self.monitor.flush()  # the step just taken, checkpoint included
        steps = {e.step for e in read_index(TranscriptPaths(self.run_dir))}
        if state.global_step not in steps:
            msg = f"save at step {state.global_step}: the transcript has no checkpoint there"
            raise ParameterError(msg)

    def on_train_end(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> None:
        """Finish the transcript: the chip's claims, the commitment, the report."""
        del args, state, control, kwargs
        if self._hook is not None:
            self._hook.remove()
        if self.monitor is not None:
            self.report = self.monitor.finish()
