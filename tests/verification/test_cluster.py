"""The trusted cluster end to end: sandboxed verification and a signed verdict."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING

import pytest

from computewatch.cli import main
from computewatch.crypto import Envelope, SigningKey
from computewatch.datacenter import TranscriptPaths
from computewatch.errors import IntegrityError, ParameterError
from computewatch.verification import (
    ChipInput,
    ClusterJob,
    VerificationPolicy,
    cluster_verify,
    read_verdict,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.verification.conftest import Run


def _job(honest: Run, tmp_path: Path, policy: VerificationPolicy | None = None) -> ClusterJob:
    tmp_path.mkdir(parents=True, exist_ok=True)
    pub = tmp_path / "chip.pub"
    honest.chip.public_key.save(pub)
    return ClusterJob(
        transcript=honest.run_dir,
        report=TranscriptPaths(honest.run_dir).report,
        chips=(ChipInput(str(honest.chip.serial), pub, honest.chip.log_path),),
        seed=7,
        policy=policy or VerificationPolicy(budget=0.25),
    )


@pytest.mark.slow
def test_cluster_verdict_is_signed_and_isolated(honest: Run, tmp_path: Path) -> None:
    key = SigningKey.generate()
    envelope, verdict = cluster_verify(_job(honest, tmp_path), key=key)
    assert verdict.passed
    assert all(verdict.isolation["layers"].values())
    again = read_verdict(envelope.to_json(), key.verifying_key)
    assert again.to_json() == verdict.to_json()
    # a forged or edited verdict is refused
    doc = json.loads(envelope.payload)
    doc["verdict"] = "pass"
    doc["checks"] = []
    forged = Envelope(envelope.payload_type, json.dumps(doc).encode(), envelope.signatures)
    with pytest.raises(IntegrityError):
        read_verdict(forged, key.verifying_key)
    with pytest.raises(IntegrityError):
        read_verdict(envelope, SigningKey.generate().verifying_key)


@pytest.mark.slow
def test_cluster_honours_the_replay_cap(honest: Run, tmp_path: Path) -> None:
    key = SigningKey.generate()
    capped_policy = VerificationPolicy(budget=0.25, max_compute=0.25)
    _, capped = cluster_verify(_job(honest, tmp_path / "a", capped_policy), key=key)
    _, free = cluster_verify(_job(honest, tmp_path / "b"), key=key)
    assert capped.passed
    assert free.passed
    assert capped.compute_fraction <= 0.25
    assert free.compute_fraction > capped.compute_fraction
    assert capped.policy == capped_policy.to_dict()


def test_a_policy_asking_for_more_than_the_clusters_cap_is_refused(tmp_path: Path) -> None:
    job = ClusterJob(transcript=tmp_path, report=tmp_path / "r.json")  # no cap asked for
    with pytest.raises(ParameterError, match=r"field .max_compute.*at most 0\.1.*no cap"):
        cluster_verify(job, key=SigningKey.generate(), compute_cap=0.1)
    job = dataclasses.replace(job, policy=VerificationPolicy(max_compute=0.5))
    with pytest.raises(ParameterError, match=r"asks for 0\.5"):
        cluster_verify(job, key=SigningKey.generate(), compute_cap=0.1)


@pytest.mark.slow
def test_cluster_cli_pass_and_fail(
    honest: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "cluster.key"
    assert main(["keys", "generate", str(key)]) == 0
    job = _job(honest, tmp_path)
    chip = f"{job.chips[0].serial},{job.chips[0].public_key},{job.chips[0].log}"
    argv = [
        "cluster",
        "verify",
        "--transcript",
        str(honest.run_dir),
        "--report",
        str(job.report),
        "--key",
        str(key),
        "--out",
        str(tmp_path / "verdict.json"),
        "--chip",
        chip,
        "--budget",
        "0.25",
        "--seed",
        "3",
        "--json",
    ]
    capsys.readouterr()
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "pass"
    assert (tmp_path / "verdict.json").exists()
    # tamper with a checkpoint: the cluster says fail (exit 1), it does not crash
    ckpt = TranscriptPaths(honest.run_dir).checkpoint(12)
    data = bytearray(ckpt.read_bytes())
    data[-3] ^= 0x40
    ckpt.write_bytes(bytes(data))
    assert main(argv) == 1
    assert json.loads(capsys.readouterr().out)["verdict"] == "fail"


def test_cluster_cli_bad_chip_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r.json").write_text("{}")  # the report and key exist: the chip spec is wrong
    (tmp_path / "k").write_text("key")
    code = main(
        [
            "cluster",
            "verify",
            "--transcript",
            str(tmp_path),
            "--report",
            str(tmp_path / "r.json"),
            "--key",
            str(tmp_path / "k"),
            "--out",
            str(tmp_path / "v.json"),
            "--chip",
            "only-a-serial",
        ]
    )
    assert code == 2
    assert "SERIAL,PUBLIC_KEY.pem,LOG" in capsys.readouterr().err


def _digest(root: Path) -> str:
    """One hash over every file's relative path and bytes under ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


@pytest.mark.slow
def test_cluster_reads_each_log_against_the_attested_count_and_writes_no_evidence(
    honest: Run, tmp_path: Path
) -> None:
    job = _job(honest, tmp_path / "job")
    chip_dir, run_dir = honest.chip.log_path.parent, honest.run_dir
    before = (_digest(chip_dir), _digest(run_dir))
    _, verdict = cluster_verify(job, key=SigningKey.generate())
    assert verdict.passed
    names = {c.name for c in verdict.checks}
    assert f"chip-run:{honest.chip.serial}" in names  # logged code hash, steps vs transcript
    assert (_digest(chip_dir), _digest(run_dir)) == before  # verification wrote nothing
    log = honest.chip.log_path
    lines = log.read_bytes().splitlines(keepends=True)
    cuts = {
        "cut short": b"".join(lines[:-1]),
        "emptied": b"",
        "torn": b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2],
    }
    for name, data in cuts.items():
        log.write_bytes(data)
        tampered = _digest(chip_dir)
        with pytest.raises(IntegrityError, match=r"attest|entries|torn|expected"):
            cluster_verify(job, key=SigningKey.generate())
        assert _digest(chip_dir) == tampered, name  # not repaired either


@pytest.mark.slow
def test_cluster_cli_audits_steps_from_the_provers_answer_folder(
    honest: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from computewatch.verification import answer_challenge  # noqa: PLC0415

    key = tmp_path / "cluster.key"
    assert main(["keys", "generate", str(key)]) == 0
    job = _job(honest, tmp_path)
    answers = tmp_path / "answers"
    answer_challenge(honest.run_dir, range(24), answers)  # the Prover, out of band
    chip = f"{job.chips[0].serial},{job.chips[0].public_key},{job.chips[0].log}"
    argv = ["cluster", "verify", "--transcript", str(honest.run_dir), "--report", str(job.report),
            "--key", str(key), "--out", str(tmp_path / "v.json"), "--chip", chip,
            "--budget", "0.01", "--audit-fraction", "0.5", "--seed", "3", "--json",
            "--answers", str(answers)]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "pass"
    audits = next(c for c in doc["checks"] if c["name"] == "audits")
    assert audits["status"] == "pass"
    assert doc["policy"]["audit_fraction"] == 0.5
    # a Prover that answers with the state one step later is refused
    for path in answers.glob("state-*.safetensors"):
        step = int(path.stem.split("-")[1])
        if step % 6 not in {0, 5}:
            path.write_bytes((answers / f"state-{step + 1}.safetensors").read_bytes())
    assert main(argv) == 1
    doc = json.loads(capsys.readouterr().out)
    assert any(c["name"].startswith("audit:") and c["status"] == "fail" for c in doc["checks"])
    assert main([*argv[:-3], "--audit-fraction", "1.5"]) == 2
