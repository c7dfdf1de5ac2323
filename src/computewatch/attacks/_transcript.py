"""Transcript spoofs that doctor an honest run's files (paper §5, App. A).

Each attack starts from a copy of an honest transcript, changes what the
Prover claims, makes the transcript self-consistent again with `recommit`
(as a capable spoofer would) and is then checked by `verify_transcript`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from computewatch.attacks._harness import (
    SCALE,
    Attempt,
    Detection,
    HonestRun,
    Scale,
    recommit,
    verify_attempt,
)
from computewatch.datacenter import TranscriptPaths, load_checkpoint, save_checkpoint

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy as np
    import torch

    from computewatch.verification import VerificationPolicy

__all__ = [
    "CheckpointRedirect",
    "FewerStepsClaimed",
    "FinalCheckpointSwap",
    "InterpolatedCheckpoints",
    "LearningRateLie",
    "OmegaAsInit",
    "ShardRelocation",
    "replace_weights",
]


def replace_weights(paths: TranscriptPaths, step: int, weights: torch.Tensor) -> None:
    """Rewrite checkpoint `step` with other weights (everything else kept)."""
    ckpt = load_checkpoint(paths.checkpoint(step))
    save_checkpoint(
        paths.checkpoint(step),
        step=step,
        weights=weights.contiguous(),
        optimizer_state=ckpt.optimizer_state,
        param_groups=ckpt.param_groups,
        rng_state=ckpt.rng_state,
        layout_digest=ckpt.layout_digest,
    )


def _dump(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class _EditAttack:
    """Base: copy the first base run, doctor it in `edit`, recommit."""

    name = ""
    threat = ""
    expected: tuple[str, ...] = ()
    needs_base = True

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Doctor a copy of ``bases[0]`` and recommit it."""
        run = bases[0].copy(workdir / f"{self.name}-{trial}")
        self.edit(run, scale)
        recommit(run.run_dir)
        return Attempt(run=run)

    def edit(self, run: HonestRun, scale: Scale) -> None:
        """Change the transcript (subclasses)."""
        raise NotImplementedError

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """`verify_transcript` with the policy."""
        return verify_attempt(attempt, policy, rng)


class OmegaAsInit(_EditAttack):
    """The weights the chip saw late in training are claimed as W_0."""

    name = "omega-as-init"
    threat = "§5 / App. A: ω claimed to be just the initialization"
    expected = ("init",)

    def edit(self, run: HonestRun, scale: Scale) -> None:
        """Write the final weights into checkpoint 0."""
        paths = TranscriptPaths(run.run_dir)
        replace_weights(paths, 0, load_checkpoint(paths.checkpoint(scale.steps)).weights)


class InterpolatedCheckpoints(_EditAttack):
    """Checkpoints fabricated on the straight line from W_0 to W_T."""

    name = "interpolation"
    threat = "§5 / App. A: intermediate checkpoints fabricated by interpolation"
    expected = ("segment", "snapshot")

    def edit(self, run: HonestRun, scale: Scale) -> None:
        """Replace every interior checkpoint by an interpolation."""
        paths = TranscriptPaths(run.run_dir)
        w0 = load_checkpoint(paths.checkpoint(0)).weights
        wt = load_checkpoint(paths.checkpoint(scale.steps)).weights
        for step in scale.interior:
            t = step / scale.steps
            replace_weights(paths, step, (1 - t) * w0 + t * wt)


class FinalCheckpointSwap(_EditAttack):
    """Only the final checkpoint changes: the deployed weights carry a payload.

    Every other file is the honest run's; the final weights are moved by a
    fixed random direction (standing in for a backdoor or a fine-tune) of
    norm 3e-4 of theirs (small enough that the recorded update norms still
    cover the distance from the previous checkpoint, so the
    `update_norms_vs_lr` heuristic passes), and the transcript is
    recommitted. Only a replay of the last interval (or a chip snapshot at
    the very last step) sees it, which is why the Verifier always replays
    that interval (issue 15).
    """

    name = "final-checkpoint-swap"
    threat = "§5: the weights the Prover deploys are not the ones it trained"
    expected = ("segment",)

    def edit(self, run: HonestRun, scale: Scale) -> None:
        """Perturb the last checkpoint's weights (nothing else)."""
        import torch  # noqa: PLC0415

        paths = TranscriptPaths(run.run_dir)
        final = load_checkpoint(paths.checkpoint(scale.steps)).weights
        direction = torch.randn(final.shape, generator=torch.Generator().manual_seed(15))
        payload = direction * (3e-4 * float(final.norm()) / float(direction.norm()))
        replace_weights(paths, scale.steps, final + payload)


class LearningRateLie(_EditAttack):
    """Another learning rate is claimed than the one trained with."""

    name = "hyper-lr-lie"
    threat = "§5: hyperparameters misreported (learning rate)"
    expected = ("precommit-logged", "init")

    def edit(self, run: HonestRun, scale: Scale) -> None:  # noqa: ARG002
        """Claim lr = 0.001 instead of 0.003."""
        paths = TranscriptPaths(run.run_dir)
        text = paths.manifest.read_bytes()
        paths.manifest.write_bytes(text.replace(b'"lr":0.003', b'"lr":0.001'))


class FewerStepsClaimed(_EditAttack):
    """Only the first half of the run is reported (less compute claimed)."""

    name = "hyper-fewer-steps"
    threat = "§5: training compute under-reported (fewer steps claimed)"
    expected = ("snapshot", "precommit-logged")

    def edit(self, run: HonestRun, scale: Scale) -> None:
        """Cut steps, metrics, checkpoints and snapshot claims at the half-way checkpoint."""
        half = scale.half
        paths = TranscriptPaths(run.run_dir)
        for path in (paths.steps, paths.metrics):
            path.write_text("".join(path.read_text().splitlines(keepends=True)[:half]))
        for step in scale.checkpoints:
            if step > half:
                paths.checkpoint(step).unlink()
        manifest = json.loads(paths.manifest.read_text())
        manifest["data"]["steps"] = half
        paths.manifest.write_bytes(_dump(manifest))
        chip_file = paths.chips / f"{run.chip.serial}.json"
        claims = json.loads(chip_file.read_text())
        claims["snapshots"] = [s for s in claims["snapshots"] if s["step"] <= half]
        chip_file.write_text(json.dumps(claims))


class ShardRelocation(_EditAttack):
    """Another chip's snapshots (a different model) claimed as this run's slice.

    The chip of ``bases[1]`` (trained on other data: the "secret" model) is
    claimed to hold this run's slice; its ω copies are moved in.
    """

    name = "shard-relocation"
    threat = "§4-5: a snapshot claimed to belong to another chip's slice / model"
    expected = ("snapshot", "precommit-logged")

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Graft the other chip's claims into the benign transcript."""
        if len(bases) < 2:  # noqa: PLR2004
            msg = "shard relocation needs two honest base runs on two chips"
            raise ValueError(msg)
        del scale  # the relocation is the same at every scale
        run = bases[0].copy(workdir / f"{self.name}-{trial}")
        _relocate(run, bases[1])
        recommit(run.run_dir)
        return Attempt(run=run, evidence=bases[1].evidence())


def _relocate(run: HonestRun, secret: HonestRun) -> None:
    """Move the secret chip's claim and ω files into the benign transcript."""
    bpaths, spaths = TranscriptPaths(run.run_dir), TranscriptPaths(secret.run_dir)
    doc = json.loads((spaths.chips / f"{secret.chip.serial}.json").read_text())
    (bpaths.chips / f"{run.chip.serial}.json").unlink()
    manifest = json.loads(bpaths.manifest.read_text())
    manifest["sharding"]["chips"][0]["serial"] = str(secret.chip.serial)
    doc["slice"] = manifest["sharding"]["chips"][0]["slice"]
    bpaths.manifest.write_bytes(_dump(manifest))
    (bpaths.chips / f"{secret.chip.serial}.json").write_text(json.dumps(doc))
    for f in spaths.snapshots.iterdir():
        (bpaths.snapshots / f.name).write_bytes(f.read_bytes())


class CheckpointRedirect(_EditAttack):
    """The checkpoint index points the Verifier at a file outside the transcript.

    The index is not itself a commitment part: only the digests of the files
    it names are. Odd trials name ``/dev/zero`` (a Verifier that hashes it
    reads forever, and its cluster answers "unavailable" instead of signing
    a FAIL); even trials name a byte-identical copy of the checkpoint kept
    outside the folder, so every digest still matches. Refused by the
    index's parser (`IndexRecord`: a checkpoint's file is its step's own
    name), before anything outside is opened.
    """

    name = "checkpoint-redirect"
    threat = "§5.2: the checkpoint index names a file outside the transcript"
    expected = ("transcript",)

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Copy ``bases[0]`` and redirect its first index line (no recommit: nothing changes)."""
        del scale  # the same at every scale
        run = bases[0].copy(workdir / f"{self.name}-{trial}")
        paths = TranscriptPaths(run.run_dir)
        lines = paths.checkpoint_index.read_bytes().splitlines()
        first = json.loads(lines[0])
        if trial % 2:
            target = "/dev/zero"
        else:
            outside = workdir / f"{self.name}-{trial}-elsewhere.safetensors"
            outside.write_bytes((paths.root / first["file"]).read_bytes())
            target = str(outside.resolve())
        first["file"] = target
        paths.checkpoint_index.write_bytes(b"\n".join([_dump(first), *lines[1:]]) + b"\n")
        return Attempt(run=run)
