"""The training step shared by training and replay (flat ZeRO-style shards).

Every chip of a run (one process of a `torch.distributed` group, or the only
process) holds a full replica of the model for compute, but owns only its
contiguous slice ω of the flat weights: its optimizer updates ω alone (with
its slice of the optimizer state), after the gradients are averaged across
chips; the updated slices are then all-gathered into every replica. This is
ZeRO stage 1 over one flat parameter: the paper's weight shard, one per chip.

Because the optimizers used are elementwise (SGD, Adam, AdamW), a step on
`R` chips equals, up to floating-point reduction order, a step of a single
process on the full vector with the global batch. A verifier therefore
replays any segment in one process (`Trainer` with `world_size=1`) and reads
chip `r`'s ω' from the slice `shard_range(r, R, N)` of the result.

Example::

    >>> trainer = Trainer(program, config, init_seed=seed)  # doctest: +SKIP
    >>> result = trainer.step(0, batch)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.datacenter._layout import flatten_model, init_flat, shard_range
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import torch

    from computewatch.datacenter._checkpoint import Checkpoint
    from computewatch.datacenter._program import TrainingProgram

__all__ = ["StepResult", "Trainer"]


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one optimizer step reports (global values, equal on all chips).

    Attributes:
        loss: mean loss over the global batch, before the update.
        lr: learning rate used.
        update_norm: L2 norm of the update to the full flat weights.
        grad_norm: L2 norm of the averaged gradient.
    """

    loss: float
    lr: float
    update_norm: float
    grad_norm: float


class Trainer:
    """A model, its flat weights, this chip's shard and its optimizer."""

    def __init__(
        self,
        program: TrainingProgram,
        config: Mapping[str, Any],
        *,
        init_seed: int | None = None,
        init_std: float = 0.02,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        """Build the model from `program` and `config`.

        With `init_seed`, W_0 is the seeded initialization (`init_flat`);
        otherwise load a checkpoint before training.
        """
        import torch  # noqa: PLC0415

        self.program = program
        self.config = dict(config)
        self.rank = rank
        self.world_size = world_size
        self.model = program.build_model(self.config)
        self.layout, self.flat = flatten_model(self.model)
        if init_seed is not None:
            with torch.no_grad():
                self.flat.copy_(init_flat(self.layout, init_seed, std=init_std))
        self.start, self.stop = shard_range(rank, world_size, self.layout.numel)
        self.shard = torch.nn.Parameter(self.flat[self.start : self.stop].clone())
        self.optimizer = program.build_optimizer([self.shard], self.config)
        self._params = [p for _, p in self.model.named_parameters()]
        self._max_shard = math.ceil(self.layout.numel / world_size)

    # -- the step ----------------------------------------------------------

    def step(
        self, step: int, batch: torch.Tensor, *, micro_batches: int = 1, reverse_sum: bool = False
    ) -> StepResult:
        """One optimizer step on this chip's part of the global batch.

        With `micro_batches` = R on a single process, the batch is cut into R
        equal parts whose gradients are computed separately and averaged in
        order, as R chips would before their all-reduce: a replay of an
        R-chip run then differs from it only by the all-reduce's summation
        order. `reverse_sum` adds the micro-batch gradients in the opposite
        order (the verifier's way to measure that rounding noise).
        """
        import torch  # noqa: PLC0415
        import torch.distributed as dist  # noqa: PLC0415

        lr = self.program.learning_rate(self.config, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        parts: list[torch.Tensor] = []
        total_loss = torch.zeros(1)
        for part in batch.chunk(micro_batches):
            self.model.zero_grad(set_to_none=True)
            loss = self.program.loss(self.model, part)
            loss.backward()  # type: ignore[no-untyped-call]
            grads = [
                p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel())
                for p in self._params
            ]
            parts.append(torch.cat(grads))
            total_loss += loss.detach().reshape(1)
        flat_grad = torch.zeros(self.layout.numel)
        for g in reversed(parts) if reverse_sum else parts:
            flat_grad += g
        if micro_batches > 1:
            flat_grad.div_(micro_batches)
            total_loss.div_(micro_batches)
        loss_value = total_loss
        if self.world_size > 1:
            dist.all_reduce(flat_grad)
            flat_grad.div_(self.world_size)
            dist.all_reduce(loss_value)
            loss_value.div_(self.world_size)
        before = self.shard.detach().clone()
        self.shard.grad = flat_grad[self.start : self.stop].clone()
        self.optimizer.step()
        with torch.no_grad():
            sq = (self.shard.detach() - before).square().sum().reshape(1)
            if self.world_size > 1:
                dist.all_reduce(sq)
            self._gather_weights()
        return StepResult(
            loss=float(loss_value.item()),
            lr=lr,
            update_norm=math.sqrt(float(sq.item())),
            grad_norm=float(flat_grad.norm().item()),
        )

    def _gather(self, local: torch.Tensor, out: torch.Tensor) -> None:
        """All-gather every chip's slice of a flat vector into `out`."""
        import torch  # noqa: PLC0415
        import torch.distributed as dist  # noqa: PLC0415

        if self.world_size == 1:
            out.copy_(local)
            return
        padded = torch.zeros(self._max_shard, dtype=local.dtype)
        padded[: local.numel()].copy_(local)
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded)
        for r, part in enumerate(parts):
            a, b = shard_range(r, self.world_size, self.layout.numel)
            out[a:b].copy_(part[: b - a])

    def _gather_weights(self) -> None:
        self._gather(self.shard.detach(), self.flat)

    # -- state -------------------------------------------------------------

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        """The optimizer state over the *full* flat vector, and its groups.

        Collective: every chip must call it (the shards are all-gathered).
        """
        import torch  # noqa: PLC0415

        sd = self.optimizer.state_dict()
        per_param = sd["state"].get(0, {})
        full: dict[str, torch.Tensor] = {}
        n_local = self.stop - self.start
        for name in sorted(per_param):
            value = per_param[name]
            if not isinstance(value, torch.Tensor):
                value = torch.tensor(value)
            if value.numel() == n_local and value.ndim == 1:
                out = torch.empty(self.layout.numel, dtype=value.dtype)
                self._gather(value.detach(), out)
                full[name] = out
            else:
                full[name] = value.detach().clone()
        groups = [{k: v for k, v in g.items() if k != "params"} for g in sd["param_groups"]]
        return full, groups

    def load(self, ckpt: Checkpoint) -> None:
        """Set weights and optimizer state from a (full) checkpoint."""
        import torch  # noqa: PLC0415

        if ckpt.weights.numel() != self.layout.numel:
            msg = (
                f"checkpoint step {ckpt.step}: {ckpt.weights.numel()} weights, "
                f"the model has {self.layout.numel}"
            )
            raise FormatError(msg)
        with torch.no_grad():
            self.flat.copy_(ckpt.weights)
            self.shard.copy_(self.flat[self.start : self.stop])
        state: dict[str, torch.Tensor] = {}
        for name, value in ckpt.optimizer_state.items():
            if value.ndim == 1 and value.numel() == self.layout.numel:
                state[name] = value[self.start : self.stop].clone()
            else:
                state[name] = value.clone()
        groups = [dict(g, params=[0]) for g in ckpt.param_groups]
        sd = {"state": {0: state} if state else {}, "param_groups": groups}
        try:
            self.optimizer.load_state_dict(sd)
        except (ValueError, KeyError, RuntimeError) as e:
            msg = f"checkpoint step {ckpt.step}: optimizer state does not fit ({e})"
            raise FormatError(msg) from e
        torch.set_rng_state(ckpt.rng_state)
