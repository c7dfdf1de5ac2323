"""Rules on verified facts, in `verify_transcript` and signed by the trusted cluster."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from computewatch.crypto import SigningKey
from computewatch.datacenter import Trainer, TranscriptPaths, load_checkpoint, load_program
from computewatch.errors import FormatError, IntegrityError
from computewatch.rules import FileBitsPerByte, load_rules
from computewatch.verification import (
    ChipInput,
    ClusterJob,
    VerificationPolicy,
    cluster_verify,
    read_verdict,
    verify_transcript,
)

if TYPE_CHECKING:
    from tests.verification.conftest import Run

RULES = Path(__file__).resolve().parents[2] / "examples" / "rules.yaml"


def test_rules_are_evaluated_on_verified_facts(honest: Run) -> None:
    rules = load_rules(RULES)
    verdict = verify_transcript(
        honest.run_dir,
        TranscriptPaths(honest.run_dir).report,
        honest.evidence(),
        VerificationPolicy(budget=0.25),
        np.random.default_rng(2),
        rules=rules,
        declared={"reported": False, "approvals": []},
    )
    statuses = {r["id"]: r["status"] for r in verdict.rules}
    assert set(statuses) == {r.id for r in rules.rules}
    # the tiny run is far below every compute threshold and trains on clean data
    assert statuses["report-large-runs"] == "not_applicable"
    assert statuses["no-exploit-code"] == "not_applicable"
    assert verdict.passed, verdict.violations
    # only outcomes leave the cluster: no data estimates, scores or hyperparameters
    text = json.dumps(verdict.to_json())
    assert "bits_per_byte" not in text
    assert "exploit_code" not in text
    assert "n_embd" not in text


def test_a_violated_rule_fails_the_verdict(honest: Run, tmp_path: Path) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text(
        "version: 1\nname: strict\nrules:\n  - id: no-training-at-all\n    kind: ban\n"
        '    when: "training.flops > 0.0"\n'
    )
    verdict = verify_transcript(
        honest.run_dir,
        TranscriptPaths(honest.run_dir).report,
        honest.evidence(),
        VerificationPolicy(budget=0.25),
        np.random.default_rng(2),
        rules=load_rules(strict),
    )
    assert verdict.violations == [
        {"id": "no-training-at-all", "kind": "ban", "status": "violation"}
    ]
    assert not verdict.passed


def test_cluster_evaluates_rules_and_signs_their_outcomes(honest: Run, tmp_path: Path) -> None:
    pub = tmp_path / "chip.pub"
    honest.chip.public_key.save(pub)
    job = ClusterJob(
        transcript=honest.run_dir,
        report=TranscriptPaths(honest.run_dir).report,
        chips=(ChipInput(str(honest.chip.serial), pub, honest.chip.log_path),),
        policy=VerificationPolicy(budget=0.25),
        seed=3,
        rules=RULES,
        declared={"reported": True, "approvals": []},
    )
    key = SigningKey.generate()
    envelope, verdict = cluster_verify(job, key=key)
    assert verdict.passed, verdict.failures
    assert len(verdict.rules) == 5
    assert read_verdict(envelope, key.verifying_key).rules == verdict.rules


def test_a_bad_rule_file_is_the_verifiers_fault(tmp_path: Path) -> None:
    bad_rules = tmp_path / "r.yaml"
    bad_rules.write_text("version: 1\nrules: []\n")
    job = ClusterJob(transcript=tmp_path, report=tmp_path / "r.json", rules=bad_rules)
    with pytest.raises(FormatError):
        cluster_verify(job, key=SigningKey.generate())


HELDOUT = RULES.parent / "heldout.txt"


def _expected_score(run: Run, data: bytes) -> float:
    """The file benchmark's score of the run's final checkpoint, computed here directly."""
    paths = TranscriptPaths(run.run_dir)
    manifest = json.loads(paths.manifest.read_text())
    program, _ = load_program(paths.program)
    trainer = Trainer(program, manifest["config"])
    final = max(int(c["step"]) for c in json.loads(paths.report.read_text())["checkpoints"])
    trainer.load(load_checkpoint(paths.checkpoint(final)))
    return FileBitsPerByte("x", data, points=64).score(trainer.model, program, trainer.config)


def test_a_declared_file_benchmark_is_what_the_cluster_scores(honest: Run, tmp_path: Path) -> None:
    data = HELDOUT.read_bytes()
    shutil.copy(HELDOUT, tmp_path / "heldout.txt")
    (tmp_path / "short.txt").write_bytes(b"tiny")  # shorter than one data point
    score = _expected_score(honest, data)
    lo, hi = score - 1e-3, score + 1e-3
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "version: 1\nname: bench\nbenchmarks:\n"
        "  - {name: heldout, kind: file-bits-per-byte, file: heldout.txt, points: 64,\n"
        f"     sha256: '{hashlib.sha256(data).hexdigest()}'}}\n"
        "  - {name: too_short, kind: file-bits-per-byte, file: short.txt,\n"
        f"     sha256: '{hashlib.sha256(b'tiny').hexdigest()}'}}\n"
        "rules:\n"
        f"  - {{id: in-band, kind: ban, when: 'benchmarks.heldout < {lo!r} || "
        f"benchmarks.heldout > {hi!r}'}}\n"
        f"  - {{id: above-low, kind: ban, when: 'benchmarks.heldout > {lo!r}'}}\n"
        "  - {id: undeclared, kind: ban, when: 'has(benchmarks.bits_per_byte)'}\n"
        "  - {id: needs-short, kind: mitigation, when: 'true',\n"
        "     require: 'benchmarks.too_short < 100.0'}\n"
    )
    verdict = verify_transcript(
        honest.run_dir,
        TranscriptPaths(honest.run_dir).report,
        honest.evidence(),
        VerificationPolicy(budget=0.0, max_replayed_snapshots=0),
        np.random.default_rng(2),
        rules=load_rules(rules),
    )
    statuses = {r["id"]: r["status"] for r in verdict.rules}
    assert statuses == {
        "in-band": "not_applicable",  # the score in the facts is the file's score
        "above-low": "violation",  # ... so a rule on it can fire
        "undeclared": "not_applicable",  # only what the rule file declares is scored
        "needs-short": "error",  # no fact for a benchmark that could not run: fail closed
    }
    (short,) = [c for c in verdict.failures if c.name == "benchmark:too_short"]
    assert "benchmark unavailable" in short.detail
    assert "shorter than one data point" in short.detail
    assert not any(c.name == "benchmark:heldout" for c in verdict.checks)


def test_a_changed_benchmark_resource_is_refused(tmp_path: Path) -> None:
    shutil.copy(RULES, tmp_path / "rules.yaml")
    (tmp_path / "heldout.txt").write_bytes(HELDOUT.read_bytes() + b"# one more line\n")
    with pytest.raises(
        IntegrityError, match=r"benchmark 'heldout_text_bpb' file .*sha256 mismatch"
    ):
        load_rules(tmp_path / "rules.yaml")
    (tmp_path / "heldout.txt").unlink()
    with pytest.raises(FormatError, match=r"benchmark 'heldout_text_bpb' file .*cannot read"):
        load_rules(tmp_path / "rules.yaml")
    job = ClusterJob(transcript=tmp_path, report=tmp_path / "r.json", rules=tmp_path / "rules.yaml")
    with pytest.raises(FormatError, match="heldout"):
        cluster_verify(job, key=SigningKey.generate())
