"""Hostile training programs: the Prover's code never touches the verdict.

One honest run and one doctored copy (a checkpoint nudged: an honest
verification fails it) share a training program whose payload fires only in
a replay worker and is picked by ``$CW_HOSTILE``. Every payload must end in
a failing verdict (signed, through the cluster) and never in a PASS.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from computewatch.attacks import ATTACKS
from computewatch.attacks._harness import SCALE, HonestRun, run_on_chip
from computewatch.attacks._hostile import doctor_checkpoint, hostile_source
from computewatch.crypto import SigningKey
from computewatch.datacenter import TranscriptPaths
from computewatch.verification import (
    ChipInput,
    ClusterJob,
    LocalPool,
    Verdict,
    VerificationPolicy,
    WorkerLimits,
    cluster_verify,
    read_verdict,
    verify_transcript,
)
from computewatch.verification._zygote import ForkServer

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow

POLICY = VerificationPolicy(budget=1.0, max_replayed_snapshots=2, max_forward_checks=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[HonestRun, HonestRun]:
    workdir = tmp_path_factory.mktemp("hostile")
    program = workdir / "hostile.py"
    program.write_text(hostile_source("", workdir / "doctored"))
    honest = run_on_chip(workdir, "honest", serial="CW-HT-0", program_path=program)
    doctored = honest.copy(workdir / "doctored")
    doctor_checkpoint(doctored, 12)
    return honest, doctored


def _verify(run: HonestRun, **limits: object) -> Verdict:
    engine = LocalPool(workers=2, limits=WorkerLimits(**limits))  # type: ignore[arg-type]
    return verify_transcript(
        run.run_dir,
        TranscriptPaths(run.run_dir).report,
        run.evidence(),
        POLICY,
        np.random.default_rng(11),
        engine=engine,
    )


def _reasons(verdict: Verdict) -> str:
    return " | ".join(f"{c.name}: {c.detail}" for c in verdict.failures)


def test_the_doctored_run_fails_and_the_honest_one_passes(
    runs: tuple[HonestRun, HonestRun],
) -> None:
    honest, doctored = runs
    assert _verify(honest).passed
    failed = _verify(doctored)
    assert not failed.passed
    assert any(c.name.startswith(("segment:", "snapshot:")) for c in failed.failures)


def test_a_verdict_printed_at_import_gets_a_signed_fail(
    runs: tuple[HonestRun, HonestRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, doctored = runs
    monkeypatch.setenv("CW_HOSTILE", "print-verdict")
    pub = tmp_path / "chip.pub"
    doctored.chip.public_key.save(pub)
    job = ClusterJob(
        transcript=doctored.run_dir,
        report=TranscriptPaths(doctored.run_dir).report,
        chips=(ChipInput(str(doctored.chip.serial), pub, doctored.chip.log_path),),
        policy=VerificationPolicy(budget=1.0),
        seed=4,
        workers=2,
    )
    key = SigningKey.generate()
    envelope, verdict = cluster_verify(job, key=key)
    signed = read_verdict(envelope, key.verifying_key)
    assert not signed.passed
    assert signed.to_json() == verdict.to_json()
    assert any(c.name.startswith(("segment:", "snapshot:")) for c in signed.failures)


@pytest.mark.parametrize("mode", ["patch-verifier", "read-outside", "read-transcript", "noise"])
def test_payloads_that_try_to_pass_a_doctored_run_fail(
    runs: tuple[HonestRun, HonestRun], mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, doctored = runs
    monkeypatch.setenv("CW_HOSTILE", mode)
    verdict = _verify(doctored)
    assert not verdict.passed, mode
    assert verdict.failures


def test_a_worker_reaches_no_process_outside_its_sandbox(
    runs: tuple[HonestRun, HonestRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The payload looks for the zygote (signals, /proc/PID/root, leaked descriptors)."""
    honest, doctored = runs
    zygote = ForkServer.shared(os.environ)
    if zygote is not None:
        # the route is real from outside a sandbox: through the zygote's /proc
        # entry a process that could name it would read the answers
        door = Path(f"/proc/{zygote.pid}/root") / doctored.run_dir.resolve().relative_to("/")
        assert any(door.glob("checkpoints/*.safetensors"))
    monkeypatch.setenv("CW_HOSTILE", "reach-zygote")
    clean = _verify(honest)
    assert clean.passed, _reasons(clean)[:1500]  # it found nothing: an honest run is untouched
    verdict = _verify(doctored)
    assert not verdict.passed
    assert any(c.name.startswith(("segment:", "snapshot:")) for c in verdict.failures)
    if zygote is not None:  # it could neither name nor kill the zygote that forked it
        assert ForkServer.shared(os.environ) is zygote
        assert not zygote.dead
        assert _alive(zygote.pid)


@pytest.mark.parametrize(
    "mode", ["print-verdict", "patch-verifier", "read-outside", "reach-zygote"]
)
def test_the_corpus_hostile_programs_are_caught(tmp_path: Path, mode: str) -> None:
    attack = next(a for a in ATTACKS if a.name == f"hostile-{mode}")
    attempt = attack.create(tmp_path, 0, [], SCALE)
    result = attack.detect(attempt, VerificationPolicy(), np.random.default_rng(0))
    assert result.detected, result
    assert {"snapshot", "segment"} & set(result.checks), result.checks


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    received: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                received.append(conn.recv(1024))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join()
    server.close()


def test_a_program_that_opens_a_socket_reaches_nothing_and_fails(
    runs: tuple[HonestRun, HonestRun],
    listener: tuple[int, list[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    honest, _ = runs
    port, received = listener
    monkeypatch.setenv("CW_HOSTILE", "socket")
    monkeypatch.setenv("CW_HOSTILE_PORT", str(port))
    # the listener works from outside the sandbox
    with socket.create_connection(("127.0.0.1", port)) as probe:
        probe.sendall(b"probe")
    verdict = _verify(honest)
    assert not verdict.passed
    assert "replay worker" in _reasons(verdict)
    assert received in ([], [b"probe"])
    assert b"exfiltrated weights" not in received


@pytest.mark.parametrize(
    ("mode", "limits", "why"),
    [
        ("sleep", {"timeout_s": 1.0}, "expected to finish within"),
        ("allocate", {"memory_bytes": 3 << 30}, "MemoryError"),
        ("exit0", {}, "expected a safetensors result"),
    ],
)
def test_workers_that_hang_blow_up_or_say_nothing_fail_their_checks(
    runs: tuple[HonestRun, HonestRun],
    mode: str,
    limits: dict[str, object],
    why: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    honest, _ = runs
    monkeypatch.setenv("CW_HOSTILE", mode)
    verdict = _verify(honest, **limits)
    assert not verdict.passed
    assert why in _reasons(verdict), _reasons(verdict)[:500]
    json.dumps(verdict.to_json())  # a verdict, not a traceback


def _descendants(root: int) -> dict[int, str]:
    """Pid -> command line of every live descendant of `root` (from /proc)."""
    parents: dict[int, int] = {}
    lines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out: dict[int, str] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in out:
                out[child] = lines.get(child, "")
                frontier.append(child)
    return out


def _in_sandbox(pid: int) -> bool:
    """Whether `pid` runs in a PID namespace below the host's (a sandboxed process)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    lines = [line.split() for line in status.splitlines() if line.startswith("NSpid:")]
    return bool(lines) and len(lines[0]) > 2  # "NSpid:", the host pid, the inner pid


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killing_cluster_verify_kills_its_sandboxed_workers(
    runs: tuple[HonestRun, HonestRun], tmp_path: Path, sig: signal.Signals
) -> None:
    honest, _ = runs
    key = tmp_path / "cluster.key"
    SigningKey.generate().save(key)
    pub = tmp_path / "chip.pub"
    honest.chip.public_key.save(pub)
    argv = [
        sys.executable,
        "-m",
        "computewatch",
        "cluster",
        "verify",
        "--transcript",
        str(honest.run_dir),
        "--report",
        str(TranscriptPaths(honest.run_dir).report),
        "--key",
        str(key),
        "--out",
        str(tmp_path / "verdict.json"),
        "--chip",
        f"{honest.chip.serial},{pub},{honest.chip.log_path}",
    ]
    env = {**os.environ, "CW_HOSTILE": "sleep"}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        workers: dict[int, str] = {}
        for _ in range(1200):  # until a sandboxed worker runs (bounded wait, not a timing check)
            # a replay worker is exec'd under unshare(1) or forked from the zygote:
            # either way it is a descendant in a PID namespace of its own
            workers = {p: c for p, c in _descendants(proc.pid).items() if _in_sandbox(p)}
            if workers or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert workers, "no sandboxed replay worker started"
        tree = _descendants(proc.pid)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        for _ in range(600):
            if not any(_alive(pid) for pid in tree):
                break
            time.sleep(0.1)
        left = {pid: cmd for pid, cmd in tree.items() if _alive(pid)}
        assert not left, left
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
