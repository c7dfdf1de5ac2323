"""Shared machinery of the attack corpus: tiny honest runs, a spoofer's toolkit.

Everything here runs the real components: a provisioned `Chip` with signed
firmware, real training of ``examples/tinygpt.py`` with a tiny configuration,
and the Verifier's real checks. Nothing imports from the test suite.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from computewatch.chip import Chip, read_chip_log
from computewatch.crypto import Digest, canonical_json
from computewatch.datacenter import (
    CheckpointRef,
    IndexRecord,
    ProverReport,
    RunSpec,
    TranscriptPaths,
    batch_root,
    compute_commitment,
    data_root,
    encode,
    file_digest,
    manifest_digest,
    precommitment,
    read_manifest,
)
from computewatch.testing import EXAMPLE, FAST_RATE, TINY, tiny_spec, train_on_chip
from computewatch.testing import maker_key as testing_maker_key
from computewatch.verification import (
    CheckStatus,
    ChipEvidence,
    Verdict,
    VerificationPolicy,
    prover_challenge,
    verify_transcript,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy as np

    from computewatch.crypto import SigningKey
    from computewatch.datacenter import BatchFn, InitFn

__all__ = [
    "EXAMPLE",
    "FAST_RATE",
    "LONG",
    "SCALE",
    "TINY",
    "Attack",
    "Attempt",
    "Detection",
    "HonestRun",
    "Scale",
    "failed_checks",
    "make_spec",
    "recommit",
    "run_on_chip",
    "verify_attempt",
]

_MAKER_SEED = b"computewatch-attacks-maker-seed!"


@dataclass(frozen=True)
class Scale:
    """How long the corpus's runs are, how often they checkpoint and chips snapshot.

    Attributes:
        name: a short id.
        steps: optimizer steps of every run.
        checkpoint_every: steps between checkpoints.
        snapshot_rate_per_day: the firmware's snapshot rate (per chip-day of
            real time; the tiny runs take seconds, so these rates are high).
    """

    name: str = "tiny"
    steps: int = 24
    checkpoint_every: int = 6
    snapshot_rate_per_day: float = FAST_RATE

    @property
    def checkpoints(self) -> list[int]:
        """Every checkpointed step count, 0 and the final one included."""
        return sorted({*range(0, self.steps, self.checkpoint_every), self.steps})

    @property
    def interior(self) -> list[int]:
        """The checkpoints strictly between W_0 and the final weights."""
        return self.checkpoints[1:-1]

    @property
    def half(self) -> int:
        """The checkpoint closest to half-way."""
        return min(self.checkpoints[1:], key=lambda c: abs(2 * c - self.steps))

    def spec(self, **kw: Any) -> RunSpec:
        """`make_spec` at this scale (the lr schedule spans the run)."""
        config = {**TINY, "total_steps": self.steps, **kw.pop("config", {})}
        return make_spec(
            **{"steps": self.steps, "checkpoint_every": self.checkpoint_every, **kw},
            config=config,
        )


#: The default scale: 24 steps, a checkpoint every 6, chips snapshot every few steps.
SCALE = Scale()

#: Longer runs with sparse checkpoints, as labs keep them, where replaying 5 % of training
#: means something: 1200 steps, a checkpoint every 240 (five intervals; a lie that fills
#: one is 20 % of the run), about two snapshots per chip-second (ADR 0044).
LONG = Scale("long", steps=1200, checkpoint_every=240, snapshot_rate_per_day=86_400.0 * 2)


def make_spec(run_id: str = "run-1", **kw: Any) -> RunSpec:
    """A run of the tiny program: 24 steps of 8 points, a checkpoint every 6."""
    return tiny_spec(run_id, **kw)


def maker_key() -> SigningKey:
    """The chipmaker of every chip in the corpus."""
    return testing_maker_key(_MAKER_SEED)


@dataclass
class HonestRun:
    """A run on one real chip: its transcript folder and the chip."""

    run_dir: Path
    chip: Chip

    def evidence(self) -> list[ChipEvidence]:
        """The Verifier's view of the chip: its verified log."""
        return [
            ChipEvidence.from_log(
                str(self.chip.serial), self.chip.public_key, read_chip_log(self.chip.log_path)
            )
        ]

    def copy(self, dst: Path) -> HonestRun:
        """A copy of the transcript (the chip's log is only read, so it is shared)."""
        shutil.copytree(self.run_dir, dst)
        return HonestRun(dst, self.chip)


def run_on_chip(
    workdir: Path,
    name: str = "run",
    serial: str = "CW-A-0",
    scale: Scale = SCALE,
    *,
    init: InitFn | None = None,
    batches: BatchFn | None = None,
    **spec: Any,
) -> HonestRun:
    """Train the tiny program at `scale` on a freshly provisioned chip.

    `init` and `batches` are the run's seams (`computewatch.datacenter.train`):
    an attack deviates through them.
    """
    run = train_on_chip(
        workdir,
        name,
        serial,
        spec=scale.spec(**spec),
        maker=maker_key(),
        snapshot_rate_per_day=scale.snapshot_rate_per_day,
        init=init,
        batches=batches,
    )
    return HonestRun(run.run_dir, run.chip)


def recommit(run_dir: Path) -> None:
    """Make a doctored transcript self-consistent again, as a capable spoofer would.

    Recomputes batch roots, the checkpoint index, the precommitment, the
    commitment and the report from whatever the files now say.
    """
    paths = TranscriptPaths(run_dir)
    lines = []
    roots = []
    for line in paths.steps.read_text().splitlines():
        rec = json.loads(line)
        root = batch_root([Digest.parse("sha256:" + h) for h in rec["points"]])
        rec["batch_root"] = str(root)
        roots.append(root)
        lines.append(canonical_json(rec) + b"\n")
    paths.steps.write_bytes(b"".join(lines))
    index = sorted(
        (
            IndexRecord(step, IndexRecord.file_for(step), str(file_digest(ckpt)))
            for ckpt in paths.checkpoints.glob("step-*.safetensors")
            for step in [int(ckpt.stem.split("-")[1])]
        ),
        key=lambda i: i.step,
    )
    paths.checkpoint_index.write_bytes(b"".join(encode(i) + b"\n" for i in index))
    manifest = read_manifest(paths)
    root, parts, claims = compute_commitment(run_dir)
    report = replace(
        ProverReport.from_dict(json.loads(paths.report.read_text())),
        commitment=str(root),
        precommitment=str(precommitment(manifest_digest(manifest.to_dict()), data_root(roots))),
        manifest_digest=parts["manifest"],
        code_hash=parts["code"],
        data_root=parts["data"],
        batch_roots=tuple(str(r) for r in roots),
        checkpoints=tuple(CheckpointRef(i.step, i.digest) for i in index),
        steps=int(manifest.data["steps"]),
        snapshots=tuple(claims),
    )
    paths.report.write_bytes(encode(report))
    paths.commitment.write_bytes(canonical_json({"root": str(root), "parts": parts}))


def failed_checks(verdict: Verdict) -> tuple[str, ...]:
    """The names (without their ``:detail`` suffix) of the checks that failed."""
    names = {c.name.split(":")[0] for c in verdict.checks if c.status is CheckStatus.FAIL}
    return tuple(sorted(names))


@dataclass(frozen=True)
class Detection:
    """Whether the defence caught an attempt, and how.

    Attributes:
        detected: the defence refused the attempt.
        checks: the failing check names, or the error type that was raised.
        compute_fraction: the fraction of training compute the Verifier
            replayed (transcript checks only).
        detail: one line on what happened.
    """

    detected: bool
    checks: tuple[str, ...] = ()
    compute_fraction: float | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-friendly form."""
        return {
            "detected": self.detected,
            "checks": list(self.checks),
            "compute_fraction": self.compute_fraction,
            "detail": self.detail,
        }


@dataclass
class Attempt:
    """One built attack, ready for the defence.

    Attributes:
        run: the (doctored) transcript and the chip whose log is evidence.
        evidence: the chip evidence to verify against (defaults to the run's).
        data: anything else the attack's `detect` needs.
    """

    run: HonestRun | None = None
    evidence: list[ChipEvidence] | None = None
    data: dict[str, Any] = field(default_factory=dict)


def verify_attempt(
    attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
) -> Detection:
    """Run `verify_transcript` on the attempt's transcript and chip evidence."""
    run = attempt.run
    if run is None:  # pragma: no cover - transcript attacks always have a run
        msg = "this attempt has no transcript"
        raise ValueError(msg)
    evidence = attempt.evidence if attempt.evidence is not None else run.evidence()
    with tempfile.TemporaryDirectory(prefix="cw-answers-") as answers:
        verdict = verify_transcript(
            run.run_dir,
            TranscriptPaths(run.run_dir).report,
            evidence,
            policy,
            rng,
            challenge=prover_challenge(run.run_dir, answers, batches=attempt.data.get("batches")),
        )
    failed = failed_checks(verdict)
    return Detection(
        detected=not verdict.passed,
        checks=failed,
        compute_fraction=verdict.compute_fraction,
        detail="; ".join(c.detail for c in verdict.failures)[:300],
    )


class Attack(Protocol):
    """One attack of the corpus.

    Attributes:
        name: a short id (``--only NAME``).
        threat: the paper section and the threat in words.
        expected: the check names (or error type) that must catch it.
        needs_base: whether `create` doctors a copy of an honest base run.
    """

    name: str
    threat: str
    expected: tuple[str, ...]
    needs_base: bool

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale
    ) -> Attempt:
        """Build the attack in `workdir` from honest `bases` at `scale` (`trial` seeds it)."""
        ...

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """Run the real defence on the attempt."""
        ...
