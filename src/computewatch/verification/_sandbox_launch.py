"""Starting the sandbox's init and collecting its pipes (private; see `_sandbox`)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from computewatch.verification import _sandbox_init, _sandbox_root, _zygote
from computewatch.verification._isolation import (
    Isolation,
    Layer,
    SandboxError,
    SandboxOutputTooLarge,
    SandboxTimeout,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "UNSHARE_ENV",
    "ZYGOTE_ENV",
    "Attempt",
    "Limits",
    "Outcome",
    "attempts",
    "failure",
    "kill_group",
    "last_line",
    "launch",
    "make_spec",
    "parse_status",
    "preload_stacks",
    "refusal",
]

_INIT = Path(_sandbox_init.__file__).resolve()
_STDERR_TAIL = 64 * 1024
_STATUS_MAX = 64 * 1024
_READ_CHUNK = 1 << 16
_POLL_S = 0.05
_DRAIN_GRACE_S = 1.0
_HOST_NS = ("net", "mnt", "ipc")
_SIGNAL_BASE = 128  # the init exits 128 + N when signal N killed the command
_PR_SET_PDEATHSIG = 1
#: Environment variable naming the ``unshare`` binary (default: found on PATH).
UNSHARE_ENV = "COMPUTEWATCH_UNSHARE"
#: Set to ``0`` to exec every replay worker instead of forking it from the zygote.
ZYGOTE_ENV = "COMPUTEWATCH_ZYGOTE"


@dataclass(frozen=True, slots=True)
class Attempt:
    method: str
    prefix: tuple[str, ...]  # the unshare command line, empty for a plain subprocess
    mode: str  # "isolate" or "bare"
    fork: bool = False  # fork the replay worker from the zygote (`_zygote`)


@dataclass(frozen=True, slots=True)
class Outcome:
    returncode: int
    stdout: bytes
    stderr: bytes
    status: bytes


# ---------------------------------------------------------------- launching


def _forks_from_zygote() -> bool:
    """Whether replay workers fork from the zygote here (root, and not opted out)."""
    return os.geteuid() == 0 and os.environ.get(ZYGOTE_ENV) != "0"


def attempts(
    unshare: str | os.PathLike[str] | None,
    skip: frozenset[Layer],
    *,
    strict: bool,
    failures: list[str],
    command: Sequence[str] = (),
) -> list[Attempt]:
    """Return the ways to start the sandbox, best first; note why others are impossible.

    The replay worker (`command` is ``python -m`` `_zygote.WORKER_MODULE``)
    is forked from the zygote first, as root; the others are exec'd.
    """
    named = unshare if unshare is not None else os.environ.get(UNSHARE_ENV)
    binary = str(named) if named is not None else shutil.which("unshare")
    attempts = []
    worker = [sys.executable, "-m", _zygote.WORKER_MODULE]
    if list(command[:3]) == worker and _forks_from_zygote():
        attempts.append(Attempt("zygote fork, unshare(2) as root", (), "isolate", fork=True))
    if binary is None:
        failures.append("unshare(1): not found on PATH (install util-linux)")
    elif not os.access(binary, os.X_OK):
        failures.append(f"unshare(1): expected an executable at {binary!r}, got none")
    else:
        flags = ["--mount", "--propagation", "private", "--fork", "--kill-child"]
        if Layer.NETWORK not in skip:
            flags.append("--net")
        if Layer.PROCESSES not in skip:
            flags += ["--pid", "--ipc", "--mount-proc"]
        if os.geteuid() == 0:
            attempts.append(Attempt("unshare(1) as root", (binary, *flags, "--"), "isolate"))
        attempts.append(
            Attempt(
                "unshare(1) in a user namespace",
                (binary, "--user", "--map-root-user", *flags, "--"),
                "isolate",
            )
        )
    if not strict:
        attempts.append(Attempt("none (plain subprocess)", (), "bare"))
    return attempts


@dataclass(frozen=True, slots=True)
class Limits:
    """What every launch of one call shares: environment, scratch and bounds."""

    env: Mapping[str, str]
    scratch: Path
    deadline: float
    timeout: float
    max_output: int
    program: str


def make_spec(
    *,
    mode: str,
    strict: bool,
    inputs: Sequence[Path],
    scratch: Path,
    scratch_bytes: int,
    skip: frozenset[Layer],
    command: Sequence[str],
    hide: Sequence[Path] = (),
) -> dict[str, Any]:
    """Return the init's instructions (see `_sandbox_init`)."""
    root = Path("/").stat()
    return {
        "hide": [str(p) for p in hide],
        "mode": mode,
        "strict": strict,
        "inputs": [str(p) for p in inputs],
        "scratch": str(scratch),
        "scratch_bytes": scratch_bytes,
        "skip": sorted(layer.value for layer in skip),
        "host_ns": {kind: str(Path(f"/proc/self/ns/{kind}").readlink()) for kind in _HOST_NS},
        "argv": list(command),
        # what of the host the command may see besides its inputs (`_sandbox_root`)
        "root": _sandbox_root.visible_paths(),
        "host_root": [root.st_dev, root.st_ino],
    }


_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In the forked child: SIGKILL it when the thread that started it dies.

    ``unshare --kill-child`` passes the same on to the init, and the init to
    the command, so killing the verifier (SIGTERM, SIGKILL) takes every
    sandboxed descendant with it.
    """
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class _Process(Protocol):
    """What `_collect` needs of a started init: a Popen, or a zygote's fork."""

    @property
    def pid(self) -> int: ...
    @property
    def stdout(self) -> IO[bytes] | None: ...
    @property
    def stderr(self) -> IO[bytes] | None: ...
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...


def launch(attempt: Attempt, spec: dict[str, Any], limits: Limits) -> Outcome:
    """Start the init under `attempt`, collect stdout/stderr/status, enforce the bounds."""
    status_r, status_w = os.pipe()
    proc: _Process
    try:
        proc = (
            _fork(spec, limits, status_w)
            if attempt.fork
            else _popen(attempt, spec, limits, status_w)
        )
    except OSError as e:
        os.close(status_r)
        return Outcome(-1, b"", f"cannot start: {e}".encode(), b"")
    finally:
        os.close(status_w)
    try:
        return _collect(proc, status_r, limits)
    finally:
        os.close(status_r)
        if proc.poll() is None:
            kill_group(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _popen(attempt: Attempt, spec: dict[str, Any], limits: Limits, status_w: int) -> _Process:
    spec = {**spec, "status_fd": status_w}
    init = (sys.executable, "-I", "-S", "-B", str(_INIT), json.dumps(spec))
    return subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        [*attempt.prefix, *init],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(limits.env),
        cwd=limits.scratch,
        pass_fds=(status_w,),
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - async-signal-safe prctl only
    )


def preload_stacks(stacks: Sequence[str]) -> None:
    """Ask this process's zygote, where workers fork from one, to import these training stacks.

    A hint only (`_zygote.PRELOADABLE` bounds what it can import); nothing
    happens where workers are exec'd or the zygote cannot start.
    """
    if not stacks or not _forks_from_zygote():
        return
    server = _zygote.ForkServer.shared(os.environ)
    if server is not None:
        with contextlib.suppress(OSError):
            server.preload(stacks)


def _fork(spec: dict[str, Any], limits: Limits, status_w: int) -> _Process:
    server = _zygote.ForkServer.shared(os.environ)
    if server is None:
        msg = "the replay zygote is unavailable"
        raise OSError(msg)
    skip = set(spec["skip"])
    request = {
        "spec": spec,
        "env": dict(limits.env),
        "cwd": str(limits.scratch),
        "args": list(spec["argv"][3:]),
        "net": Layer.NETWORK.value not in skip,
        "pid": Layer.PROCESSES.value not in skip,
        "status_w": status_w,
    }
    return server.spawn(request)


def _collect(proc: _Process, status_r: int, limits: Limits) -> Outcome:
    """Read the three pipes until they close; kill on timeout or too much output."""
    assert proc.stdout is not None  # Popen(stdout=PIPE)
    assert proc.stderr is not None  # Popen(stderr=PIPE)
    out, err, status = bytearray(), bytearray(), bytearray()
    caps = {id(out): limits.max_output, id(err): _STDERR_TAIL, id(status): _STATUS_MAX}
    buffers = {proc.stdout.fileno(): out, proc.stderr.fileno(): err, status_r: status}
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            now = time.monotonic()
            if now >= limits.deadline:
                kill_group(proc)
                msg = (
                    f"sandboxed command {limits.program!r}: expected to finish within "
                    f"{limits.timeout:g} s, got still running; killed its process group"
                )
                raise SandboxTimeout(msg)
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > _DRAIN_GRACE_S:
                kill_group(proc)  # a stray descendant holds the pipes open
                break
            for key, _ in selector.select(min(_POLL_S, limits.deadline - now)):
                buffer = buffers[int(key.fd)]
                chunk = os.read(int(key.fd), _READ_CHUNK)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                buffer += chunk
                if len(buffer) > caps[id(buffer)]:
                    if buffer is out:
                        kill_group(proc)
                        msg = (
                            f"sandboxed command {limits.program!r}: expected at most "
                            f"{limits.max_output} bytes on stdout, got more; killed its "
                            "process group"
                        )
                        raise SandboxOutputTooLarge(msg)
                    del buffer[: len(buffer) - caps[id(buffer)]]  # keep the tail
    returncode = proc.wait(timeout=max(limits.deadline - time.monotonic(), 0.1))
    return Outcome(returncode, bytes(out), bytes(err), bytes(status))


def kill_group(proc: _Process) -> None:
    """SIGKILL the process group (the PID namespace dies with its process 1)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# ---------------------------------------------------------------- reports


def parse_status(raw: bytes, method: str) -> Isolation:
    try:
        status = json.loads(raw)
        layers = status["layers"]
        reasons = status["reasons"]
        flags = {layer.value: layers[layer.value] is True for layer in Layer}
        why = tuple((layer.value, str(reasons[layer.value])) for layer in Layer if layer in reasons)
    except (ValueError, KeyError, TypeError) as e:
        msg = f"sandbox status: expected the init's JSON report, got {raw[:200]!r}"
        raise SandboxError(msg) from e
    return Isolation(**flags, method=method, reasons=why)


def refusal(isolation: Isolation) -> str:
    missing = ", ".join(f"{layer} ({reason})" for layer, reason in isolation.reasons)
    return (
        f"trusted cluster (strict): expected every isolation layer "
        f"({', '.join(Layer)}), got {len(Layer) - len(isolation.missing)}/{len(Layer)} "
        f"via {isolation.method}; missing: {missing}; run as root or with user namespaces, "
        "or run non-strict to accept partial isolation"
    )


def failure(program: str, outcome: Outcome) -> str:
    code = outcome.returncode
    if code == _sandbox_init.EXIT_EXEC_FAILED:
        got = f"status {code} (could not execute)"
    elif (name := _signal_name(-code if code < 0 else code - _SIGNAL_BASE)) is not None:
        got = f"status {code} (killed by {name})"
    else:
        got = f"status {code}"
    return (
        f"sandboxed command {program!r}: expected exit status 0, got {got}; "
        f"last stderr line: {last_line(outcome.stderr)}"
    )


def _signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:500] if lines else "(none)"
