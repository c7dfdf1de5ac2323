"""The replay contract of a lab's own training loop, built from its own pieces.

The trusted cluster replays a segment by running code (paper §5): it needs
the model and the loss, the optimizer, and the data points by index. A lab
that keeps its loop writes those as the functions it already has, in its
training script, and names them in a `LoopProgram`::

    PROGRAM = LoopProgram(build_model=build_model, loss=loss_fn, dataset=dataset)

`LoopProgram` is a `TrainingProgram`, so the transcript stores that script
and its hash as it stores any program, and the replay workers load it the
same way (the lab's loop sits under ``if __name__ == "__main__"``, which a
loaded program never runs). The optimizer is not written twice: `Monitor`
reads the lab's optimizer (`describe_optimizer`) into the run's
configuration under ``"optimizer"``, and `LoopProgram.build_optimizer`
builds the same class with the same hyperparameters from that record.

Example::

    >>> import torch
    >>> opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=1e-3)
    >>> spec = describe_optimizer(opt)
    >>> spec["class"], spec["hyper"]["lr"], spec["hyper"]["betas"]
    ('AdamW', 0.001, [0.9, 0.999])
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from computewatch.datacenter._program import TrainingProgram
from computewatch.errors import FormatError, ParameterError

if TYPE_CHECKING:
    import torch

__all__ = ["OPTIMIZER_CLASSES", "LoopProgram", "describe_optimizer"]

#: Optimizers a replay can rebuild: elementwise ones, whose step on the flat
#: vector equals their step on the separate parameters (ADR 0003, ADR 0031).
OPTIMIZER_CLASSES = ("SGD", "Adam", "AdamW")
#: Hyperparameters that do not say how to step (set by schedulers, not by the lab).
_NOT_HYPER = frozenset({"params", "initial_lr", "name"})


class Indexable(Protocol):
    """A data set as a replay reads it: a length and items by index."""

    def __len__(self) -> int:
        """How many points."""

    def __getitem__(self, index: int, /) -> Any:
        """Point `index` (a tensor)."""


ModelFn = Callable[[Mapping[str, Any]], "torch.nn.Module"]
LossFn = Callable[["torch.nn.Module", "torch.Tensor"], "torch.Tensor"]
DatasetFn = Callable[[Mapping[str, Any]], Indexable]
ScheduleFn = Callable[[Mapping[str, Any], int], float]


def _json_value(name: str, value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        return list(value)
    msg = (
        f"optimizer hyperparameter {name!r}: expected a number, flag or tuple of numbers, "
        f"got {type(value).__name__} (a replay rebuilds the optimizer from JSON)"
    )
    raise ParameterError(msg)


def describe_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The record a replay rebuilds `optimizer` from: its class and hyperparameters.

    Raises:
        ParameterError: a class the replay cannot rebuild, or param groups
            with different hyperparameters (the flat shard has one group).
    """
    cls = type(optimizer)
    if cls.__name__ not in OPTIMIZER_CLASSES or cls.__module__.split(".")[:2] != ["torch", "optim"]:
        msg = (
            f"optimizer {cls.__module__}.{cls.__qualname__}: expected one of torch.optim."
            f"{{{', '.join(OPTIMIZER_CLASSES)}}} (elementwise, so the replay's flat step equals it)"
        )
        raise ParameterError(msg)
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "params"}
    groups = optimizer.param_groups
    first = {k: v for k, v in groups[0].items() if k in accepted and k not in _NOT_HYPER}
    for i, group in enumerate(groups[1:], start=1):
        for key, value in first.items():
            if group.get(key) != value:
                msg = (
                    f"optimizer param group {i}: {key} = {group.get(key)!r}, group 0 has "
                    f"{value!r} (the replay steps one flat group: use equal hyperparameters)"
                )
                raise ParameterError(msg)
    return {
        "class": cls.__name__,
        "hyper": {k: _json_value(k, first[k]) for k in sorted(first)},
    }


def _build_optimizer(record: object, params: Sequence[torch.nn.Parameter]) -> torch.optim.Optimizer:
    import torch  # noqa: PLC0415

    if not isinstance(record, dict) or not isinstance(record.get("hyper"), dict):
        msg = "config field 'optimizer': expected {'class': ..., 'hyper': {...}}"
        raise FormatError(msg)
    name = record.get("class")
    if name not in OPTIMIZER_CLASSES:
        msg = f"config field 'optimizer.class': expected one of {OPTIMIZER_CLASSES}, got {name!r}"
        raise FormatError(msg)
    cls = getattr(torch.optim, str(name))
    hyper = {k: tuple(v) if isinstance(v, list) else v for k, v in record["hyper"].items()}
    try:
        optimizer: torch.optim.Optimizer = cls(list(params), **hyper)
    except (TypeError, ValueError) as e:
        msg = f"config field 'optimizer.hyper': {name} refuses them ({e})"
        raise FormatError(msg) from e
    return optimizer


class LoopProgram(TrainingProgram):
    """A `TrainingProgram` made of a lab's own model, loss and data functions.

    Args:
        build_model: ``build_model(config) -> nn.Module`` (its initial
            values are replaced by the precommitted seeded init).
        loss: ``loss(model, batch) -> scalar``, the mean loss on a batch of
            stacked data points: what the lab's loop computes.
        dataset: ``dataset(config) -> sequence of tensors``, indexable; item
            ``i`` is data point ``i`` exactly as the loop is fed it.
        learning_rate: ``learning_rate(config, step) -> float``; default the
            optimizer's own ``lr``, constant.
        flops_per_point: ``flops_per_point(config, n_params) -> float``;
            default 6 x parameters (one token per point).
        name: a short name for reports.
    """

    def __init__(
        self,
        *,
        build_model: ModelFn,
        loss: LossFn,
        dataset: DatasetFn,
        learning_rate: ScheduleFn | None = None,
        flops_per_point: Callable[[Mapping[str, Any], int], float] | None = None,
        name: str = "loop",
    ) -> None:
        """Hold the lab's functions (nothing is built until a run asks)."""
        self.name = name
        self._build_model = build_model
        self._loss = loss
        self._dataset = dataset
        self._learning_rate = learning_rate
        self._flops = flops_per_point
        self._data: dict[str, Indexable] = {}

    def build_model(self, config: Mapping[str, Any]) -> torch.nn.Module:
        """The lab's model for `config`."""
        return self._build_model(config)

    def build_optimizer(
        self, params: Sequence[torch.nn.Parameter], config: Mapping[str, Any]
    ) -> torch.optim.Optimizer:
        """The lab's optimizer class and hyperparameters (``config["optimizer"]``) over `params`."""
        return _build_optimizer(config.get("optimizer"), params)

    def data(self, config: Mapping[str, Any]) -> Indexable:
        """The lab's data set for `config` (built once per configuration)."""
        key = json.dumps(dict(config), sort_keys=True)
        if key not in self._data:
            self._data[key] = self._dataset(config)
        return self._data[key]

    def dataset_size(self, config: Mapping[str, Any]) -> int:
        """How many points the lab's data set has."""
        return len(self.data(config))

    def data_point(self, config: Mapping[str, Any], index: int) -> torch.Tensor:
        """Point `index` of the lab's data set (a tensor, as the loop is fed it)."""
        import torch  # noqa: PLC0415

        point = self.data(config)[index]
        if not isinstance(point, torch.Tensor):
            msg = f"data point {index}: expected a tensor, got {type(point).__name__}"
            raise ParameterError(msg)
        return point

    def loss(self, model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        """The lab's loss."""
        return self._loss(model, batch)

    def learning_rate(self, config: Mapping[str, Any], step: int) -> float:
        """The lab's schedule, or its optimizer's constant ``lr``."""
        if self._learning_rate is not None:
            return float(self._learning_rate(config, step))
        record = config.get("optimizer")
        if not isinstance(record, dict) or not isinstance(record.get("hyper"), dict):
            msg = "config field 'optimizer': missing (Monitor records the lab's optimizer there)"
            raise FormatError(msg)
        return float(record["hyper"]["lr"])

    def flops_per_point(self, config: Mapping[str, Any], n_params: int) -> float:
        """The lab's count, or 6 x parameters."""
        if self._flops is not None:
            return float(self._flops(config, n_params))
        return super().flops_per_point(config, n_params)
