"""Verification: false rejects on honest runs, and its cost (issue: verification).

1. False-reject rate: N honest runs of the example program (tiny config, 24
   steps, a chip snapshotting every few steps), with different data and
   global seeds and CPU thread counts (1 or 2) -- and, in the full run, a few
   2- and 4-chip runs -- each verified with the default policy. Reports the
   rejects, the rate and its 95% Clopper-Pearson upper bound (goal <= 1%).
2. Cost: the example model (default config) trained on 4 chips, then
   verified with a 5% segment budget: replayed steps as a fraction of the
   training steps (same FLOPs per step), and wall time against training's.
"""

from __future__ import annotations

import runpy
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from computewatch.chip import Chip, read_chip_log, sign_firmware  # noqa: E402
from computewatch.crypto import SigningKey  # noqa: E402
from computewatch.datacenter import RunSpec, TranscriptPaths, train, train_distributed  # noqa: E402
from computewatch.testing import tiny_spec as make_spec  # noqa: E402
from computewatch.verification import ChipEvidence, VerificationPolicy, verify_transcript  # noqa: E402

EXAMPLE = HERE.parent / "examples" / "tinygpt.py"


def _evidence(folders: list[Path]) -> list[ChipEvidence]:
    out = []
    for f in folders:
        with Chip.open(f) as chip:
            out.append(
                ChipEvidence.from_log(
                    str(chip.serial), chip.public_key, read_chip_log(chip.log_path)
                )
            )
    return out


def _honest_runs(root: Path, n_single: int, n_multi: int, maker: SigningKey) -> dict[str, Any]:
    fw = sign_firmware(
        name="fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=86_400.0 * 40
    )
    rejects, details = 0, []
    for i in range(n_single + n_multi):
        world = 1 if i < n_single else (2 if i % 2 else 4)
        threads = 1 + (i % 2)
        spec = make_spec(
            run_id=f"honest-{i}",
            data_seed=100 + i,
            global_seed=i,
            threads=threads,
            world_size=world,
            batch_size=8,
        )
        folders = []
        for r in range(world):
            folder = root / f"chips-{i}" / f"chip-{r}"
            Chip.provision(folder, f"CW-H{i}-{r}", maker.verifying_key).close()
            folders.append(folder)
        run_dir = root / f"run-{i}"
        if world == 1:
            with Chip.open(folders[0]) as chip:
                chip.boot(fw)
                train(spec, run_dir, chip=chip)
        else:
            train_distributed(spec, run_dir, folders, fw.to_json())
        verdict = verify_transcript(
            run_dir,
            TranscriptPaths(run_dir).report,
            _evidence(folders),
            VerificationPolicy(),
            np.random.default_rng(i),
        )
        worst = max(
            (
                float(c.metrics["distance"]) / float(c.metrics["epsilon"])
                for c in verdict.checks
                if "distance" in c.metrics and c.metrics["epsilon"]
            ),
            default=0.0,
        )
        details.append(
            {
                "world": world,
                "threads": threads,
                "passed": verdict.passed,
                "worst_distance_over_eps": worst,
            }
        )
        rejects += not verdict.passed
    n = n_single + n_multi
    upper = float(stats.beta.ppf(0.95, rejects + 1, n - rejects)) if rejects < n else 1.0
    return {
        "runs": n,
        "false_rejects": rejects,
        "rate": rejects / n,
        "rate_upper_95": upper,
        "details": details,
    }


def _example_cost(root: Path, maker: SigningKey, steps: int) -> dict[str, Any]:
    fw = sign_firmware(
        name="fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=86_400.0 / 5
    )
    folders = []
    for r in range(4):
        folder = root / "ex-chips" / f"chip-{r}"
        Chip.provision(folder, f"CW-EX{r}", maker.verifying_key).close()
        folders.append(folder)
    config = dict(runpy.run_path(str(EXAMPLE))["DEFAULT_CONFIG"])
    config["total_steps"] = steps
    spec = RunSpec(
        run_id="example",
        program_path=EXAMPLE,
        config=config,
        batch_size=32,
        steps=steps,
        data_seed=2303,
        checkpoint_every=max(1, steps // 6),
        world_size=4,
    )
    t0 = time.perf_counter()
    summary = train_distributed(spec, root / "ex-run", folders, fw.to_json())
    train_wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    verdict = verify_transcript(
        root / "ex-run",
        TranscriptPaths(root / "ex-run").report,
        _evidence(folders),
        VerificationPolicy(budget=0.05),
        np.random.default_rng(0),
    )
    verify_wall = time.perf_counter() - t0
    snapshots = len((summary.report or {}).get("snapshots", []))
    return {
        "steps": steps,
        "chips": 4,
        "snapshots": snapshots,
        "passed": verdict.passed,
        "replayed_steps": verdict.replayed_steps,
        "compute_fraction": verdict.compute_fraction,
        "training_loop_seconds": summary.seconds,
        "training_wall_seconds": train_wall,
        "verification_wall_seconds": verify_wall,
        "note": "each replay runs twice (noise twin); "
        "replay per snapshot is about half a checkpoint interval",
    }


def run(*, quick: bool) -> dict[str, Any]:
    """False rejects over honest runs, and the cost of verifying the example."""
    maker = SigningKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        honest = _honest_runs(
            root, n_single=4 if quick else 20, n_multi=0 if quick else 4, maker=maker
        )
        cost = _example_cost(root, maker, steps=60 if quick else 300)
    return {"false_rejects": honest, "example_cost": cost, "goal_false_reject_rate": 0.01}
