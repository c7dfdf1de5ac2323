"""The training step shared by training and replay (flat ZeRO-style shards).

Every chip of a run (one process of a `torch.distributed` group, or the only
process) holds a full replica of the model for compute, but owns only its
contiguous slice ω of the flat weights: its optimizer updates ω alone (with
its slice of the optimizer state), after the gradients are averaged across
chips; the updated slices are then all-gathered into every replica. This is
ZeRO stage 1 over one flat parameter: the paper's weight shard, one per chip.

Because the optimizers used are elementwise (SGD, Adam, AdamW), a step on
`R` chips equals a step of a single process on the full vector with the
global batch. With a `Reduction` (every run recorded since ADR 0033) it
equals it bitwise: the gradients of the run's `M` micro-shards are summed by
the same fixed tree on every chip and in the replay, and a replay built with
``replay_shards=R`` steps each chip's slice as its own parameter, as the
chips did. Without one (older transcripts) the chips' all-reduce order
remains, and a replay is only close. A verifier replays any segment in one
process (`Trainer` with `world_size=1`) and reads chip `r`'s ω' from the
slice `shard_range(r, R, N)` of the result.

Example::

    >>> trainer = Trainer(program, config, init_seed=seed)  # doctest: +SKIP
    >>> result = trainer.step(0, batch)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.datacenter._layout import flatten_model, init_flat, shard_range
from computewatch.datacenter._precision import autocast_for, autocast_name
from computewatch.datacenter._reduction import tree_sum
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import torch

    from computewatch.crypto import Digest
    from computewatch.datacenter._checkpoint import Checkpoint
    from computewatch.datacenter._program import TrainingProgram
    from computewatch.datacenter._reduction import Reduction

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
        reduction: Reduction | None = None,
        replay_shards: int = 1,
        replay_slices: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        """Build the model from `program` and `config`.

        With `init_seed`, W_0 is the seeded initialization (`init_flat`);
        otherwise load a checkpoint before training. With `reduction`, the
        gradients are summed in its fixed tree order (bitwise replayable);
        `replay_shards` = R (one process only) steps the R chips' slices
        separately, as an R-chip run of that reduction did; `replay_slices`
        gives those slices explicitly, in flat order (an FSDP2 run's pieces,
        one per chip and parameter, ADR 0039).
        """
        import torch  # noqa: PLC0415

        self.program = program
        self.config = dict(config)
        autocast_name(self.config)  # a declared precision the replay can meet, or refuse
        self.rank = rank
        self.world_size = world_size
        self.reduction = reduction
        many = replay_shards != 1 or replay_slices is not None
        if many and (world_size != 1 or reduction is None):
            msg = "replay_shards: only a one-process replay of a tree reduction steps per chip"
            raise FormatError(msg)
        self.model = program.build_model(self.config)
        self.layout, self.flat = flatten_model(self.model)
        if init_seed is not None:
            with torch.no_grad():
                self.flat.copy_(init_flat(self.layout, init_seed, std=init_std))
        self.start, self.stop = shard_range(rank, world_size, self.layout.numel)
        # the slices this process steps: its own, or every chip's in a replay
        if replay_slices is not None:
            self.slices = [(int(a), int(b)) for a, b in replay_slices]
        elif replay_shards > 1:
            self.slices = [
                shard_range(r, replay_shards, self.layout.numel) for r in range(replay_shards)
            ]
        else:
            self.slices = [(self.start, self.stop)]
        self.shards = [torch.nn.Parameter(self.flat[a:b].clone()) for a, b in self.slices]
        self.shard = self.shards[0]
        self.optimizer = program.build_optimizer(list(self.shards), self.config)
        self._params = [p for _, p in self.model.named_parameters()]
        self._max_shard = math.ceil(self.layout.numel / world_size)

    # -- the step ----------------------------------------------------------

    def step(
        self, step: int, batch: torch.Tensor, *, micro_batches: int = 1, reverse_sum: bool = False
    ) -> StepResult:
        """One optimizer step on this chip's part of the global batch.

        With a `reduction` the gradient is the tree-ordered mean over the
        run's micro-shards and `micro_batches`, `reverse_sum` are ignored.
        Without one (the legacy order), with `micro_batches` = R on a single
        process, the batch is cut into R equal parts whose gradients are
        computed separately and averaged in order, as R chips would before
        their all-reduce: a replay of an
        R-chip run then differs from it only by the all-reduce's summation
        order. `reverse_sum` adds the micro-batch gradients in the opposite
        order (the verifier's way to measure that rounding noise).
        """
        import torch  # noqa: PLC0415

        lr = self.program.learning_rate(self.config, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.reduction is not None:
            flat_grad, loss_value = self._tree_gradient(batch)
        else:
            flat_grad, loss_value = self._legacy_gradient(
                batch, micro_batches, reverse_sum=reverse_sum
            )
        squares = []
        for shard, (a, b) in zip(self.shards, self.slices, strict=True):
            before = shard.detach().clone()
            shard.grad = flat_grad[a:b].clone()
            squares.append((before, shard))
        self.optimizer.step()
        with torch.no_grad():
            sq = torch.cat([(s.detach() - b).square().sum().reshape(1) for b, s in squares])
            sq = self._all_ranks(sq)
            self._gather_weights()
        return StepResult(
            loss=float(loss_value.item()),
            lr=lr,
            update_norm=math.sqrt(float(sum(float(x) for x in sq))),
            grad_norm=float(flat_grad.norm().item()),
        )

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        """The program's loss of the model on `batch`, under the run's autocast (if any)."""
        with autocast_for(self.config, batch.device.type):
            return self.program.loss(self.model, batch)

    def _micro_gradient(self, part: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The flat gradient and the loss of one micro-batch."""
        import torch  # noqa: PLC0415

        self.model.zero_grad(set_to_none=True)
        loss = self.loss(part)
        loss.backward()  # type: ignore[no-untyped-call]
        grads = [
            p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel())
            for p in self._params
        ]
        return torch.cat(grads), loss.detach().reshape(1)

    def _tree_gradient(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean gradient and loss over the run's micro-shards, in the fixed tree order.

        This chip computes its ``M/R`` micro-shards (its part of the global
        batch cut into equal contiguous parts), gathers every chip's in rank
        order (= micro-shard order) and sums them with `tree_sum`.
        """
        import torch  # noqa: PLC0415

        assert self.reduction is not None
        m = self.reduction.micro_shards
        local = m // self.world_size
        if local < 1 or batch.shape[0] % local:
            msg = f"batch of {batch.shape[0]} points: cannot cut into {local} micro-shards"
            raise FormatError(msg)
        # each micro-shard in fresh storage: where its rows sit in memory picks the matmul
        # kernel's path, and a chip's micro-shard is its own tensor (ADR 0039: measured,
        # a 4-chip FSDP2 run differed by 1e-9 from a replay computing on views)
        pairs = [self._micro_gradient(part.clone()) for part in batch.chunk(local)]
        grads = self._all_ranks(torch.stack([g for g, _ in pairs]))
        losses = self._all_ranks(torch.cat([loss for _, loss in pairs]))
        flat_grad = tree_sum(list(grads.unbind(0)))
        loss = tree_sum(list(losses.unbind(0))).reshape(1)
        if m > 1:
            flat_grad.div_(m)
            loss.div_(m)
        return flat_grad, loss

    def _all_ranks(self, local: torch.Tensor) -> torch.Tensor:
        """Every chip's `local` (same shape on each), concatenated in rank order along dim 0."""
        import torch  # noqa: PLC0415
        import torch.distributed as dist  # noqa: PLC0415

        if self.world_size == 1:
            return local
        parts = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(parts, local.contiguous())
        return torch.cat(parts)

    def _legacy_gradient(
        self, batch: torch.Tensor, micro_batches: int, *, reverse_sum: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Transcripts before ADR 0033: micro-batches summed in order, then all-reduced."""
        import torch  # noqa: PLC0415
        import torch.distributed as dist  # noqa: PLC0415

        parts: list[torch.Tensor] = []
        total_loss = torch.zeros(1)
        for part in batch.chunk(micro_batches):
            grad, loss = self._micro_gradient(part)
            parts.append(grad)
            total_loss += loss
        flat_grad = torch.zeros(self.layout.numel)
        for g in reversed(parts) if reverse_sum else parts:
            flat_grad += g
        if micro_batches > 1:
            flat_grad.div_(micro_batches)
            total_loss.div_(micro_batches)
        if self.world_size > 1:
            dist.all_reduce(flat_grad)
            flat_grad.div_(self.world_size)
            dist.all_reduce(total_loss)
            total_loss.div_(self.world_size)
        return flat_grad, total_loss

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
        if len(self.shards) == 1:
            self._gather(self.shard.detach(), self.flat)
            return
        for shard, (a, b) in zip(self.shards, self.slices, strict=True):
            self.flat[a:b].copy_(shard.detach())

    # -- state -------------------------------------------------------------

    def state_digest(self) -> Digest:
        """The per-step commitment to the weights and optimizer state now (ADR 0034).

        Collective: each chip hashes its own slices, the 32-byte digests are
        all-gathered and combined in rank order (`combine_slice_digests`).
        """
        import torch  # noqa: PLC0415

        from computewatch.datacenter._step_state import (  # noqa: PLC0415
            combine_slice_digests,
            slice_digest,
        )

        parts = []
        for shard in self.shards:
            state = {
                str(k): v if isinstance(v, torch.Tensor) else torch.tensor(v)
                for k, v in self.optimizer.state.get(shard, {}).items()
            }
            parts.append(slice_digest(shard.detach(), state))
        if self.world_size > 1:
            local = torch.frombuffer(bytearray(b"".join(parts)), dtype=torch.uint8)
            raw = self._all_ranks(local).numpy().tobytes()
            parts = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        return combine_slice_digests(parts)

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        """The optimizer state over the *full* flat vector, and its groups.

        Collective: every chip must call it (the shards are all-gathered).
        """
        import torch  # noqa: PLC0415

        sd = self.optimizer.state_dict()
        full: dict[str, torch.Tensor] = {}
        per_param = sd["state"].get(0, {})
        for name in sorted(per_param):
            values = [sd["state"][i][name] for i in range(len(self.shards))]
            values = [v if isinstance(v, torch.Tensor) else torch.tensor(v) for v in values]
            sizes = [b - a for a, b in self.slices]
            if all(v.ndim == 1 and v.numel() == n for v, n in zip(values, sizes, strict=True)):
                if len(values) > 1:
                    full[name] = torch.cat([v.detach() for v in values])
                    continue
                out = torch.empty(self.layout.numel, dtype=values[0].dtype)
                self._gather(values[0].detach(), out)
                full[name] = out
            else:
                full[name] = values[0].detach().clone()
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
            for shard, (a, b) in zip(self.shards, self.slices, strict=True):
                shard.copy_(self.flat[a:b])
        states: list[dict[str, torch.Tensor]] = [{} for _ in self.shards]
        for name, value in ckpt.optimizer_state.items():
            for state, (a, b) in zip(states, self.slices, strict=True):
                full = value.ndim == 1 and value.numel() == self.layout.numel
                state[name] = value[a:b].clone() if full else value.clone()
        ids = list(range(len(self.shards)))
        groups = [dict(g, params=ids) for g in ckpt.param_groups]
        sd = {
            "state": dict(enumerate(states)) if ckpt.optimizer_state else {},
            "param_groups": groups,
        }
        try:
            self.optimizer.load_state_dict(sd)
        except (ValueError, KeyError, RuntimeError) as e:
            msg = f"checkpoint step {ckpt.step}: optimizer state does not fit ({e})"
            raise FormatError(msg) from e
        torch.set_rng_state(ckpt.rng_state)
