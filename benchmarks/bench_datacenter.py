"""Training throughput with and without monitoring (issue: datacenter).

The example model (examples/tinygpt.py, default configuration) is trained in
one process for N steps in four ways, interleaved and repeated (medians):

* ``bare``: the training loop alone (`Trainer.step` on each batch);
* ``recorded``: plus the transcript (data records, metrics, checkpoints
  every k steps), no chip;
* ``paper``: plus a chip at the paper's f = 0.1 snapshots per chip-day on
  the wall clock;
* ``stress``: plus a chip at one snapshot per chip-minute, with a clock that
  advances one second per step (so about one snapshot per 60 steps).

Overheads are ratios of loop time to ``bare`` in the same process, and
(less noisy) the time spent inside the recorder's step hook relative to the
training step time in the same run (``hook_overhead_ratio``). The
one-time cost before step 0 (hashing the planned data order, drawing and
checkpointing W_0) is reported separately, as are per-event costs.
"""

from __future__ import annotations

import runpy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from computewatch.chip import Chip, ManualClock, sign_firmware
from computewatch.crypto import SigningKey
from computewatch.datacenter import (
    DataSchedule,
    RunSpec,
    Trainer,
    load_program,
    set_determinism,
    train,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tinygpt.py"


class _SecondPerPoll(ManualClock):
    def now(self) -> float:
        self.advance(1.0)
        return super().now()


def _spec(run_id: str, steps: int, k: int) -> RunSpec:
    config = dict(runpy.run_path(str(EXAMPLE))["DEFAULT_CONFIG"])
    config["total_steps"] = steps
    return RunSpec(
        run_id=run_id,
        program_path=EXAMPLE,
        config=config,
        batch_size=16,
        steps=steps,
        data_seed=1,
        checkpoint_every=k,
        threads=1,
    )


def _bare(spec: RunSpec) -> float:
    set_determinism(0, 1)
    program, _ = load_program(EXAMPLE)
    trainer = Trainer(program, spec.config, init_seed=1)
    schedule = DataSchedule(
        program.dataset_size(spec.config), spec.batch_size, spec.steps, spec.data_seed
    )
    start = time.perf_counter()
    for step in range(spec.steps):
        batch = torch.stack([program.data_point(spec.config, i) for i in schedule.indices(step)])
        trainer.step(step, batch)
    return time.perf_counter() - start


def run(*, quick: bool) -> dict[str, Any]:
    """Measure the overhead of monitoring."""
    steps = 40 if quick else 240
    k = 20 if quick else 60
    repeats = 1 if quick else 3
    maker = SigningKey.generate()
    paper_fw = sign_firmware(
        name="fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=0.1
    )
    stress_fw = sign_firmware(
        name="fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=1440.0
    )
    times: dict[str, list[float]] = {"bare": [], "recorded": [], "paper": [], "stress": []}
    hook: dict[str, list[float]] = {"recorded": [], "paper": [], "stress": []}
    setup: dict[str, list[float]] = {"recorded": [], "paper": [], "stress": []}
    snapshots = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for rep in range(repeats):
            spec = _spec(f"bench-{rep}", steps, k)
            times["bare"].append(_bare(spec))
            for mode in ("recorded", "paper", "stress"):
                chip = None
                if mode != "recorded":
                    clock = _SecondPerPoll() if mode == "stress" else None
                    chip = Chip.provision(
                        root / f"chip-{mode}-{rep}",
                        f"CW-B-{mode}-{rep}",
                        maker.verifying_key,
                        clock=clock,
                    )
                    chip.boot(stress_fw if mode == "stress" else paper_fw)
                t0 = time.perf_counter()
                summary = train(spec, root / f"run-{mode}-{rep}", chip=chip)
                total = time.perf_counter() - t0
                times[mode].append(summary.seconds)
                # same-run ratio: time in the recorder's hook / time training
                hook[mode].append(
                    summary.recording_seconds / (summary.seconds - summary.recording_seconds)
                )
                setup[mode].append(total - summary.seconds)
                if chip is not None:
                    if mode == "stress":
                        snapshots += len(chip.snapshots)
                    chip.close()
    bare = statistics.median(times["bare"])
    out: dict[str, Any] = {
        "model": "examples/tinygpt.py default config",
        "steps": steps,
        "checkpoint_every": k,
        "bare_steps_per_s": steps / bare,
        "stress_snapshots_per_run": snapshots / repeats,
    }
    for mode in ("recorded", "paper", "stress"):
        t = statistics.median(times[mode])
        out[mode] = {
            "steps_per_s": steps / t,
            "overhead_ratio": t / bare,
            "hook_overhead_ratio": 1 + statistics.median(hook[mode]),
            "one_time_setup_s": statistics.median(setup[mode]),
        }
    out["goal_overhead_at_paper_settings"] = 1.01
    return out
