"""Running a monitored training run on one chip: the run's spec and the canonical loop.

A run is defined before it starts by a `RunSpec` (program, configuration,
schedule, checkpoint interval, sharding). `train` is the loop every chip of
the run executes: it fixes determinism, loads the program, lets the
`Recorder` (`_recorder.py`) commit and record the transcript around every
optimizer step, and returns a `TrainSummary`. Its ``init`` and ``batches``
parameters are the run's only seams (what the attack corpus deviates
through; nothing is patched).

Example::

    >>> spec = RunSpec(run_id="r1", program_path="examples/tinygpt.py", config={},
    ...                batch_size=8, steps=20, data_seed=1, checkpoint_every=5)
    >>> spec.world_size, spec.program_path.name
    (1, 'tinygpt.py')
    >>> summary = train(spec, "runs/run-1", chip=chip)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch._validate import int_in_range, text
from computewatch.datacenter._data import DataSchedule
from computewatch.datacenter._determinism import set_determinism
from computewatch.datacenter._layout import init_flat
from computewatch.datacenter._program import load_program
from computewatch.datacenter._recorder import Recorder
from computewatch.datacenter._reduction import Reduction
from computewatch.datacenter._trainer import Trainer
from computewatch.errors import ParameterError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from computewatch.chip import Chip

#: Makes W_0 as ``init(layout, seed, std=...)`` (the honest one is `init_flat`).
InitFn = Callable[..., Any]
#: The indices a chip trains on: ``batches(schedule, step, rank, world_size)``.
BatchFn = Callable[[DataSchedule, int, int, int], list[int]]

__all__ = ["BatchFn", "InitFn", "RunSpec", "TrainSummary", "train"]


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run before it starts.

    Attributes:
        run_id: the run's name (printable, at most 128 characters).
        program_path: the training program's source file.
        config: hyperparameters and model configuration (JSON values).
        batch_size: data points per optimizer step (global).
        steps: optimizer steps.
        data_seed: seed of the data order.
        checkpoint_every: `k`, steps between checkpoints.
        threads: CPU threads per chip (replays must use the same for bitwise
            equality).
        world_size: chips in the run.
        global_seed: seed of torch's process-global generator.
        init_std: standard deviation of the seeded W_0.
        micro_shards: `M`, the equal parts of the global batch whose
            gradients are summed in a fixed tree order (ADR 0033); a multiple
            of `world_size` dividing `batch_size`. None means `world_size`
            (no extra backward passes); give the same `M` to runs on
            different chip counts and they are bitwise equal to each other.
    """

    run_id: str
    program_path: Path
    config: dict[str, Any]
    batch_size: int
    steps: int
    data_seed: int
    checkpoint_every: int
    threads: int = 1
    world_size: int = 1
    global_seed: int = 0
    init_std: float = 0.02
    micro_shards: int | None = None

    def __post_init__(self) -> None:
        """Validate."""
        text("run_id", self.run_id, max_len=128)
        int_in_range("checkpoint_every", self.checkpoint_every, 1, 1 << 32)
        int_in_range("world_size", self.world_size, 1, 1 << 16)
        if self.batch_size % self.world_size:
            msg = (
                f"batch_size {self.batch_size}: expected a multiple of world_size {self.world_size}"
            )
            raise ParameterError(msg)
        m = self.reduction.micro_shards
        if m % self.world_size or self.batch_size % m:
            msg = (
                f"micro_shards {m}: expected a multiple of world_size {self.world_size} "
                f"that divides batch_size {self.batch_size}"
            )
            raise ParameterError(msg)
        object.__setattr__(self, "program_path", Path(self.program_path))

    @property
    def reduction(self) -> Reduction:
        """The run's gradient reduction order (the manifest's ``sharding.reduction``)."""
        m = self.world_size if self.micro_shards is None else self.micro_shards
        int_in_range("micro_shards", m, 1, 1 << 16)
        return Reduction(micro_shards=m)


@dataclass
class TrainSummary:
    """What a finished (or interrupted) run did on this chip.

    Attributes:
        steps_done: optimizer steps completed.
        losses: loss per step run in this call.
        seconds: wall time of the training loop.
        recording_seconds: of which spent in the recorder's step hook (data
            records, metrics, the firmware's snapshot chance, checkpoints).
        report: the Prover report (chip 0 of a finished run).
    """

    steps_done: int
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    recording_seconds: float = 0.0
    report: dict[str, Any] | None = None


def train(
    spec: RunSpec,
    run_dir: str | Path,
    *,
    chip: Chip | None = None,
    chip_serials: Sequence[str] = (),
    rank: int = 0,
    resume: bool = False,
    stop_after: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    barrier: Callable[[], None] | None = None,
    init: InitFn = init_flat,
    batches: BatchFn | None = None,
) -> TrainSummary:
    """Train `spec` on this chip, recording the transcript.

    Args:
        spec: the run.
        run_dir: the transcript folder (shared by all chips of the run).
        chip: this process's chip (None trains unmonitored).
        chip_serials: every chip's serial, in rank order.
        rank: this chip's rank.
        resume: continue from the last checkpoint in `run_dir`.
        stop_after: stop (as if killed) after this many steps, for tests.
        progress: called as `progress(done, total)` after every step.
        barrier: synchronises the chips of a multi-process run.
        init: makes W_0 from the precommitted seed (default: the honest
            `init_flat`; another one is a spoofer's deviation).
        batches: the data indices this chip trains on at a step, as
            ``batches(schedule, step, rank, world_size)`` (default: the
            precommitted schedule's; another one substitutes data).
    """
    determinism = set_determinism(spec.global_seed, spec.threads)
    program, code_hash = load_program(spec.program_path)
    trainer = Trainer(
        program,
        spec.config,
        rank=rank,
        world_size=spec.world_size,
        init_std=spec.init_std,
        reduction=spec.reduction,
    )
    serials = list(chip_serials) or ([str(chip.serial)] if chip is not None else [])
    rec = Recorder(
        spec,
        run_dir,
        trainer,
        chip=chip,
        chip_serials=serials,
        determinism=determinism,
        code_hash=code_hash,
        rank=rank,
        init=init,
    )
    if resume:
        start = rec.resume()
    else:
        rec.begin()
        start = 0
    summary = TrainSummary(steps_done=start)
    import torch  # noqa: PLC0415

    t0 = time.perf_counter()
    try:
        for step in range(start, spec.steps):
            if stop_after is not None and step >= stop_after:
                summary.seconds = time.perf_counter() - t0
                return summary
            idx = (
                rec.schedule.local_indices(step, rank, spec.world_size)
                if batches is None
                else batches(rec.schedule, step, rank, spec.world_size)
            )
            batch = torch.stack([program.data_point(trainer.config, i) for i in idx])
            t_step = time.perf_counter()
            result = trainer.step(step, batch)
            t_record = time.perf_counter()
            rec.record_step(step, result, t_record - t_step)
            summary.recording_seconds += time.perf_counter() - t_record
            summary.losses.append(result.loss)
            summary.steps_done = step + 1
            if progress is not None:
                progress(step + 1, spec.steps)
    finally:
        rec.close()
    summary.seconds = time.perf_counter() - t0
    rec.write_chip_claims()
    if barrier is not None:
        barrier()
    if rec.writer:
        summary.report = rec.finish()
    return summary
