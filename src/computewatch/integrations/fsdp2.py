"""Recording an FSDP2 run: `fully_shard` on a CPU device mesh, one process per chip (ADR 0039).

A lab shards its model with ``torch.distributed.fsdp.fully_shard`` on
``init_device_mesh("cpu", (R,))`` (gloo) and keeps its loop; `FSDP2Monitor`
attaches to that rank's model and optimizer as `Monitor` does to a one-chip
loop. Each chip's ω is its rank's local shards (``DTensor.to_local()``),
registered with the chip as they live, so a snapshot copies them without any
gathering; the manifest records the shard map, per parameter
``(name, dim, offset, length)`` as `fully_shard` cut it (dim-0 chunks, uneven,
possibly empty), and the verifier maps a replay's flat weights onto each
chip's pieces.

Exactness: FSDP2's own reduce-scatter averages in gloo's order, which
depends on the world size (measured: a 4-chip run lands 1.5e-8 away from its
one-process replay after 3 steps). `TreeReduceScatter` replaces it on every
FSDP module: each rank's gradient (one micro-shard of the global batch per
chip, so ``micro_shards = R``) is all-gathered and summed with the fixed
`tree_sum` of ADR 0033 before the division, so the one-process replay, which
sums the same micro-shards in the same tree and steps each chip's pieces as
their own tensors, is bitwise equal to the run.

Example::

    >>> monitor = FSDP2Monitor(spec, model, optimizer, "runs/r1", chip=chip)  # doctest: +SKIP
    >>> loader = DataLoader(data, batch_sampler=monitor.batch_sampler,
    ...                     collate_fn=monitor.collate)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any, NoReturn

import torch
import torch.distributed as dist
from torch.distributed.fsdp import FSDPModule
from torch.distributed.fsdp._fully_shard._fsdp_api import ReduceScatter
from torch.distributed.tensor import DTensor, Shard

from computewatch.datacenter import (
    FSDP2_KIND,
    FlatLayout,
    Manifest,
    Recorder,
    Reduction,
    StepResult,
    chunk_pieces,
    describe_optimizer,
    init_flat,
    piece_range,
    tree_sum,
)
from computewatch.datacenter._monitor import _mismatch, attach_contract
from computewatch.datacenter._precision import autocast_name
from computewatch.datacenter._step_state import combine_slice_digests, slice_digest
from computewatch.errors import ParameterError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from computewatch.chip import Chip
    from computewatch.crypto import Digest
    from computewatch.datacenter import DataSchedule, RunSpec, TrainingProgram
    from computewatch.datacenter._run import InitFn

__all__ = ["FSDP2Monitor", "RankBatches", "TreeReduceScatter"]


class TreeReduceScatter(ReduceScatter):
    """FSDP2's reduce-scatter as a fixed tree over the ranks' gradients, then the mean.

    Rank ``q`` receives every rank's chunk ``q`` (an all-gather: R times the
    bytes of a reduce-scatter; an all-to-all would cut it back) and sums them
    in rank order with `tree_sum`, as a one-process replay sums the run's
    micro-shards.
    """

    def allocate(
        self, size: Sequence[int | torch.SymInt], *, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """A fresh buffer."""
        return torch.empty(*size, dtype=dtype, device=device)

    def __call__(
        self,
        output_tensor: torch.Tensor,
        input_tensor: torch.Tensor,
        group: dist.ProcessGroup,
        op: Any,
        async_op: bool = False,  # noqa: FBT001, FBT002 - FSDP2's signature
    ) -> None:
        """Write this rank's chunk of the tree-summed mean into `output_tensor`."""
        del op, async_op  # always the mean, always done when this returns
        if input_tensor.dtype != torch.float32:
            msg = f"reduce-scatter: expected float32 gradients, got {input_tensor.dtype}"
            raise ParameterError(msg)
        world = group.size()
        parts = [torch.empty_like(input_tensor) for _ in range(world)]
        dist.all_gather(parts, input_tensor.contiguous(), group=group)
        me, n = dist.get_rank(group), output_tensor.numel()
        total = tree_sum([p[me * n : (me + 1) * n] for p in parts])
        output_tensor.copy_(total.div_(world) if world > 1 else total)


class RankBatches:
    """This rank's micro-shard of every step's committed global batch (a batch sampler)."""

    def __init__(self, schedule: DataSchedule, rank: int, world_size: int) -> None:
        """The order of `schedule`, cut into `world_size` contiguous parts; part `rank`."""
        self.schedule, self.rank, self.world = schedule, rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        """One list of indices per step."""
        per = self.schedule.batch_size // self.world
        for step in range(self.schedule.steps):
            yield self.schedule.indices(step)[self.rank * per : (self.rank + 1) * per]

    def __len__(self) -> int:
        """Steps."""
        return self.schedule.steps


def _local(value: torch.Tensor) -> torch.Tensor:
    return value.to_local() if isinstance(value, DTensor) else value


class _Sharded:
    """One chip of an FSDP2 run seen as the recorder's `TrainState`."""

    def __init__(
        self,
        program: TrainingProgram,
        config: dict[str, Any],
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        rank: int,
        world: int,
    ) -> None:
        self.program, self.config, self.optimizer = program, config, optimizer
        self.rank, self.world = rank, world
        self.names = [n for n, _ in model.named_parameters()]
        self.params: list[Any] = [p for _, p in model.named_parameters()]  # DTensors
        self.layout = FlatLayout.from_model(model)  # a DTensor's shape is the global one
        self.pieces = chunk_pieces(self.layout, world)[rank]
        for name, p, piece in zip(self.names, self.params, self.pieces, strict=True):
            ok = isinstance(p, DTensor) and tuple(p.placements) == (Shard(0),)
            if not ok or p.dtype != torch.float32:
                msg = (
                    f"parameter {name!r}: expected a float32 DTensor sharded on dim 0 (fully_shard)"
                )
                raise ParameterError(msg)
            if p.to_local().shape[:1] != (piece.length,):
                got = list(p.to_local().shape)
                msg = f"parameter {name!r}: local shape {got}, expected {piece.length} rows"
                raise ParameterError(msg)
        self.ranges = [piece_range(self.layout, piece) for piece in self.pieces]
        self.flat = torch.zeros(self.layout.numel)  # W_0 and checkpoints: full weights
        n = sum(b - a for a, b in self.ranges)
        self.start, self.stop = 0, n  # ω's extent: the local pieces concatenated
        self.shard = torch.empty(n)  # scratch for the recorder's W_0 copy; ω lives in `locals`
        self.reduction = Reduction(micro_shards=world)

    def locals(self) -> dict[str, torch.Tensor]:
        """The live local shards, by parameter name (ω's regions, no copy)."""
        return {n: p.to_local().detach() for n, p in zip(self.names, self.params, strict=True)}

    def place_w0(self) -> None:
        """Copy this chip's pieces of `flat` (W_0) into its local shards."""
        with torch.no_grad():
            for local, (a, b) in zip(self.locals().values(), self.ranges, strict=True):
                local.copy_(self.flat[a:b].view_as(local))

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        """Full weights (into `flat`) and optimizer state; collective (gathers: checkpoints)."""
        state = self.optimizer.state
        with torch.no_grad():
            for p, off in zip(self.params, self.layout.offsets, strict=True):
                self.flat[off : off + p.numel()].copy_(p.full_tensor().reshape(-1))
        groups = [describe_optimizer(self.optimizer)["hyper"]]
        if not any(p in state for p in self.params):
            return {}, groups
        parts: dict[str, list[torch.Tensor]] = {}
        scalars: dict[str, torch.Tensor] = {}
        for p in self.params:
            for key, value in sorted(state[p].items()):
                if isinstance(value, DTensor):
                    parts.setdefault(key, []).append(value.full_tensor().detach().reshape(-1))
                elif isinstance(value, torch.Tensor) and key not in scalars:
                    scalars[key] = value.detach().clone()
        full = {k: torch.cat(v) for k, v in parts.items()}
        full.update(scalars)
        return dict(sorted(full.items())), groups

    def state_digest(self) -> Digest:
        """The per-step commitment: one digest per piece, all-gathered, in flat order (ADR 0039)."""
        mine = []
        for p in self.params:
            local = _local(p).detach().reshape(-1)
            st = {
                str(k): (_local(v).reshape(-1) if isinstance(v, DTensor) else v)
                for k, v in self.optimizer.state.get(p, {}).items()
                if isinstance(v, torch.Tensor)
            }
            mine.append(slice_digest(local, st))
        raw = torch.frombuffer(bytearray(b"".join(mine)), dtype=torch.uint8)
        every = [torch.empty_like(raw) for _ in range(self.world)]
        dist.all_gather(every, raw)
        blobs = [t.numpy().tobytes() for t in every]
        ordered = [b[i * 32 : (i + 1) * 32] for i in range(len(self.params)) for b in blobs]
        return combine_slice_digests(ordered)


class _FSDP2Recorder(Recorder):
    """The `Recorder` with FSDP2's manifest (shard map) and ω (the live local shards)."""

    trainer: _Sharded

    def _manifest(self) -> Manifest:
        doc = super()._manifest().to_dict()
        sharding = doc["sharding"]
        sharding["kind"] = FSDP2_KIND
        pieces = chunk_pieces(self.trainer.layout, self.spec.world_size)
        layout = self.trainer.layout
        for chip, mine in zip(sharding["chips"], pieces, strict=True):
            n = sum(b - a for a, b in (piece_range(layout, p) for p in mine))
            chip["slice"] = [0, n]
            chip["shards"] = [p.to_json() for p in mine]
        return Manifest.from_dict(doc, "manifest.json")

    def _register(self) -> None:
        self.trainer.place_w0()
        if self.chip is not None:
            self.chip.register(
                self.spec.run_id, self.trainer.locals(), self.code_hash, self.paths.snapshots
            )


class FSDP2Monitor:
    """Records one rank (one chip) of a lab's FSDP2 loop as part of a verifiable transcript."""

    def __init__(
        self,
        spec: RunSpec,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        run_dir: str | Path,
        *,
        chip: Chip | None = None,
        init: InitFn = init_flat,
    ) -> None:
        """Attach to this rank's `fully_shard`-ed `model` and its `optimizer`; commit the run.

        Collective: every rank of the default process group calls it (the
        chips' serials are all-gathered; rank 0 writes the run-wide files).
        Installs `TreeReduceScatter` on every FSDP module of `model`.

        Raises:
            ParameterError: the objects and the replay contract disagree, or
                the run cannot be replayed exactly (batch not divisible by
                the chips, non-float32 or non-dim-0-sharded parameters).
        """
        world, rank = dist.get_world_size(), dist.get_rank()
        if spec.world_size != world or spec.batch_size % world:
            msg = (
                f"world_size {spec.world_size}: expected the process group's {world} chips, "
                f"each given batch_size / {world} points"
            )
            raise ParameterError(msg)
        if not isinstance(model, FSDPModule):
            msg = "model: expected a fully_shard-ed module (torch.distributed.fsdp.FSDPModule)"
            raise ParameterError(msg)
        if autocast_name(spec.config) is not None:
            msg = "config field 'autocast': FSDP2 runs are recorded in float32 only (ADR 0039)"
            raise ParameterError(msg)
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_custom_reduce_scatter(TreeReduceScatter())
        determinism, program, code_hash, config = attach_contract(spec, model, optimizer)
        serials: list[object] = [None] * world
        dist.all_gather_object(serials, str(chip.serial) if chip is not None else "")
        self.spec = dataclasses.replace(spec, config=config)
        self.rank, self.world = rank, world
        self.state = _Sharded(program, config, model, optimizer, rank=rank, world=world)
        self.recorder = _FSDP2Recorder(
            self.spec,
            run_dir,
            self.state,
            chip=chip,
            chip_serials=[str(s) for s in serials] if chip is not None else [],
            determinism=determinism,
            code_hash=code_hash,
            rank=rank,
            init=init,
        )
        self.recorder.begin()
        dist.barrier()  # rank 0 has made the run folder
        self.step, self._fed = 0, 0
        self._losses: list[torch.Tensor] = []
        self._before: list[torch.Tensor] = []
        self._t_last = time.perf_counter()
        self.recording_seconds = 0.0
        self._hooks = [
            optimizer.register_step_pre_hook(self._pre_step),
            optimizer.register_step_post_hook(self._post_step),
        ]

    @property
    def batch_sampler(self) -> RankBatches:
        """This rank's part of the precommitted order, for ``DataLoader(batch_sampler=...)``."""
        return RankBatches(self.recorder.schedule, self.rank, self.world)

    def collate(self, points: Sequence[torch.Tensor]) -> torch.Tensor:
        """Stack this rank's micro-shard after checking each point against its committed hash."""
        if self._fed >= self.spec.steps:
            self._stop(
                f"collate: micro-batch {self._fed} is beyond the run's {self.spec.steps} steps"
            )
        per = self.spec.batch_size // self.world
        first = self.rank * per
        expected = self.recorder.planned_points(self._fed)[first : first + per]
        problem = _mismatch(self._fed, first, points, expected)
        if problem:
            self._stop(problem)
        self._fed += 1
        return torch.stack(list(points))

    def observe(self, loss: torch.Tensor) -> torch.Tensor:
        """Note this rank's mean loss for the step's metrics; return it unchanged."""
        self._losses.append(loss.detach().reshape(1))
        return loss

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        del args, kwargs
        if self.step >= self.spec.steps:
            self._stop(f"optimizer step {self.step}: the run has only {self.spec.steps} steps")
        lr = self.state.program.learning_rate(self.state.config, self.step)
        for i, group in enumerate(optimizer.param_groups):
            if group["lr"] != lr:
                self._stop(
                    f"step {self.step}: param group {i} has lr {group['lr']!r}, the contract {lr!r}"
                )
        self._before = [t.clone() for t in self.state.locals().values()]

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        del args, kwargs
        t_record = time.perf_counter()
        if len(self._losses) != 1:
            self._stop(f"step {self.step}: expected one observed loss, got {len(self._losses)}")
        losses = [torch.empty(1) for _ in range(self.world)]
        dist.all_gather(losses, self._losses[0])
        sq = sum(
            float(_local(p.grad).square().sum()) for p in self.state.params if p.grad is not None
        )
        moved = sum(
            float((t - b).square().sum())
            for t, b in zip(self.state.locals().values(), self._before, strict=True)
        )
        total = torch.tensor([sq, moved], dtype=torch.float64)
        dist.all_reduce(total)  # a metric: summed in gloo's order, never compared bitwise
        result = StepResult(
            loss=float(tree_sum(losses).item()) / self.world,
            lr=float(optimizer.param_groups[0]["lr"]),
            update_norm=math.sqrt(float(total[1])),
            grad_norm=math.sqrt(float(total[0])),
        )
        self.recorder.record_step(self.step, result, t_record - self._t_last)
        self._losses.clear()
        self.step += 1
        self._t_last = time.perf_counter()
        self.recording_seconds += self._t_last - t_record

    def close(self) -> None:
        """Detach from the optimizer and close the transcript's line files (idempotent)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self.recorder.close()

    def _stop(self, msg: str) -> NoReturn:
        self.close()
        raise ParameterError(msg)

    def finish(self) -> dict[str, Any] | None:
        """Collective: write each chip's claims, then (rank 0) the commitment and the report."""
        if self.step != self.spec.steps:
            self._stop(f"finish: {self.step} optimizer steps done, the run has {self.spec.steps}")
        self.close()
        self.recorder.write_chip_claims()
        dist.barrier()
        report = self.recorder.finish() if self.rank == 0 else None
        dist.barrier()
        return report
