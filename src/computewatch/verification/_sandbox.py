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
* ``readonly_fs``: the command gets a root of its own (`_sandbox_root`): a
  fresh tmpfs showing only the system's software (``/usr`` and the other
  system directories, a few files of ``/etc``, the CPU topology in
  ``/sys``), this Python's installation and computewatch's package, and the
  inputs; the init pivots into it (``pivot_root``) and detaches the host's root, so
  no other file of the host (another Prover's transcript, the Verifier's
  files) is reachable by any path, ``/proc/PID/root`` included. Every mount
  is read-only (a private mount namespace: the host's mounts are
  untouched). Device nodes ``/dev/null``, ``zero``, ``full``, ``random``,
  ``urandom`` and any ``/dev/nvidia*`` stay usable.
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
kernel bugs, a path-based Unix socket that a host daemon keeps inside one
of the visible system directories, and side channels are outside it.
Without capabilities the command reads only what its uid may read. Memory
and CPU are not capped here (the replay worker caps its own; put cgroups
around the whole process if needed). Linux only.

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

import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from computewatch.errors import ParameterError
from computewatch.verification import _sandbox_init
from computewatch.verification._isolation import (
    Isolation,
    IsolationUnavailable,
    Layer,
    SandboxError,
    SandboxFailed,
    SandboxOutputTooLarge,
    SandboxTimeout,
)
from computewatch.verification._sandbox_launch import (
    UNSHARE_ENV,
    ZYGOTE_ENV,
    Limits,
    attempts,
    failure,
    last_line,
    launch,
    make_spec,
    parse_status,
    refusal,
)

_parse_status = parse_status  # kept for callers of the old private name

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

__all__ = [
    "DEFAULT_MAX_OUTPUT",
    "DEFAULT_SCRATCH_BYTES",
    "DEFAULT_TIMEOUT",
    "UNSHARE_ENV",
    "ZYGOTE_ENV",
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

_PROBE_TIMEOUT = 60.0
_NOT_LINUX = f"trusted cluster: expected Linux (namespaces, /proc), got {sys.platform!r}"


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
    hide: Sequence[str | os.PathLike[str]] = (),
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
        hide: Existing files and directories the command must not see: each
            is covered (an empty read-only tmpfs on a directory, ``/dev/null``
            on a file) and checked from inside, as part of the
            ``readonly_inputs`` layer. None may contain an input.

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
    hidden = _check_hidden(hide, paths)
    if not _on_linux():  # pragma: no cover - the test suite runs on Linux
        raise IsolationUnavailable(_NOT_LINUX)
    skip = frozenset(Layer(layer) for layer in unsafe_skip)
    deadline = time.monotonic() + timeout
    scratch = Path(tempfile.mkdtemp(prefix="computewatch-sandbox-")).resolve()
    try:
        _check_not_hidden([*paths, scratch])
        limits = Limits(
            env=_scratch_env(scratch, os.environ if env is None else env),
            scratch=scratch,
            deadline=deadline,
            timeout=timeout,
            max_output=max_output,
            program=command[0],
        )
        failures: list[str] = []
        for attempt in attempts(unshare, skip, strict=strict, failures=failures, command=command):
            spec = make_spec(
                mode=attempt.mode,
                strict=strict,
                inputs=paths,
                scratch=scratch,
                scratch_bytes=scratch_bytes,
                skip=skip,
                command=command,
                hide=hidden,
            )
            outcome = launch(attempt, spec, limits)
            if not outcome.status:  # the namespaces could not be made; the command never ran
                failures.append(f"{attempt.method}: {last_line(outcome.stderr)}")
                continue
            isolation = parse_status(outcome.status, attempt.method)
            if strict and not isolation.complete:
                raise IsolationUnavailable(refusal(isolation))
            if outcome.returncode != 0:
                raise SandboxFailed(failure(command[0], outcome))
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
    limits = Limits(
        env=dict(os.environ),
        scratch=scratch,
        deadline=time.monotonic() + _PROBE_TIMEOUT,
        timeout=_PROBE_TIMEOUT,
        max_output=0,
        program="probe",
    )
    try:
        for attempt in attempts(unshare, frozenset(), strict=False, failures=failures):
            spec = make_spec(
                mode="probe",
                strict=False,
                inputs=(),
                scratch=scratch,
                scratch_bytes=scratch_bytes,
                skip=frozenset(),
                command=("true",),
            )
            outcome = launch(attempt, spec, limits)
            if outcome.status:
                return parse_status(outcome.status, attempt.method)
            failures.append(f"{attempt.method}: {last_line(outcome.stderr)}")
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


def _check_hidden(hide: Sequence[str | os.PathLike[str]], inputs: Sequence[Path]) -> list[Path]:
    hidden = _check_inputs(hide)
    for path in hidden:
        for item in inputs:
            if item.is_relative_to(path) or path == Path("/"):
                msg = (
                    f"sandbox hide {str(path)!r}: expected a path that holds no input, "
                    f"got one holding {str(item)!r}"
                )
                raise ParameterError(msg)
    # a path inside another hidden one is hidden with it (and cannot be covered twice)
    return [p for p in hidden if not any(p != q and p.is_relative_to(q) for q in hidden)]


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
