"""A replay worker: the only process that runs the Prover's code (private).

Run inside the sandbox as ``python -m computewatch.verification._worker
JOB_DIR LIMITS``, possibly before its job exists: it imports torch, then
waits for ``JOB_DIR/job.json`` (written by the Verifier, last), which names
the files of the job, all in ``JOB_DIR``: the training program, starting
checkpoints, raw data batches. One job per worker. Before any Prover code
runs, the worker

1. caps its own resources (`resource.setrlimit`, soft and hard, which its
   dropped capabilities cannot raise again): address space, CPU seconds,
   file size, open files;
2. moves the result channel to a private descriptor and points stdout at
   stderr, so whatever the program prints cannot be taken for the result.

Then it loads the program and runs the job's tasks (`info`, `points`,
`replay`, `loss`, `benchmark`) and writes one safetensors blob
(`_channel.encode_result`) to the channel. It never sees the checkpoints,
snapshots or hashes its results are checked against: the Verifier's
process compares them. Whatever it writes is only a claim.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "run_tasks"]

_POLL_S = 0.02


def _limit(kind: int, value: int | None) -> None:
    if value is not None:
        resource.setrlimit(kind, (value, value))


def _apply_limits(limits: dict[str, Any]) -> None:
    _limit(resource.RLIMIT_AS, limits.get("memory_bytes"))
    _limit(resource.RLIMIT_CPU, limits.get("cpu_seconds"))
    _limit(resource.RLIMIT_FSIZE, limits.get("file_bytes"))
    _limit(resource.RLIMIT_CORE, 0)


def _load_batches(folder: Path, name: str | None) -> dict[int, Any]:
    from safetensors.torch import load_file  # noqa: PLC0415

    if name is None:
        return {}
    # fresh (aligned) copies: a tensor at a file offset can send matmul down another
    # kernel path, and a replay's bits must not depend on where its batch sits (ADR 0039)
    return {int(k): v.clone() for k, v in load_file(str(folder / name)).items()}


def _replay(
    trainer: Any, task: dict[str, Any], batches: dict[int, Any], world: int, out: dict[str, Any]
) -> dict[str, Any]:
    tid = task["id"]
    wanted = set(task["capture"])
    losses, states = [], []
    if int(task["start"]) in wanted:
        out[f"{tid}/{task['start']}"] = trainer.flat.clone()
    for step in range(int(task["start"]), int(task["stop"])):
        result = trainer.step(
            step, batches[step], micro_batches=world, reverse_sum=bool(task["perturb"])
        )
        losses.append(result.loss)
        states.append(str(trainer.state_digest()))  # the per-step commitment's form
        if step + 1 in wanted:
            out[f"{tid}/{step + 1}"] = trainer.flat.clone()
    return {"losses": losses, "states": states}


def _benchmarks(
    folder: Path, specs: list[dict[str, Any]], model: Any, program: Any, config: Any
) -> dict[str, Any]:
    """Each benchmark the rule file declared (its resource staged in `folder`), or why not."""
    import hashlib  # noqa: PLC0415

    from computewatch.rules import make_benchmark  # noqa: PLC0415

    scores: dict[str, float] = {}
    failed: dict[str, str] = {}
    for spec in specs:
        name = str(spec["name"])
        try:
            data = None
            if spec.get("file") is not None:
                data = (folder / str(spec["file"])).read_bytes()
                if hashlib.sha256(data).hexdigest() != spec["sha256"]:
                    failed[name] = "its staged resource differs from the pinned sha256"
                    continue
            bench = make_benchmark(str(spec["kind"]), name, points=int(spec["points"]), data=data)
            scores[name] = float(bench.score(model, program, config))
        except Exception as e:  # noqa: BLE001 - the Prover's model failed it: report, go on
            failed[name] = f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
    return {"scores": scores, "failed": failed}


def run_tasks(folder: Path, job: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    import torch  # noqa: PLC0415

    from computewatch.datacenter import (  # noqa: PLC0415
        FlatLayout,
        Reduction,
        Trainer,
        cpu_capability,
        load_checkpoint,
        load_program,
        set_determinism,
    )

    det = job["determinism"]
    set_determinism(int(det["seed"]), int(det["threads"]))
    program, _ = load_program(folder / job["program"])  # the Prover's code runs from here on
    config = job["config"]
    # the run's fixed reduction order (ADR 0033), or None: the legacy order
    reduction = Reduction.from_json(job["reduction"]) if job.get("reduction") else None
    # the parts of a global batch: the chips (fixed order), else chips x accumulation (ADR 0032)
    world = int(job["world_size"]) if reduction is not None else int(job["micro_batches"])
    tensors: dict[str, torch.Tensor] = {}
    metrics: dict[str, Any] = {}
    for task in job["tasks"]:
        kind, tid = task["kind"], task["id"]
        if kind == "info":
            model = program.build_model(config)
            layout = FlatLayout.from_model(model)
            metrics[tid] = {
                "layout": layout.to_json(),
                "flops_per_point": float(program.flops_per_point(config, layout.numel)),
                "dataset_size": int(program.dataset_size(config)),
                "environment": {
                    "torch_version": str(torch.__version__),
                    "cpu_capability": cpu_capability(),
                },
            }
        elif kind == "points":
            for k, index in enumerate(task["indices"]):
                tensors[f"{tid}/{k}"] = program.data_point(config, int(index))
        elif kind == "replay":
            set_determinism(int(det["seed"]), int(task["threads"]))
            trainer = Trainer(
                program,
                config,
                reduction=reduction,
                replay_shards=world if reduction is not None else 1,
                replay_slices=job.get("replay_slices"),
            )
            trainer.load(load_checkpoint(folder / task["checkpoint"]))
            metrics[tid] = _replay(
                trainer, task, _load_batches(folder, task["batches"]), world, tensors
            )
            set_determinism(int(det["seed"]), int(det["threads"]))
        elif kind == "loss":
            trainer = Trainer(program, config)
            trainer.load(load_checkpoint(folder / task["checkpoint"]))
            batch = _load_batches(folder, task["batches"])[int(task["step"])]
            with torch.no_grad():
                parts = batch.chunk(world)
                total = sum(float(trainer.loss(p).item()) for p in parts)
            metrics[tid] = {"loss": total / len(parts)}
        elif kind == "benchmark":
            trainer = Trainer(program, config)
            trainer.load(load_checkpoint(folder / task["checkpoint"]))
            metrics[tid] = _benchmarks(folder, task["benchmarks"], trainer.model, program, config)
        else:
            msg = f"unknown task kind {kind!r}"
            raise ValueError(msg)
    return tensors, metrics


def _wait_for_job(folder: Path, wait_s: float) -> dict[str, Any] | None:
    """Warm up (imports), then wait for the Verifier to place ``job.json``."""
    from computewatch.datacenter import set_determinism  # noqa: PLC0415

    set_determinism(0, 1)  # the slow imports (torch, its compiler stack) before the job

    deadline = time.monotonic() + wait_s
    path = folder / "job.json"
    while not path.exists():
        if time.monotonic() > deadline:
            return None
        time.sleep(_POLL_S)
    doc: dict[str, Any] = json.loads(path.read_bytes())
    return None if doc.get("close") else doc


def main(argv: list[str]) -> int:
    """Run the job in ``argv[1]`` (limits in ``argv[2]``); exit 0 after writing the result."""
    folder = Path(argv[1])
    limits = json.loads(argv[2]) if len(argv) > 2 else {}  # noqa: PLR2004
    _apply_limits(limits)
    job = _wait_for_job(folder, float(limits.get("wait_s", 600.0)))
    if job is None:
        return 0
    channel = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    from computewatch.verification._channel import encode_result  # noqa: PLC0415

    tensors, metrics = run_tasks(folder, job)
    blob = encode_result(tensors, metrics)
    view = memoryview(blob)
    while view:
        view = view[os.write(channel, view) :]
    os.close(channel)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
