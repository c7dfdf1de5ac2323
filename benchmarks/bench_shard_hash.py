"""Throughput of the shard hash against a memory copy and the raw hash libraries.

Hashes one float32 torch tensor (1 GiB; ``--quick``: 64 MiB) and reports
GiB/s, best of 3, for:

* ``copy_numpy``: ``numpy.copyto`` into a preallocated array (one thread);
* ``copy_torch``: ``Tensor.copy_`` into a preallocated tensor (torch's
  threads); the faster of the two copies is the baseline: no hash can beat
  reading the memory once;
* ``hashlib_sha256`` / ``blake3_lib_1`` / ``blake3_lib_auto``: the hash
  libraries over a memoryview of the tensor, with no computewatch code;
* ``shard_sha256`` / ``shard_blake3_1`` / ``shard_blake3_auto``:
  `computewatch.crypto.shard_hash` with the same algorithms.

Ratios are to that baseline; ``overhead_vs_library`` is the library's
throughput over ours (1.00 = no overhead; the goal is within a few %).
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import TYPE_CHECKING, Any

import blake3
import numpy as np
import torch

from computewatch.crypto import shard_hash

if TYPE_CHECKING:
    from collections.abc import Callable

GIB = 1024**3
REPETITIONS = 3


def _best_seconds(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPETITIONS):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(quick: bool) -> dict[str, Any]:  # noqa: FBT001 - the benchmark contract
    """Measure the throughputs described in the module docstring."""
    nbytes = 64 * 1024**2 if quick else GIB
    source = torch.arange(nbytes // 4, dtype=torch.float32)
    target = torch.empty_like(source)
    source_np, target_np = source.numpy(), target.numpy()
    view = source_np.reshape(-1).view(np.uint8).data
    auto = blake3.blake3.AUTO
    # The torch copy runs last: its OpenMP workers spin for a while after each
    # parallel region and would steal the cores BLAKE3's threads need.
    cases: dict[str, Callable[[], object]] = {
        "copy_numpy": lambda: np.copyto(target_np, source_np),
        "hashlib_sha256": lambda: hashlib.sha256(view).digest(),
        "shard_sha256": lambda: shard_hash(source, "sha256"),
        "blake3_lib_1": lambda: blake3.blake3(view, max_threads=1).digest(),
        "shard_blake3_1": lambda: shard_hash(source, "blake3", max_threads=1),
        "blake3_lib_auto": lambda: blake3.blake3(view, max_threads=auto).digest(),
        "shard_blake3_auto": lambda: shard_hash(source, "blake3", max_threads=-1),
        "copy_torch": lambda: target.copy_(source),
    }
    seconds = {name: _best_seconds(fn) for name, fn in cases.items()}
    rate = {name: nbytes / GIB / s for name, s in seconds.items()}
    baseline_name = max(("copy_numpy", "copy_torch"), key=rate.__getitem__)
    baseline = rate[baseline_name]
    return {
        "baseline": baseline_name,
        "size_bytes": nbytes,
        "repetitions": REPETITIONS,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "seconds_best": {k: round(v, 5) for k, v in seconds.items()},
        "gib_per_s": {k: round(v, 3) for k, v in rate.items()},
        "ratio_to_copy": {k: round(v / baseline, 4) for k, v in rate.items()},
        "overhead_vs_library": {
            "sha256": round(rate["hashlib_sha256"] / rate["shard_sha256"], 4),
            "blake3_1": round(rate["blake3_lib_1"] / rate["shard_blake3_1"], 4),
            "blake3_auto": round(rate["blake3_lib_auto"] / rate["shard_blake3_auto"], 4),
        },
    }
