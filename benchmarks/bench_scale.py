"""How monitoring's costs grow with the model: 0.1M, 10M and 100M+ parameters (issue #14).

For each size, a GPT-2-shaped model (``examples/train_hf.py``'s replay
contract, built from ``GPT2Config``, byte-level vocabulary, no download) is
trained by a plain PyTorch loop twice in the same process, step blocks
interleaved so drift hits both alike:

* ``bare``: the lab's loop alone;
* ``monitored``: the same loop with `Monitor` attached and a chip at the
  paper's snapshot rate (f = 0.1 snapshots per chip-day, so no snapshot
  falls in a run this short; `bench_chip` prices one).

Reported per size, all measured in this run:

* ``overhead_ratio``: median monitored step time over median bare step time
  (steps that write a checkpoint excluded; the lab checkpoints anyway, and
  checkpoint cost is reported on its own); ``hook_ratio``: 1 + time inside the
  monitor's hooks over the rest of the monitored step (less noisy);
* ``transcript_bytes_per_step``: the transcript without checkpoints, per
  step, and ``checkpoint_bytes``: one checkpoint;
* ``checkpoint_s``: the extra time of a step that writes a checkpoint;
* ``verify_s`` and ``compute_fraction``: `verify_transcript` wall time with
  sandboxed replay workers at budget 0.1, and the replayed steps over the
  run's steps (the first and last intervals are always replayed, ADR 0034,
  so a run of a few intervals replays much of itself);
* ``per_step_costs_s``: where the hook's time goes, by part: on the loop's
  path (the gradient norm) and on the monitor's step thread (update norm,
  the copy of the weights, the per-step state hash; ADR 0040).

A table and a plot (``bench_scale.png`` beside the JSON) show each against
the parameter count. Goal: overhead at most 1.01x for 10M parameters and
more. The monitor's per-step cost is O(parameters) while a step is
O(parameters x tokens), so the overhead falls with the batch:
``tokens_per_step_for_1pct`` extrapolates where it would reach 1.01x, and
``batch_x4`` measures the 10M model again with 4x the tokens per step (not
verified: the replay would cost 4x as much) to test that extrapolation.
"""

from __future__ import annotations

import os
import runpy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from torch.utils.data import DataLoader

from computewatch.chip import Chip, sign_firmware
from computewatch.crypto import SigningKey
from computewatch.datacenter import Monitor, RunSpec, TranscriptPaths
from computewatch.integrations.hf import causal_lm_loss
from computewatch.testing import TinyRun

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_hf.py"
LR = 1e-4
SIZES: dict[str, dict[str, int]] = {
    "0.1M": {"n_embd": 64, "n_layer": 2, "n_head": 2},
    "10M": {"n_embd": 256, "n_layer": 12, "n_head": 4},
    "100M": {"n_embd": 768, "n_layer": 15, "n_head": 12},
}


def _config(shape: dict[str, int], length: int, steps: int) -> dict[str, Any]:
    gpt2 = {
        "vocab_size": 256, "n_positions": length, **shape,
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        "bos_token_id": 0, "eos_token_id": 0,
    }  # fmt: skip
    return {
        "gpt2": gpt2,
        "points": 64,
        "hf_schedule": {"name": "constant", "lr": LR, "warmup_steps": 0, "steps": steps},
    }


def _loop(
    ex: dict[str, Any], config: dict[str, Any], batch: int, monitor_args: dict[str, Any] | None
) -> tuple[Any, Monitor | None]:
    """A generator of per-step times of the lab's loop (monitored when `monitor_args`)."""
    model = ex["build_model"](config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    data = ex["dataset"](config)
    monitor = None
    if monitor_args is not None:
        monitor = Monitor(model=model, optimizer=optimizer, **monitor_args)
        loader = DataLoader(data, batch_sampler=monitor.batch_sampler, collate_fn=monitor.collate)
    else:
        loader = DataLoader(data, batch_size=batch, shuffle=False)

    def steps() -> Any:
        while True:
            for fed in loader:
                t0 = time.perf_counter()
                loss = causal_lm_loss(model, fed)
                if monitor is not None:
                    monitor.observe(loss)
                optimizer.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimizer.step()
                yield time.perf_counter() - t0

    return steps(), monitor


def _dir_bytes(path: Path, *, skip: str = "checkpoints") -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and skip not in p.parts)


def _parts(monitor: Monitor) -> dict[str, float]:
    """Seconds of the hook's per-step costs, each timed alone on the monitor's live state.

    ``grad_norm`` runs on the loop's path; the rest on the monitor's step
    thread, overlapping the next forward and backward (ADR 0040).
    """
    state = monitor.state
    flat = state.flat.detach()
    buffer = flat.clone()
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    grads = [p.grad for p in state.params if p.grad is not None]
    float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
    out["loop_grad_norm"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    float(torch.linalg.vector_norm(buffer.sub_(flat)))
    buffer.copy_(flat)
    out["thread_update_norm_and_copy"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    state.state_digest()
    out["thread_hash_step_state"] = time.perf_counter() - t0
    out["hashed_bytes_per_step"] = flat.numel() * flat.element_size() * 3  # weights + Adam's two
    return out


def _size(
    name: str,
    shape: dict[str, int],
    *,
    quick: bool,
    root: Path,
    batch_scale: int = 1,
    verify: bool = True,
) -> dict[str, Any]:
    slow = shape["n_embd"] >= 512 or batch_scale > 1  # seconds a step: fewer steps, smaller blocks
    steps = 4 if quick else (16 if slow else 24)
    k = steps // 2
    block = 2 if slow or quick else 4
    length, batch = (32, 2) if quick else (64, 4 * batch_scale)
    config = _config(shape, length, steps)
    ex = runpy.run_path(str(EXAMPLE))
    params = sum(p.numel() for p in ex["build_model"](config).parameters())
    maker = SigningKey.generate()
    firmware = sign_firmware(
        name="fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=0.1
    )
    chip = Chip.provision(root / f"chip-{name}", f"CW-S-{name}", maker.verifying_key)
    chip.boot(firmware)
    spec = RunSpec(
        run_id=f"scale-{name}", program_path=EXAMPLE, config=config, batch_size=batch,
        steps=steps, data_seed=1, checkpoint_every=k,
    )  # fmt: skip
    run_dir = root / f"run-{name}"
    bare, _ = _loop(ex, config, batch, None)
    monitored, monitor = _loop(ex, config, batch, {"spec": spec, "run_dir": run_dir, "chip": chip})
    assert monitor is not None
    checkpoints = TranscriptPaths(run_dir).checkpoints
    times: dict[str, list[float]] = {"bare": [], "monitored": []}
    hook: list[float] = []
    checkpoint_steps: list[float] = []
    parts: list[dict[str, float]] = []
    done = 0
    while done < steps:
        n = min(block, steps - done)
        for _ in range(n):
            times["bare"].append(next(bare))
        for _ in range(n):
            before = monitor.recording_seconds
            written = len(list(checkpoints.glob("*")))
            t = next(monitored)
            if len(list(checkpoints.glob("*"))) != written:  # this step wrote one
                checkpoint_steps.append(t)
            else:
                times["monitored"].append(t)
                inside = monitor.recording_seconds - before
                hook.append(inside / (t - inside))
        done += n
    parts.append(_parts(monitor))
    monitor.finish()
    chip.flush()
    t_bare = statistics.median(times["bare"])
    t_mon = statistics.median(times["monitored"])
    ckpt = TranscriptPaths(run_dir).checkpoint(k)
    verdict, verify_s = None, None
    if verify:
        t0 = time.perf_counter()
        verdict = TinyRun(run_dir, chip, maker).verify(budget=0.1)
        verify_s = time.perf_counter() - t0
    chip.close()
    overhead = t_mon / t_bare
    return {
        "parameters": params,
        "batch": batch,
        "steps": steps,
        "checkpoint_every": k,
        "tokens_per_step": batch * length,
        "bare_step_s": t_bare,
        "overhead_ratio": overhead,
        # the monitor's per-step cost is O(parameters), the step's O(parameters
        # x tokens): the tokens per step at which this cost would be 1% of it
        "tokens_per_step_for_1pct": batch * length * max(overhead - 1, 0) / 0.01,
        "hook_ratio": 1 + statistics.median(hook),
        "transcript_bytes_per_step": _dir_bytes(run_dir) / steps,
        "checkpoint_bytes": ckpt.stat().st_size if ckpt.exists() else None,
        "checkpoint_s": statistics.median(checkpoint_steps) - t_mon,
        "verify_s": verify_s,
        "verified": None if verdict is None else bool(verdict.passed),
        "compute_fraction": None if verdict is None else verdict.compute_fraction,
        "per_step_costs_s": parts[0],
    }


def _plot(sizes: dict[str, dict[str, Any]], out: Path) -> None:
    import matplotlib as mpl  # noqa: PLC0415

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    n = [r["parameters"] for r in sizes.values()]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    series = [
        ("overhead_ratio", "monitored / bare step time", False),
        ("transcript_bytes_per_step", "transcript bytes per step", True),
        ("checkpoint_s", "checkpoint write (s)", True),
        ("verify_s", "verification wall time (s)", True),
    ]
    for ax, (key, label, log) in zip(axes, series, strict=True):
        ax.plot(n, [max(r[key], 1e-6) for r in sizes.values()], "o-")
        ax.set_xscale("log")
        if log:
            ax.set_yscale("log")
        if key == "overhead_ratio":
            ax.axhline(1.01, color="grey", linestyle="--", label="goal 1.01x")
            ax.legend()
        ax.set_xlabel("parameters")
        ax.set_title(label)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def table(sizes: dict[str, dict[str, Any]]) -> str:
    """The results as a Markdown table."""
    head = "| size | parameters | tokens/step | overhead | hook | bytes/step | checkpoint s"
    rows = [
        head + " | verify s | replayed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in sizes.items():
        rows.append(
            f"| {name} | {r['parameters']:,} | {r['tokens_per_step']:,} | "
            f"{r['overhead_ratio']:.3f}x | "
            f"{r['hook_ratio']:.3f}x | {r['transcript_bytes_per_step']:,.0f} | "
            f"{r['checkpoint_s']:.2f} | "
            + (
                "- | - |"
                if r["verify_s"] is None
                else f"{r['verify_s']:.1f} | {r['compute_fraction']:.0%} |"
            )
        )
    return "\n".join(rows)


def run(*, quick: bool) -> dict[str, Any]:
    """Measure each size (quick: the smallest, a few steps)."""
    torch.manual_seed(0)
    names = ["0.1M"] if quick else list(SIZES)
    out: dict[str, Any] = {"sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            out["sizes"][name] = _size(name, SIZES[name], quick=quick, root=Path(tmp))
        if not quick:  # the same model with 4x the tokens per step: does the cost stay put?
            out["batch_x4"] = {
                "10M": _size(
                    "10M-x4", SIZES["10M"], quick=quick, root=Path(tmp), batch_scale=4, verify=False
                )
            }
    out["table"] = table(
        {**out["sizes"], **{f"{k} x4 tokens": v for k, v in out.get("batch_x4", {}).items()}}
    )
    out["goal_overhead_at_10M_and_more"] = 1.01
    if not quick:
        _plot(out["sizes"], Path(__file__).resolve().parent / "results" / "bench_scale.png")
    return out


if __name__ == "__main__":
    import json
    import sys

    result = run(quick="--quick" in sys.argv)
    print(result["table"])
    print(json.dumps(result, indent=2))
