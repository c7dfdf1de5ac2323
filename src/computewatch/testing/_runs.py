"""Tiny monitored training runs for tests and the attack corpus (private)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from computewatch.chip import Chip, read_chip_log
from computewatch.datacenter import RunSpec, TranscriptPaths, train
from computewatch.testing._chips import FAST_RATE, maker_key, provisioned_chip
from computewatch.verification import (
    ChipEvidence,
    Verdict,
    VerificationPolicy,
    verify_transcript,
)

if TYPE_CHECKING:
    from computewatch.crypto import SigningKey
    from computewatch.datacenter import BatchFn, InitFn

__all__ = ["EXAMPLE", "TINY", "TinyRun", "tiny_spec", "train_on_chip"]

#: The tiny example program (the repository's ``examples/tinygpt.py``).
EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "tinygpt.py"

#: A configuration small enough for unit tests (about 30k parameters).
TINY: dict[str, Any] = {
    "n_layer": 1,
    "n_head": 2,
    "n_embd": 32,
    "block_size": 16,
    "corpus_bytes": 1 << 16,
    "lr": 3e-3,
    "min_lr": 3e-4,
    "warmup_steps": 3,
    "total_steps": 24,
    "weight_decay": 0.01,
    "beta1": 0.9,
    "beta2": 0.99,
}


def tiny_spec(run_id: str = "run-1", **kw: Any) -> RunSpec:
    """A run of the tiny program: 24 steps of 8 points, a checkpoint every 6."""
    base: dict[str, Any] = {
        "run_id": run_id,
        "program_path": EXAMPLE,
        "config": dict(TINY),
        "batch_size": 8,
        "steps": 24,
        "data_seed": 7,
        "checkpoint_every": 6,
        "threads": 1,
    }
    base.update(kw)
    return RunSpec(**base)


@dataclass
class TinyRun:
    """A run on one real chip: its transcript folder, the chip and its maker."""

    run_dir: Path
    chip: Chip
    maker: SigningKey

    def evidence(self) -> list[ChipEvidence]:
        """The Verifier's view of the chip: its verified log."""
        return [
            ChipEvidence.from_log(
                str(self.chip.serial), self.chip.public_key, read_chip_log(self.chip.log_path)
            )
        ]

    def verify(self, seed: int = 5, **policy: Any) -> Verdict:
        """`verify_transcript` under `VerificationPolicy(**policy)` (budget 0.25 by default)."""
        return verify_transcript(
            self.run_dir,
            TranscriptPaths(self.run_dir).report,
            self.evidence(),
            VerificationPolicy(**{"budget": 0.25, **policy}),
            np.random.default_rng(seed),
        )


def train_on_chip(
    workdir: Path,
    name: str = "run",
    serial: str = "CW-T-0",
    *,
    spec: RunSpec | None = None,
    maker: SigningKey | None = None,
    snapshot_rate_per_day: float = FAST_RATE,
    init: InitFn | None = None,
    batches: BatchFn | None = None,
) -> TinyRun:
    """Train `spec` (default `tiny_spec()`) on a fresh chip in `workdir/chip-SERIAL`.

    `init` and `batches` are the run's seams (see `computewatch.datacenter.train`):
    an attack or a test deviates through them, never by patching the library.
    """
    key = maker or maker_key()
    chip = provisioned_chip(
        workdir / f"chip-{serial}", serial, maker=key, snapshot_rate_per_day=snapshot_rate_per_day
    )
    try:
        extra: dict[str, Any] = {} if init is None else {"init": init}
        train(spec or tiny_spec(), workdir / name, chip=chip, batches=batches, **extra)
        chip.flush()
    finally:
        chip.close()
    return TinyRun(workdir / name, chip, key)
