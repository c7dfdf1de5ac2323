"""Honest transcripts pass; each spoof of the paper fails, in its own test."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import torch

from computewatch.attacks import recommit
from computewatch.datacenter import DataSchedule, TranscriptPaths, load_checkpoint, save_checkpoint
from computewatch.verification import CheckStatus, Verdict, verify_transcript
from tests.verification.conftest import Run, run_on_chip

if TYPE_CHECKING:
    from pathlib import Path


def failed(verdict: Verdict) -> set[str]:
    return {c.name.split(":")[0] for c in verdict.checks if c.status is CheckStatus.FAIL}


def test_honest_transcript_passes(honest: Run) -> None:
    verdict = honest.verify()
    assert verdict.passed, [c.to_json() for c in verdict.failures]
    names = {c.name.split(":")[0] for c in verdict.checks if c.passed}
    assert {"precommitment", "precommit-logged", "init", "snapshot", "segment"} <= names
    assert verdict.replayed_steps > 0  # snapshots here are far denser than at f = 0.1/day
    # the verdict carries no data, weights or hyperparameters
    text = json.dumps(verdict.to_json())
    assert "0.003" not in text
    assert "lr" not in {k for c in verdict.checks for k in c.metrics}


def test_exact_mode_passes_honest_single_chip_runs(honest: Run) -> None:
    verdict = honest.verify(exact=True)
    assert verdict.passed


def test_tampered_file_fails_the_commitment(honest: Run) -> None:
    metrics = TranscriptPaths(honest.run_dir).metrics
    metrics.write_bytes(metrics.read_bytes().replace(b'"step":3', b'"step":3 ', 1))
    verdict = honest.verify()
    assert not verdict.passed
    assert failed(verdict) == {"transcript"}
    assert "recomputes to commitment" in verdict.failures[0].detail


def test_spoof_omega_claimed_as_the_initialization(honest: Run) -> None:
    # The Prover reports that its run *started* from the weights the chip saw
    # late in training (so ω would be "just the initialization").
    paths = TranscriptPaths(honest.run_dir)
    late = load_checkpoint(paths.checkpoint(24))
    first = load_checkpoint(paths.checkpoint(0))
    save_checkpoint(
        paths.checkpoint(0),
        step=0,
        weights=late.weights,
        optimizer_state=first.optimizer_state,
        param_groups=first.param_groups,
        rng_state=first.rng_state,
        layout_digest=first.layout_digest,
    )
    recommit(honest.run_dir)
    verdict = honest.verify()
    assert "init" in failed(verdict)


def test_spoof_one_long_run_reported_as_several_short_runs(tmp_path: Path) -> None:
    first = run_on_chip(tmp_path, name="part-1", serial="CW-L-1")
    carried = load_checkpoint(TranscriptPaths(first.run_dir).checkpoint(24)).weights
    # part 2 secretly continues from part 1's weights instead of a fresh init
    second = run_on_chip(
        tmp_path,
        name="part-2",
        serial="CW-L-2",
        init=lambda *_a, **_k: carried.clone(),
        data_seed=8,
    )
    assert first.verify().passed
    verdict = second.verify()
    assert "init" in failed(verdict)


def test_spoof_substituted_data_batches(tmp_path: Path) -> None:
    # Precommit to the scheduled (benign) data, train on other points in some steps.
    def substituted(schedule: DataSchedule, step: int, rank: int, world_size: int) -> list[int]:
        idx = schedule.local_indices(step, rank, world_size)
        return [(i + 1) % schedule.dataset_size for i in idx] if step % 3 == 1 else idx

    run = run_on_chip(tmp_path, batches=substituted)
    verdict = run.verify()
    assert not verdict.passed
    assert failed(verdict) & {"snapshot", "segment", "heuristic"}


def test_spoof_checkpoints_fabricated_by_interpolation(honest: Run) -> None:
    paths = TranscriptPaths(honest.run_dir)
    w0 = load_checkpoint(paths.checkpoint(0))
    w24 = load_checkpoint(paths.checkpoint(24))
    for step in (6, 12, 18):
        t = step / 24
        ckpt = load_checkpoint(paths.checkpoint(step))
        save_checkpoint(
            paths.checkpoint(step),
            step=step,
            weights=(1 - t) * w0.weights + t * w24.weights,
            optimizer_state=ckpt.optimizer_state,
            param_groups=ckpt.param_groups,
            rng_state=ckpt.rng_state,
            layout_digest=ckpt.layout_digest,
        )
    recommit(honest.run_dir)
    verdict = honest.verify(budget=1.0)
    assert failed(verdict) & {"segment", "snapshot"}


def test_spoof_different_learning_rate_claimed(honest: Run) -> None:
    paths = TranscriptPaths(honest.run_dir)
    paths.manifest.write_bytes(paths.manifest.read_bytes().replace(b'"lr":0.003', b'"lr":0.001'))
    recommit(honest.run_dir)
    verdict = honest.verify()
    # the chips logged the true precommitment; W_0 and replays no longer fit either
    assert {"precommit-logged", "init"} <= failed(verdict)


def test_spoof_fewer_steps_claimed(honest: Run) -> None:
    paths = TranscriptPaths(honest.run_dir)
    for name in ("steps", "metrics"):
        path = getattr(paths, name)
        path.write_text("".join(path.read_text().splitlines(keepends=True)[:12]))
    for step in (18, 24):
        paths.checkpoint(step).unlink()
    manifest = json.loads(paths.manifest.read_text())
    manifest["data"]["steps"] = 12
    paths.manifest.write_bytes(json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
    chip_file = paths.chips / f"{honest.chip.serial}.json"
    claims = json.loads(chip_file.read_text())
    claims["snapshots"] = [s for s in claims["snapshots"] if s["step"] <= 12]
    chip_file.write_text(json.dumps(claims))
    recommit(honest.run_dir)
    verdict = honest.verify()
    # snapshots the chip logged after step 12 are unaccounted for
    assert failed(verdict) & {"snapshot", "precommit-logged"}


def test_spoof_omega_claimed_as_a_slice_of_a_different_model(tmp_path: Path) -> None:
    # The chip saw a bigger secret model; the Prover claims its snapshots
    # belong to a small benign model with the same run id.
    secret = run_on_chip(tmp_path, name="secret", config={**_tiny(), "n_embd": 48, "n_head": 2})
    benign = run_on_chip(tmp_path, name="benign", serial="CW-V-9")
    bpaths = TranscriptPaths(benign.run_dir)
    spaths = TranscriptPaths(secret.run_dir)
    # move the secret chip's claims and ω files into the benign transcript
    doc = json.loads((spaths.chips / f"{secret.chip.serial}.json").read_text())
    (bpaths.chips / f"{benign.chip.serial}.json").unlink()
    manifest = json.loads(bpaths.manifest.read_text())
    manifest["sharding"]["chips"][0]["serial"] = str(secret.chip.serial)
    doc["slice"] = manifest["sharding"]["chips"][0]["slice"]
    bpaths.manifest.write_bytes(
        json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    )
    (bpaths.chips / f"{secret.chip.serial}.json").write_text(json.dumps(doc))
    for f in spaths.snapshots.iterdir():
        (bpaths.snapshots / f.name).write_bytes(f.read_bytes())
    recommit(benign.run_dir)
    verdict = verify_transcript(
        benign.run_dir,
        bpaths.report,
        secret.evidence(),
        rng=__import__("numpy").random.default_rng(1),
    )
    assert failed(verdict) & {"snapshot", "precommit-logged"}
    assert not verdict.passed


def test_unreadable_report_is_a_failed_verdict_not_a_crash(honest: Run, tmp_path: Path) -> None:
    bad = tmp_path / "report.json"
    bad.write_text("{not json")
    verdict = verify_transcript(honest.run_dir, bad, honest.evidence())
    assert not verdict.passed
    assert "malformed" in verdict.checks[0].detail
    assert verify_transcript(tmp_path / "nowhere", {"format": "x"}, []).passed is False


def _tiny() -> dict[str, object]:
    from tests.datacenter.conftest import TINY  # noqa: PLC0415

    return dict(TINY)


def test_w0_and_weights_are_float32(honest: Run) -> None:
    ckpt = load_checkpoint(TranscriptPaths(honest.run_dir).checkpoint(0))
    assert ckpt.weights.dtype == torch.float32


def test_a_chip_that_logged_other_code_fails_its_chip_run_check(
    honest: Run, tmp_path: Path
) -> None:
    import numpy as np  # noqa: PLC0415

    from computewatch.chip import Chip, ManualClock, read_chip_log, sign_firmware  # noqa: PLC0415
    from computewatch.crypto import Digest, json_digest  # noqa: PLC0415
    from computewatch.testing import maker_key  # noqa: PLC0415
    from computewatch.verification import ChipEvidence, VerificationPolicy  # noqa: PLC0415

    report = json.loads(TranscriptPaths(honest.run_dir).report.read_text())
    folder = tmp_path / "liar"
    with Chip.provision(folder, "CW-LIAR", maker_key().verifying_key, clock=ManualClock()) as chip:
        chip.boot(sign_firmware(name="fw", version=1, code=b"fw", chipmaker=maker_key()))
        chip.precommit(report["run_id"], Digest.parse(report["precommitment"]))
        other = json_digest({"code": "not the transcript's"})
        chip.register(report["run_id"], {"w": torch.zeros(4)}, other, tmp_path / "o")
        chip.snapshot_now(1)
        key = chip.public_key
    liar = ChipEvidence.from_log("CW-LIAR", key, read_chip_log(folder / "nvram.log"))
    verdict = verify_transcript(
        honest.run_dir,
        TranscriptPaths(honest.run_dir).report,
        [*honest.evidence(), liar],
        VerificationPolicy(budget=0.0),
        np.random.default_rng(1),
    )
    checks = {c.name: c for c in verdict.checks}
    assert checks[f"chip-run:{honest.chip.serial}"].status is CheckStatus.PASS
    lie = checks["chip-run:CW-LIAR"]
    assert lie.status is CheckStatus.FAIL
    assert "code-hash-mismatch" in lie.detail
    assert not verdict.passed
