"""Exact replay across chips: replay compute at the same coverage, before and after (issue 15).

One honest 4-chip run of the example program (tiny config, gloo, the
default reduction: ``micro_shards`` = 4) is replayed in one process over the
same checkpoint intervals (every interval: the same coverage) two ways:

* **before** (ADR 0004, the path of every multi-chip transcript before
  ADR 0033): the chips' gradients in the legacy all-reduce order, each
  interval replayed twice, as recorded and as its noise twin (another CPU
  thread count, micro-batch gradients summed in reverse);
* **after** (ADR 0033): the fixed tree reduction, each chip's slice stepped
  as its own parameter, each interval replayed once and compared bitwise.

Reported as same-run ratios: ``compute_ratio_steps`` = optimizer steps
replayed after / before (the Verifier's own count, `verdict.replayed_steps`
of a full-budget verification, against twice the steps it covered), and
``compute_ratio_wall`` = wall time after / before (median of repetitions;
the twin's other thread count can cost more than the main replay on a
loaded machine, so both halves of "before" are reported too;
the machine's other load shows in the absolute seconds, only the ratio is
meant to be compared). ``bitwise`` says every interval's replay equalled the
recorded checkpoint exactly; ``legacy_max_distance`` is how far the legacy
replay lands from it. A warm-up replay of one interval runs before the
timed ones, and the order before/after alternates. Goal: both ratios <= 0.5.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from computewatch.verification import TranscriptReader

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _replay(
    reader: TranscriptReader,
    intervals: list[tuple[int, int]],
    *,
    threads: int,
    exact: bool,
    reverse: bool = False,
) -> dict[int, torch.Tensor]:
    """The weights after each interval, replayed in one process."""
    from computewatch.datacenter import Trainer, set_determinism  # noqa: PLC0415

    set_determinism(reader.determinism.seed, threads)
    world = reader.world_size
    trainer = Trainer(
        reader.program,
        reader.config,
        reduction=reader.reduction if exact else None,
        replay_shards=world if exact else 1,
    )
    batches = {s: _batch(reader, s) for a, b in intervals for s in range(a, b)}
    out = {}
    for a, b in intervals:
        trainer.load(reader.checkpoint(a))
        for step in range(a, b):
            trainer.step(step, batches[step], micro_batches=world, reverse_sum=reverse)
        out[b] = trainer.flat.clone()
    return out


def _batch(reader: TranscriptReader, step: int) -> torch.Tensor:
    points = [reader.program.data_point(reader.config, i) for i in reader.schedule.indices(step)]
    return torch.stack(points)


def _four_chip_run(root: Path, steps: int) -> tuple[Path, list[Any]]:
    from computewatch.chip import Chip, read_chip_log, sign_firmware  # noqa: PLC0415
    from computewatch.crypto import SigningKey  # noqa: PLC0415
    from computewatch.datacenter import train_distributed  # noqa: PLC0415
    from computewatch.testing import tiny_spec  # noqa: PLC0415
    from computewatch.verification import ChipEvidence  # noqa: PLC0415

    maker = SigningKey.from_seed(b"bench-exact-replay-maker-seed!!!")
    fw = sign_firmware(
        name="fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=86_400.0
    )
    folders = []
    for r in range(4):
        Chip.provision(root / f"chip{r}", f"CW-EXACT{r}", maker.verifying_key).close()
        folders.append(root / f"chip{r}")
    spec = tiny_spec(world_size=4, steps=steps, checkpoint_every=4, batch_size=8)
    train_distributed(spec, root / "run", folders, fw.to_json())
    evidence = []
    for f in folders:
        with Chip.open(f) as chip:
            log = read_chip_log(chip.log_path)
            evidence.append(ChipEvidence.from_log(str(chip.serial), chip.public_key, log))
    return root / "run", evidence


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001
    """Replay the same intervals before/after; verify once at full budget."""
    import itertools  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from computewatch.datacenter import TranscriptPaths  # noqa: PLC0415
    from computewatch.verification import (  # noqa: PLC0415
        TranscriptReader,
        VerificationPolicy,
        verify_transcript,
    )

    steps = 16 if quick else 48
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, evidence = _four_chip_run(Path(tmp), steps)
        reader = TranscriptReader.open(run_dir, TranscriptPaths(run_dir).report)
        intervals = list(itertools.pairwise(reader.checkpoint_steps))
        threads = reader.determinism.threads
        before_s: list[float] = []
        after_s: list[float] = []
        main_s: list[float] = []
        twin_s: list[float] = []
        bitwise, legacy_far = True, 0.0
        _replay(reader, intervals[:1], threads=threads, exact=True)  # warm-up
        _replay(reader, intervals[:1], threads=threads + 1, exact=False, reverse=True)
        for i in range(repeats):

            def before() -> dict[int, torch.Tensor]:
                t = time.perf_counter()
                out = _replay(reader, intervals, threads=threads, exact=False)
                main_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                _replay(reader, intervals, threads=threads + 1, exact=False, reverse=True)
                twin_s.append(time.perf_counter() - t)
                return out

            def after() -> dict[int, torch.Tensor]:
                return _replay(reader, intervals, threads=threads, exact=True)

            for name in ("before", "after") if i % 2 == 0 else ("after", "before"):
                t0 = time.perf_counter()
                if name == "before":
                    main = before()
                    before_s.append(time.perf_counter() - t0)
                else:
                    exact = after()
                    after_s.append(time.perf_counter() - t0)
            for b, w in exact.items():
                recorded = reader.checkpoint(b).weights
                bitwise &= bool((w == recorded).all())
                legacy_far = max(legacy_far, float((main[b] - recorded).norm()))
        covered = sum(b - a for a, b in intervals)
        verdict = verify_transcript(
            run_dir,
            TranscriptPaths(run_dir).report,
            evidence,
            VerificationPolicy(budget=1.0, pol_segments=0, max_replayed_snapshots=0),
            np.random.default_rng(0),
        )
        seg = [c for c in verdict.checks if c.name.startswith("segment:")]
    return {
        "steps": steps,
        "chips": 4,
        "intervals": len(intervals),
        "covered_steps": covered,
        "verifier_replayed_steps": verdict.replayed_steps,
        "verifier_passed": verdict.passed,
        "verifier_segments_exact": all(c.metrics.get("epsilon") == 0.0 for c in seg),
        "compute_ratio_steps": verdict.replayed_steps / (2 * covered),
        "before_wall_seconds": statistics.median(before_s),
        "before_main_wall_seconds": statistics.median(main_s),
        "before_twin_wall_seconds": statistics.median(twin_s),
        "after_wall_seconds": statistics.median(after_s),
        "compute_ratio_wall": statistics.median(after_s) / statistics.median(before_s),
        "bitwise": bitwise,
        "legacy_max_distance": legacy_far,
        "goal_compute_ratio": 0.5,
        "repeats": repeats,
        "note": "before = legacy order + noise twin (another thread count), "
        "after = tree reduction, one bitwise replay; the same intervals",
    }


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
