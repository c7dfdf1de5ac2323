"""The sealed trusted cluster: what the process boundary costs, and what fan-out buys (issue 13).

One honest run of the example program (tiny config, on one chip) is
verified with the same seed and policy by

* `UnsafeInProcessEngine`: the Prover's program in the verifier's own
  process, the path before issue 13 (the "before" baseline);
* `LocalPool(workers=1)`: every job in its own sandboxed replay worker
  (as root: forked from the preloaded zygote, ADR 0027);
* the same with ``COMPUTEWATCH_ZYGOTE=0``: every worker a fresh interpreter
  exec'd under ``unshare(1)`` (the path before the zygote);
* `LocalPool(workers=2)`: the same jobs, two at a time.

Reported as same-run ratios: ``boundary_cost`` = sandboxed 1-worker wall
time / in-process wall time (``boundary_cost_exec`` the same for exec'd
workers, ``zygote_speedup`` = exec'd / forked), ``speedup_2_vs_1`` =
1-worker / 2-worker wall time, and whether the verdicts are identical.
The zygote's start (once per Verifier process) is inside the first
repetition's 1-worker time. Quick mode: one
repetition each; full: the median of three. The machine's other load shows
in every absolute number; only the ratios are meant to be compared.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from computewatch.verification import Engine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001
    """Time one verification on each engine."""
    import numpy as np  # noqa: PLC0415

    from computewatch.attacks._harness import run_on_chip  # noqa: PLC0415
    from computewatch.datacenter import TranscriptPaths  # noqa: PLC0415
    from computewatch.verification import (  # noqa: PLC0415
        ZYGOTE_ENV,
        LocalPool,
        UnsafeInProcessEngine,
        VerificationPolicy,
        WorkerLimits,
        verify_transcript,
    )

    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        run_ = run_on_chip(Path(tmp), "bench")
        policy = VerificationPolicy(budget=0.5, max_replayed_snapshots=4)
        engines: dict[str, Callable[[], Engine]] = {
            "in_process": UnsafeInProcessEngine,
            "local_1": lambda: LocalPool(workers=1, limits=WorkerLimits(strict=False)),
            "local_1_exec": lambda: LocalPool(workers=1, limits=WorkerLimits(strict=False)),
            "local_2": lambda: LocalPool(workers=2, limits=WorkerLimits(strict=False)),
        }
        times: dict[str, list[float]] = {name: [] for name in engines}
        verdicts: dict[str, Any] = {}
        for _ in range(repeats):
            for name, make in engines.items():
                os.environ[ZYGOTE_ENV] = "0" if name.endswith("_exec") else "1"
                start = time.perf_counter()
                verdict = verify_transcript(
                    run_.run_dir,
                    TranscriptPaths(run_.run_dir).report,
                    run_.evidence(),
                    policy,
                    np.random.default_rng(3),
                    engine=make(),
                )
                times[name].append(time.perf_counter() - start)
                verdicts[name] = verdict.to_json()
    os.environ.pop(ZYGOTE_ENV, None)
    wall = {name: statistics.median(ts) for name, ts in times.items()}
    return {
        "repeats": repeats,
        "wall_s": wall,
        "boundary_cost": wall["local_1"] / wall["in_process"],
        "boundary_cost_exec": wall["local_1_exec"] / wall["in_process"],
        "zygote_speedup": wall["local_1_exec"] / wall["local_1"],
        "speedup_2_vs_1": wall["local_1"] / wall["local_2"],
        "same_verdict": len({repr(v) for v in verdicts.values()}) == 1,
        "passed": all(v["verdict"] == "pass" for v in verdicts.values()),
    }
