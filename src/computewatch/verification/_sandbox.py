"""The trusted cluster's isolation: run one command with no network and no persistent disk.

The paper's trusted cluster (§5.2, Appendix D) is air-gapped and keeps no
storage: the Prover's data and weights go in, a verdict comes out, and nothing
else leaves. This module emulates it on one Linux host. `run_isolated` runs a
command (typically ``[sys.executable, "-m", ...]``) in a child process whose
only way to return anything is its stdout, collected by the parent::

    >>> out, isolation = run_isolated(  # doctest: +SKIP
    ...     [sys.executable, "-m", "computewatch.verification._cluster", str(folder)],
    ...     inputs=[folder],
    ... )
    >>> isolation.missing  # doctest: +SKIP
    ()

How: ``unshare(1)`` (util-linux) creates new mount, network, PID and IPC
namespaces (as root directly; otherwise inside a user namespace with
``--map-root-user``). Its first process, `_sandbox_init` (standard library
only), sets up the layers below, checks *from the inside* which of them hold,
reports them on a private pipe, drops every capability, and only then starts
the command as its child; it stays process 1 of the PID namespace, reaps
orphans and exits with the command's status (128 + N if signal N killed it).
The parent trusts that report, not the flags it passed, so a fake or broken
``unshare`` cannot fake isolation, and the init never mounts anything unless
it sits in a mount namespace of its own. `probe_isolation` runs the same
set-up without a command.

What each layer promises (`Layer`, reported by `Isolation`):

* ``network``: a fresh network namespace holding only a loopback that is
  down, so every ``connect``/``sendto`` (to the host's 127.0.0.1 ports, to
  any address, DNS included) fails with ``ENETUNREACH``; abstract Unix
  sockets are per namespace too; ``/run`` and ``/var/run`` are covered by an
  empty read-only tmpfs so system daemons' sockets are out of reach.
* ``readonly_inputs``: each input is bind-mounted onto itself read-only.
* ``readonly_fs``: every mount reachable by path is remounted read-only
  (a private mount namespace: the host's mounts are untouched). Device
  nodes such as ``/dev/null`` stay usable, GPUs included.
* ``scratch_tmpfs``: HOME (also the working directory), TMPDIR, the XDG
  directories and the torch, triton and CUDA caches point into a fresh,
  size-capped tmpfs (``/dev/shm`` is another); it exists only in the
  child's mount namespace and vanishes with it. The host sees an empty
  directory ``$TMPDIR/computewatch-sandbox-*``, removed on return.
* ``processes``: a fresh PID namespace (with its own ``/proc``) and IPC
  namespace: the command cannot see or signal host processes, and when it
  exits or is killed, every process it started dies with it (even one that
  called ``setsid``).
* ``no_capabilities``: all capability sets are empty and ``no_new_privs`` is
  set, so the command (though uid 0 inside) cannot remount, unmount, leave
  its namespaces or configure an interface. Without this layer, root inside
  could undo the read-only mounts.

Limits. This is isolation against accidents and against the Prover's code or
data getting network or disk access in an emulation, not a hardened jail:
kernel bugs, a path-based Unix socket that a host daemon keeps outside
``/run``, side channels, and reading anything on the host filesystem (it is
*visible*, read-only) are outside it. Without capabilities the command reads
only what its uid may read. Memory and CPU are not capped (put cgroups around
the whole process if needed). Linux only.

Strict mode (the default) refuses to run the command unless all six layers
hold, raising `IsolationUnavailable` (exit status 2: the host cannot provide
the promised isolation, an operator's problem, not a finding about the
Prover). Non-strict mode runs with whatever holds, falling back to a plain
subprocess when no namespace can be created (scratch then is a host
directory, deleted afterwards), and reports exactly which layers were
active. Every run is bounded: a wall-clock timeout (the process group, and
with it the PID namespace, is killed), a stdout cap, and a one-line error
carrying the last line of the command's stderr when it fails. Errors derive
from `SandboxError`, a `CheckUnavailable` (exit status 1: no verdict could
be reached).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch.errors import CheckUnavailable, ParameterError
from computewatch.verification import _sandbox_init

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "DEFAULT_SCRATCH_BYTES",
    "DEFAULT_TIMEOUT",
    "UNSHARE_ENV",
    "Isolation",
    "IsolationUnavailable",
    "Layer",
    "SandboxError",
    "SandboxFailed",
    "SandboxOutputTooLarge",
    "SandboxTimeout",
    "probe_isolation",
    "run_isolated",
]

#: Default wall-clock limit of a sandboxed command, in seconds.
DEFAULT_TIMEOUT = 600.0
#: Default cap on a sandboxed command's stdout, in bytes (64 MiB).
DEFAULT_MAX_OUTPUT = 64 * 2**20
#: Default size cap of the scratch tmpfs (and of the private /dev/shm), in bytes.
DEFAULT_SCRATCH_BYTES = 4 * 2**30
#: Environment variable naming the ``unshare`` binary (default: found on PATH).
UNSHARE_ENV = "COMPUTEWATCH_UNSHARE"

_INIT = Path(_sandbox_init.__file__).resolve()
_STDERR_TAIL = 64 * 1024
_STATUS_MAX = 64 * 1024
_READ_CHUNK = 1 << 16
_POLL_S = 0.05
_DRAIN_GRACE_S = 1.0
_PROBE_TIMEOUT = 60.0
_HOST_NS = ("net", "mnt", "ipc")
_SIGNAL_BASE = 128  # the init exits 128 + N when signal N killed the command
_NOT_LINUX = f"trusted cluster: expected Linux (namespaces, /proc), got {sys.platform!r}"


class Layer(StrEnum):
    """One isolation layer of the trusted cluster (see the module docstring)."""

    NETWORK = "network"
    READONLY_INPUTS = "readonly_inputs"
    READONLY_FS = "readonly_fs"
    SCRATCH_TMPFS = "scratch_tmpfs"
    PROCESSES = "processes"
    NO_CAPABILITIES = "no_capabilities"


class SandboxError(CheckUnavailable):
    """The sandboxed command could not produce a result (exit status 1)."""

    kind = "trusted cluster"


class IsolationUnavailable(SandboxError):  # noqa: N818 - reads as a state, like CheckUnavailable
    """Strict mode refused to run: an isolation layer cannot be set up here.

    Exit status 2, not 1: the host (not root, no user namespaces, no
    ``unshare``, mounts denied in a container) cannot provide the promised
    isolation. That is for the operator to fix, and says nothing about the
    Prover's evidence.
    """

    exit_code = 2
    kind = "isolation unavailable"


class SandboxTimeout(SandboxError):  # noqa: N818 - reads as a state
    """The sandboxed command ran past its wall-clock limit and was killed."""

    kind = "trusted cluster timeout"


class SandboxOutputTooLarge(SandboxError):  # noqa: N818 - reads as a state
    """The sandboxed command wrote more than the stdout cap and was killed."""

    kind = "trusted cluster output too large"


class SandboxFailed(SandboxError):  # noqa: N818 - the name is the verdict
    """The sandboxed command exited with a non-zero status."""

    kind = "trusted cluster command failed"


@dataclass(frozen=True, slots=True)
class Isolation:
    """Which isolation layers were active for one run, as checked from inside.

    Attributes:
        network: No network namespace access beyond a down loopback.
        readonly_inputs: Every input was a read-only bind mount.
        readonly_fs: Every mount reachable by path was read-only.
        scratch_tmpfs: HOME/TMPDIR/caches were a private tmpfs.
        processes: Own PID (with its own /proc) and IPC namespaces.
        no_capabilities: Empty capability sets and ``no_new_privs``.
        method: How the namespaces were made, e.g. ``"unshare(1) as root"``.
        reasons: ``(layer, why it is missing)`` for each missing layer.
    """

    network: bool
    readonly_inputs: bool
    readonly_fs: bool
    scratch_tmpfs: bool
    processes: bool
    no_capabilities: bool
    method: str
    reasons: tuple[tuple[str, str], ...] = ()

    @property
    def missing(self) -> tuple[Layer, ...]:
        """The layers that were not active, in `Layer` order."""
        return tuple(layer for layer in Layer if not getattr(self, layer.value))

    @property
    def complete(self) -> bool:
        """Whether every layer was active."""
        return not self.missing

    def summary(self) -> str:
        """Return one line such as ``network=on readonly_fs=off ... (unshare(1) as root)``."""
        flags = " ".join(f"{layer}={'on' if getattr(self, layer) else 'off'}" for layer in Layer)
        return f"{flags} ({self.method})"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready record of the run's isolation (for a verdict)."""
        return {
            "layers": {layer.value: bool(getattr(self, layer.value)) for layer in Layer},
            "method": self.method,
            "reasons": dict(self.reasons),
        }

    @classmethod
    def none(cls, method: str, reason: str) -> Isolation:
        """Return the isolation of a run with no layer at all, for `reason`."""
        return cls(
            **dict.fromkeys(Layer, False),
            method=method,
            reasons=tuple((layer.value, reason) for layer in Layer),
        )


@dataclass(frozen=True, slots=True)
class _Attempt:
    method: str
    prefix: tuple[str, ...]  # the unshare command line, empty for a plain subprocess
    mode: str  # "isolate" or "bare"


@dataclass(frozen=True, slots=True)
class _Outcome:
    returncode: int
    stdout: bytes
    stderr: bytes
    status: bytes


def run_isolated(
    argv: Sequence[str],
    *,
    inputs: Sequence[str | os.PathLike[str]],
    strict: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    max_output: int = DEFAULT_MAX_OUTPUT,
    env: Mapping[str, str] | None = None,
    scratch_bytes: int = DEFAULT_SCRATCH_BYTES,
    unshare: str | os.PathLike[str] | None = None,
    unsafe_skip: Collection[Layer] = (),
) -> tuple[bytes, Isolation]:
    """Run `argv` in the trusted-cluster sandbox and return its stdout.

    Args:
        argv: The command, e.g. ``[sys.executable, "-m", "pkg.module", ...]``;
            ``argv[0]`` is looked up on the ``PATH`` of the environment.
        inputs: Files and directories the command reads; each becomes a
            read-only bind mount (everything else is read-only too).
        strict: Refuse to run unless every `Layer` is active.
        timeout: Wall-clock limit in seconds, set-up included.
        max_output: Largest stdout accepted, in bytes.
        env: The command's environment (default: this process's); the scratch
            variables (HOME, TMPDIR, XDG_*, torch/triton/CUDA caches,
            PYTHONDONTWRITEBYTECODE) are always set on top of it.
        scratch_bytes: Size cap of the scratch tmpfs and of ``/dev/shm``.
        unshare: Path of ``unshare(1)`` (default: ``$COMPUTEWATCH_UNSHARE``,
            else found on ``PATH``); a missing one means no namespaces.
        unsafe_skip: Layers not to set up, for debugging and tests; a strict
            run then refuses, a non-strict one reports them missing.

    Returns:
        The command's stdout and the isolation that was active.

    Raises:
        IsolationUnavailable: Strict mode and some layer cannot be set up;
            or, strict or not, the host is not Linux.
        SandboxTimeout: The command ran past `timeout` (its process group and
            PID namespace were killed).
        SandboxOutputTooLarge: It wrote more than `max_output` bytes.
        SandboxFailed: It exited with a non-zero status (message: its last
            stderr line).
        ParameterError: An argument is out of range or an input is missing.
    """
    command = _check_args(argv, timeout, max_output, scratch_bytes)
    paths = _check_inputs(inputs)
    if not _on_linux():  # pragma: no cover - the test suite runs on Linux
        raise IsolationUnavailable(_NOT_LINUX)
    skip = frozenset(Layer(layer) for layer in unsafe_skip)
    deadline = time.monotonic() + timeout
    scratch = Path(tempfile.mkdtemp(prefix="computewatch-sandbox-")).resolve()
    try:
        _check_not_hidden([*paths, scratch])
        limits = _Limits(
            env=_scratch_env(scratch, os.environ if env is None else env),
            scratch=scratch,
            deadline=deadline,
            timeout=timeout,
            max_output=max_output,
            program=command[0],
        )
        failures: list[str] = []
        for attempt in _attempts(unshare, skip, strict=strict, failures=failures):
            spec = _spec(
                mode=attempt.mode,
                strict=strict,
                inputs=paths,
                scratch=scratch,
                scratch_bytes=scratch_bytes,
                skip=skip,
                command=command,
            )
            outcome = _launch(attempt, spec, limits)
            if not outcome.status:  # the namespaces could not be made; the command never ran
                failures.append(f"{attempt.method}: {_last_line(outcome.stderr)}")
                continue
            isolation = _parse_status(outcome.status, attempt.method)
            if strict and not isolation.complete:
                raise IsolationUnavailable(_refusal(isolation))
            if outcome.returncode != 0:
                raise SandboxFailed(_failure(command[0], outcome))
            return outcome.stdout, isolation
        msg = (
            "trusted cluster: expected Linux namespaces from unshare(1) (as root, or with "
            f"unprivileged user namespaces), got none: {'; '.join(failures)}; run as root, "
            "enable user namespaces, or run non-strict to accept no isolation"
        )
        raise IsolationUnavailable(msg)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def probe_isolation(
    *, unshare: str | os.PathLike[str] | None = None, scratch_bytes: int = 2**20
) -> Isolation:
    """Say which isolation layers a non-strict run would get here.

    Sets the sandbox up (a fraction of a second) without running any command.

    Args:
        unshare: Path of ``unshare(1)``, as for `run_isolated`.
        scratch_bytes: Size cap of the probe's scratch tmpfs.

    Returns:
        The isolation available on this host, with reasons for what is missing.
    """
    if not _on_linux():  # pragma: no cover - the test suite runs on Linux
        return Isolation.none("none", _NOT_LINUX)
    failures: list[str] = []
    scratch = Path(tempfile.mkdtemp(prefix="computewatch-probe-")).resolve()
    limits = _Limits(
        env=dict(os.environ),
        scratch=scratch,
        deadline=time.monotonic() + _PROBE_TIMEOUT,
        timeout=_PROBE_TIMEOUT,
        max_output=0,
        program="probe",
    )
    try:
        for attempt in _attempts(unshare, frozenset(), strict=False, failures=failures):
            spec = _spec(
                mode="probe",
                strict=False,
                inputs=(),
                scratch=scratch,
                scratch_bytes=scratch_bytes,
                skip=frozenset(),
                command=("true",),
            )
            outcome = _launch(attempt, spec, limits)
            if outcome.status:
                return _parse_status(outcome.status, attempt.method)
            failures.append(f"{attempt.method}: {_last_line(outcome.stderr)}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Isolation.none("none", "; ".join(failures))  # pragma: no cover - bare always reports


# ---------------------------------------------------------------- arguments


def _on_linux() -> bool:
    return sys.platform.startswith("linux")


def _check_args(
    argv: Sequence[str], timeout: float, max_output: int, scratch_bytes: int
) -> list[str]:
    if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
        msg = f"sandbox argv: expected a non-empty sequence of str, got {argv!r}"
        raise ParameterError(msg)
    if not (math.isfinite(timeout) and timeout > 0):
        msg = f"sandbox timeout: expected a finite number of seconds > 0, got {timeout!r}"
        raise ParameterError(msg)
    if max_output < 0:
        msg = f"sandbox max_output: expected a byte count >= 0, got {max_output!r}"
        raise ParameterError(msg)
    if scratch_bytes <= 0:
        msg = f"sandbox scratch_bytes: expected a byte count > 0, got {scratch_bytes!r}"
        raise ParameterError(msg)
    return list(argv)


def _check_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    if isinstance(inputs, (str, os.PathLike)):
        msg = f"sandbox inputs: expected a sequence of paths, got the single path {inputs!r}"
        raise ParameterError(msg)
    paths = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            msg = f"sandbox input: expected an existing file or directory, got {str(path)!r}"
            raise ParameterError(msg)
        paths.append(path.resolve())
    return paths


def _check_not_hidden(paths: Sequence[Path]) -> None:
    for path in paths:
        for hidden in _sandbox_init.HIDDEN_DIRS:
            if path.is_relative_to(hidden):
                msg = (
                    f"sandbox path {str(path)!r}: expected a location outside {hidden}, "
                    f"which the sandbox hides; got one inside it (set TMPDIR or move the input)"
                )
                raise ParameterError(msg)


def _scratch_env(scratch: Path, base: Mapping[str, str]) -> dict[str, str]:
    env = dict(base)
    cache = scratch / "cache"
    env.update(
        HOME=str(scratch / "home"),
        TMPDIR=str(scratch / "tmp"),
        TMP=str(scratch / "tmp"),
        TEMP=str(scratch / "tmp"),
        XDG_CACHE_HOME=str(cache),
        XDG_CONFIG_HOME=str(scratch / "config"),
        XDG_DATA_HOME=str(scratch / "data"),
        XDG_STATE_HOME=str(scratch / "state"),
        XDG_RUNTIME_DIR=str(scratch / "runtime"),
        TORCH_HOME=str(cache / "torch"),
        TORCHINDUCTOR_CACHE_DIR=str(cache / "torchinductor"),
        TRITON_CACHE_DIR=str(cache / "triton"),
        CUDA_CACHE_PATH=str(cache / "nv"),
        MPLCONFIGDIR=str(scratch / "config" / "matplotlib"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


# ---------------------------------------------------------------- launching


def _attempts(
    unshare: str | os.PathLike[str] | None,
    skip: frozenset[Layer],
    *,
    strict: bool,
    failures: list[str],
) -> list[_Attempt]:
    """Return the ways to start the sandbox, best first; note why others are impossible."""
    named = unshare if unshare is not None else os.environ.get(UNSHARE_ENV)
    binary = str(named) if named is not None else shutil.which("unshare")
    attempts = []
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
            attempts.append(_Attempt("unshare(1) as root", (binary, *flags, "--"), "isolate"))
        attempts.append(
            _Attempt(
                "unshare(1) in a user namespace",
                (binary, "--user", "--map-root-user", *flags, "--"),
                "isolate",
            )
        )
    if not strict:
        attempts.append(_Attempt("none (plain subprocess)", (), "bare"))
    return attempts


@dataclass(frozen=True, slots=True)
class _Limits:
    """What every launch of one call shares: environment, scratch and bounds."""

    env: Mapping[str, str]
    scratch: Path
    deadline: float
    timeout: float
    max_output: int
    program: str


def _spec(
    *,
    mode: str,
    strict: bool,
    inputs: Sequence[Path],
    scratch: Path,
    scratch_bytes: int,
    skip: frozenset[Layer],
    command: Sequence[str],
) -> dict[str, Any]:
    """Return the init's instructions (see `_sandbox_init`)."""
    return {
        "mode": mode,
        "strict": strict,
        "inputs": [str(p) for p in inputs],
        "scratch": str(scratch),
        "scratch_bytes": scratch_bytes,
        "skip": sorted(layer.value for layer in skip),
        "host_ns": {kind: str(Path(f"/proc/self/ns/{kind}").readlink()) for kind in _HOST_NS},
        "argv": list(command),
    }


def _launch(attempt: _Attempt, spec: dict[str, Any], limits: _Limits) -> _Outcome:
    """Start the init under `attempt`, collect stdout/stderr/status, enforce the bounds."""
    status_r, status_w = os.pipe()
    spec = {**spec, "status_fd": status_w}
    init = (sys.executable, "-I", "-S", "-B", str(_INIT), json.dumps(spec))
    try:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [*attempt.prefix, *init],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(limits.env),
            cwd=limits.scratch,
            pass_fds=(status_w,),
            start_new_session=True,
        )
    except OSError as e:
        os.close(status_r)
        return _Outcome(-1, b"", f"cannot start: {e}".encode(), b"")
    finally:
        os.close(status_w)
    try:
        return _collect(proc, status_r, limits)
    finally:
        os.close(status_r)
        if proc.poll() is None:
            _kill_group(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _collect(proc: subprocess.Popen[bytes], status_r: int, limits: _Limits) -> _Outcome:
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
                _kill_group(proc)
                msg = (
                    f"sandboxed command {limits.program!r}: expected to finish within "
                    f"{limits.timeout:g} s, got still running; killed its process group"
                )
                raise SandboxTimeout(msg)
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > _DRAIN_GRACE_S:
                _kill_group(proc)  # a stray descendant holds the pipes open
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
                        _kill_group(proc)
                        msg = (
                            f"sandboxed command {limits.program!r}: expected at most "
                            f"{limits.max_output} bytes on stdout, got more; killed its "
                            "process group"
                        )
                        raise SandboxOutputTooLarge(msg)
                    del buffer[: len(buffer) - caps[id(buffer)]]  # keep the tail
    returncode = proc.wait(timeout=max(limits.deadline - time.monotonic(), 0.1))
    return _Outcome(returncode, bytes(out), bytes(err), bytes(status))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group (the PID namespace dies with its process 1)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


# ---------------------------------------------------------------- reports


def _parse_status(raw: bytes, method: str) -> Isolation:
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


def _refusal(isolation: Isolation) -> str:
    missing = ", ".join(f"{layer} ({reason})" for layer, reason in isolation.reasons)
    return (
        f"trusted cluster (strict): expected every isolation layer "
        f"({', '.join(Layer)}), got {len(Layer) - len(isolation.missing)}/{len(Layer)} "
        f"via {isolation.method}; missing: {missing}; run as root or with user namespaces, "
        "or run non-strict to accept partial isolation"
    )


def _failure(program: str, outcome: _Outcome) -> str:
    code = outcome.returncode
    if code == _sandbox_init.EXIT_EXEC_FAILED:
        got = f"status {code} (could not execute)"
    elif (name := _signal_name(-code if code < 0 else code - _SIGNAL_BASE)) is not None:
        got = f"status {code} (killed by {name})"
    else:
        got = f"status {code}"
    return (
        f"sandboxed command {program!r}: expected exit status 0, got {got}; "
        f"last stderr line: {_last_line(outcome.stderr)}"
    )


def _signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:500] if lines else "(none)"
