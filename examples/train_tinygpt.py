"""Train the tiny GPT on 4 emulated chips and record its transcript.

Each chip is one process of a torch.distributed (gloo) run with its own
firmware, secure element and log; the run's weights are sharded across the
chips; the transcript (manifest, data records, checkpoints, snapshots,
commitment, Prover report) is written to OUT/run.

    python examples/train_tinygpt.py --out out/tinygpt --steps 300 --chips 4
"""

from __future__ import annotations

import argparse
import json
import runpy
import time
from pathlib import Path

from computewatch.chip import Chip, sign_firmware
from computewatch.crypto import SigningKey
from computewatch.datacenter import RunSpec, train_distributed

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Parse arguments, make chips, train, print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/tinygpt"))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--chips", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument(
        "--snapshots-per-day",
        type=float,
        default=86_400.0 / 5,
        help="firmware snapshot rate f (default: one per chip every 5 s, so a short demo has some)",
    )
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    maker = SigningKey.generate()
    firmware = sign_firmware(
        name="computewatch-fw",
        version=1,
        code=b"example firmware",
        chipmaker=maker,
        snapshot_rate_per_day=args.snapshots_per_day,
    )
    folders = []
    for r in range(args.chips):
        folder = args.out / "chips" / f"chip-{r}"
        Chip.provision(folder, f"CW-EX-{r:04d}", maker.verifying_key).close()
        folders.append(folder)
    config = dict(runpy.run_path(str(HERE / "tinygpt.py"))["DEFAULT_CONFIG"])
    config["total_steps"] = args.steps
    spec = RunSpec(
        run_id="tinygpt-example",
        program_path=HERE / "tinygpt.py",
        config=config,
        batch_size=args.batch_size,
        steps=args.steps,
        data_seed=2303,
        checkpoint_every=args.checkpoint_every,
        world_size=args.chips,
    )
    start = time.perf_counter()
    summary = train_distributed(spec, args.out / "run", folders, firmware.to_json())
    report = summary.report or {}
    print(
        json.dumps(
            {
                "steps": summary.steps_done,
                "chips": args.chips,
                "first_loss": summary.losses[0],
                "last_loss": summary.losses[-1],
                "training_seconds": round(summary.seconds, 2),
                "wall_seconds": round(time.perf_counter() - start, 2),
                "snapshots": len(report.get("snapshots", [])),
                "commitment": report.get("commitment"),
                "transcript": str(args.out / "run"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
