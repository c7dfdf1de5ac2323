"""Fixtures: honest runs on a chip, and a spoofer's toolkit."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from computewatch.chip import Chip, read_chip_log, sign_firmware
from computewatch.crypto import Digest, SigningKey, canonical_json
from computewatch.datacenter import (
    TranscriptPaths,
    batch_root,
    compute_commitment,
    data_root,
    manifest_digest,
    precommitment,
    train,
)
from computewatch.verification import ChipEvidence, Verdict, VerificationPolicy, verify_transcript
from tests.datacenter.conftest import make_spec

if TYPE_CHECKING:
    from pathlib import Path

#: Snapshots every few steps in real time (steps take tens of milliseconds).
FAST_RATE = 86_400.0 * 40


@dataclass
class Run:
    """An honest run: its folder, its chip, and the Verifier's view of the chip."""

    run_dir: Path
    chip: Chip
    maker: SigningKey

    def evidence(self) -> list[ChipEvidence]:
        return [
            ChipEvidence.from_log(
                str(self.chip.serial), self.chip.public_key, read_chip_log(self.chip.log_path)
            )
        ]

    def verify(self, **policy: Any) -> Verdict:
        return verify_transcript(
            self.run_dir,
            TranscriptPaths(self.run_dir).report,
            self.evidence(),
            VerificationPolicy(**{"budget": 0.25, **policy}),
            np.random.default_rng(5),
        )


def run_on_chip(tmp_path: Path, name: str = "run", serial: str = "CW-V-0", **spec: Any) -> Run:
    maker = SigningKey.from_seed(b"verification-tests-maker-seed-00")
    chip = Chip.provision(tmp_path / f"chip-{serial}", serial, maker.verifying_key)
    chip.boot(
        sign_firmware(
            name="fw", version=1, code=b"fw", chipmaker=maker, snapshot_rate_per_day=FAST_RATE
        )
    )
    train(make_spec(**{"steps": 24, "checkpoint_every": 6, **spec}), tmp_path / name, chip=chip)
    chip.flush()
    return Run(tmp_path / name, chip, maker)


@pytest.fixture
def honest(tmp_path: Path) -> Run:
    return run_on_chip(tmp_path)


def recommit(run_dir: Path) -> None:
    """Make a doctored transcript self-consistent again, as a capable spoofer would.

    Recomputes batch roots, the precommitment, the commitment and the report
    from whatever the files now say.
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
    index = []
    for ckpt in sorted(paths.checkpoints.glob("step-*.safetensors")):
        step = int(ckpt.stem.split("-")[1])
        from computewatch.datacenter import file_digest  # noqa: PLC0415

        index.append(
            {"step": step, "file": f"checkpoints/{ckpt.name}", "digest": str(file_digest(ckpt))}
        )
    paths.checkpoint_index.write_bytes(b"".join(canonical_json(i) + b"\n" for i in index))
    manifest = json.loads(paths.manifest.read_text())
    root, parts, claims = compute_commitment(run_dir)
    report = json.loads(paths.report.read_text())
    report.update(
        commitment=str(root),
        precommitment=str(precommitment(manifest_digest(manifest), data_root(roots))),
        manifest_digest=parts["manifest"],
        code_hash=parts["code"],
        data_root=parts["data"],
        batch_roots=[str(r) for r in roots],
        checkpoints=[{"step": i["step"], "digest": i["digest"]} for i in index],
        steps=manifest["data"]["steps"],
        snapshots=claims,
    )
    paths.report.write_bytes(canonical_json(report))
    paths.commitment.write_bytes(canonical_json({"root": str(root), "parts": parts}))


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
