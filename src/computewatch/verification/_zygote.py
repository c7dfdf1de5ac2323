"""Replay workers forked from a preloaded zygote (private; ADR 0027).

A fresh ``python -m computewatch.verification._worker`` spends 4-5 CPU
seconds importing torch before it runs a single step, and a verification
starts several workers: on a two-core host the process boundary made
verification about ten times slower than running in-process. The zygote
pays that import once per Verifier process.

The zygote is the Verifier's own code: a fresh interpreter (never a fork of
the Verifier, so it holds no key and no state of a verification) that
imports torch, the datacenter package and the worker, and then only forks.
It never reads a Prover's byte: requests come from the Verifier over a
socket pair, and each names a staged job folder, the sandbox's spec and the
job's environment. Per request the zygote forks a child that, before
anything of the job is touched,

1. closes every descriptor but the job's stdout, stderr and status pipes
   (the zygote's socket included), starts a session of its own, and dies
   with the zygote (``PR_SET_PDEATHSIG``; the zygote dies with the thread
   of the Verifier that started it, a thread that lives as long as the
   Verifier);
2. does what ``unshare --mount --propagation private --fork --kill-child
   --net --pid --ipc --mount-proc`` does (as root only; elsewhere the
   Verifier uses ``unshare(1)`` as before);
3. runs the sandbox's own init code (`_sandbox_init.serve`) as process 1 of
   the new PID namespace: the same layers, checked from the inside and
   reported on the status pipe, and the same refusal in strict mode;
4. and only then, in the init's child, calls the worker's ``main``, which
   caps its resources before the Prover's code is loaded.

Every job still gets a process of its own that sees one job: a fork is a
copy of the pristine zygote, and nothing flows back into it. What the fork
shares with its siblings is the address layout (as Android's zygote does)
and the modules it imported, which the Prover's code could already patch in
its own worker. `ForkServer.shared` starts one zygote per Verifier process on
first use; if it cannot start or the host is not root, workers are exec'd
under ``unshare(1)`` as before.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["PRELOADABLE", "WORKER_MODULE", "ForkServer", "Forked"]

#: The only module a zygote runs: the replay worker.
WORKER_MODULE = "computewatch.verification._worker"
_MAX_MESSAGE = 1 << 20
_READY_TIMEOUT_S = 120.0
_KILLED_WAIT_S = 60.0
_POLL_S = 0.05
_STATUS_FD = 3
_CLONE_NEWNS = 0x00020000
_CLONE_NEWIPC = 0x08000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_PR_SET_PDEATHSIG = 1
_EXIT_SETUP_FAILED = 126
_SIGNAL_BASE = 128


def _send(sock: socket.socket, doc: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(doc).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.sendall(data)


class Forked:
    """A worker forked by the zygote, as `_sandbox_launch` collects it (Popen's shape)."""

    def __init__(self, pid: int, status: Future[int], stdout_r: int, stderr_r: int) -> None:
        """Wrap the fork `pid`, its exit status to come and its pipes' read ends."""
        self.pid = pid
        self._status = status
        self.stdout = os.fdopen(stdout_r, "rb", buffering=0)
        self.stderr = os.fdopen(stderr_r, "rb", buffering=0)

    def poll(self) -> int | None:
        """Its exit status (Popen's convention: -N for signal N), or None while it runs."""
        return self._status.result() if self._status.done() else None

    def wait(self, timeout: float | None = None) -> int:
        """Wait for its exit status.

        Raises:
            subprocess.TimeoutExpired: It still runs after `timeout` seconds.
        """
        try:
            return self._status.result(_KILLED_WAIT_S if timeout is None else timeout)
        except TimeoutError as e:
            if timeout is None:  # only after a SIGKILL (`kill_group`): its zygote is stuck
                return -signal.SIGKILL
            raise subprocess.TimeoutExpired(WORKER_MODULE, timeout) from e


class ForkServer:
    """The Verifier's handle on its zygote (see the module docs)."""

    _shared: ForkServer | None = None
    _shared_lock = threading.Lock()

    def __init__(self, env: Mapping[str, str]) -> None:
        """Start a zygote with environment `env` and wait until it has imported torch.

        Raises:
            OSError: It could not be started or did not get ready.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.owner = os.getpid()
        self._sock = ours
        self._lock = threading.Lock()
        self._next = 0
        self._pids: dict[int, Future[int]] = {}
        self._statuses: dict[int, Future[int]] = {}
        self._dead = False
        started: Future[subprocess.Popen[bytes]] = Future()
        boot = f"import sys; from {__name__} import main; sys.exit(main(sys.argv))"
        argv = [sys.executable, "-c", boot, str(theirs.fileno())]
        # The zygote dies with the thread that started it (PR_SET_PDEATHSIG), so
        # a thread that lives as long as this process starts it and waits on it.
        keeper = threading.Thread(
            target=self._keep, args=(argv, dict(env), theirs, started), daemon=True
        )
        keeper.start()
        self._proc = started.result(_READY_TIMEOUT_S)
        theirs.close()
        ready = select.select([ours], [], [], _READY_TIMEOUT_S)[0]
        if not ready or json.loads(ours.recv(_MAX_MESSAGE) or b"{}").get("ready") is not True:
            self.close()
            msg = "replay zygote: expected it ready after importing torch, got no answer"
            raise OSError(msg)
        threading.Thread(target=self._read, daemon=True).start()
        atexit.register(self.close)

    @staticmethod
    def _keep(
        argv: list[str],
        env: dict[str, str],
        theirs: socket.socket,
        started: Future[subprocess.Popen[bytes]],
    ) -> None:
        try:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,  # a fork's stderr is its job's pipe
                env=env,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - async-signal-safe prctl only
            )
        except OSError as e:
            started.set_exception(e)
            return
        started.set_result(proc)
        proc.wait()

    @classmethod
    def shared(cls, env: Mapping[str, str]) -> ForkServer | None:
        """This process's zygote (started on first use), or None where it cannot run."""
        if os.geteuid() != 0 or not sys.platform.startswith("linux"):
            return None
        with cls._shared_lock:
            stale = cls._shared is None or cls._shared.dead or cls._shared.owner != os.getpid()
            if stale:  # none yet, gone, or inherited through a fork of the Verifier
                try:
                    cls._shared = cls(env)
                except OSError:
                    return None
            return cls._shared

    @classmethod
    def close_shared(cls) -> None:
        """Stop this process's zygote now, if one runs (the next worker starts a new one)."""
        with cls._shared_lock:
            server, cls._shared = cls._shared, None
        if server is not None and server.owner == os.getpid():
            server.close()

    @property
    def pid(self) -> int:
        """The zygote's process id."""
        return self._proc.pid

    @property
    def dead(self) -> bool:
        """Whether the zygote has gone (its socket closed)."""
        return self._dead

    def preload(self, stacks: Sequence[str]) -> None:
        """Have the zygote import these training stacks before its next fork.

        Only `PRELOADABLE` names count; each worker then finds them imported.

        Raises:
            OSError: The zygote has gone.
        """
        names = sorted(set(stacks) & PRELOADABLE.keys())
        if not names:
            return
        if self._dead:
            msg = "replay zygote: gone"
            raise OSError(msg)
        with self._lock:
            _send(self._sock, {"preload": names})

    def spawn(self, request: dict[str, Any]) -> Forked:
        """Fork a worker for `request` (spec, env, cwd, args); its pipes are made here.

        Raises:
            OSError: The zygote has gone.
        """
        status_w = request.pop("status_w")
        if self._dead:
            msg = "replay zygote: gone"
            raise OSError(msg)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            with self._lock:
                self._next += 1
                ident = self._next
                pid_future: Future[int] = Future()
                self._pids[ident] = pid_future
                _send(self._sock, {**request, "id": ident}, [out_w, err_w, status_w])
        except OSError:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            for fd in (out_w, err_w):
                os.close(fd)
        try:
            pid = pid_future.result(_READY_TIMEOUT_S)
        except TimeoutError:
            pid = -1
        if pid <= 0:
            for fd in (out_r, err_r):
                os.close(fd)
            msg = "replay zygote: it could not fork"
            raise OSError(msg)
        with self._lock:
            status = self._statuses.setdefault(pid, Future())
        return Forked(pid, status, out_r, err_r)

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(_MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            doc = json.loads(data)
            with self._lock:
                if "id" in doc:
                    self._pids.pop(int(doc["id"])).set_result(int(doc["pid"]))
                else:
                    future = self._statuses.setdefault(int(doc["pid"]), Future())
                    future.set_result(int(doc["status"]))
        with self._lock:
            self._dead = True
            for future in self._pids.values():
                future.set_result(-1)
            for future in self._statuses.values():  # their forks died with the zygote
                if not future.done():
                    future.set_result(-signal.SIGKILL)

    def close(self) -> None:
        """Stop the zygote (it kills forks still running) and wait for it."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        proc = getattr(self, "_proc", None)
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._sock.close()


_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# ------------------------------------------------------------ in the zygote


def _preload() -> None:
    """Import what every worker needs; run nothing (no thread pools before a fork).

    ``torch.use_deterministic_algorithms`` (the worker's first call) imports
    the compiler stack behind ``torch._inductor.config``: seconds more than
    torch itself, so it is imported here too.
    """
    import safetensors.torch  # noqa: F401, PLC0415
    import torch  # noqa: PLC0415
    import torch._inductor.config  # noqa: F401, PLC0415

    import computewatch.datacenter  # noqa: PLC0415
    import computewatch.rules  # noqa: PLC0415
    import computewatch.verification._channel  # noqa: PLC0415
    import computewatch.verification._worker  # noqa: PLC0415
    from computewatch._lazy import load_all  # noqa: PLC0415

    load_all(computewatch.datacenter)  # the packages' names load on use (ADR 0043)
    load_all(computewatch.rules)


#: Training stacks a zygote may import on the Verifier's word, and the modules each means.
#: Only these names are ever imported, whatever a request says; a stack that is not
#: installed is skipped (its workers then fail to load the program, as they would anyway).
PRELOADABLE: dict[str, tuple[str, ...]] = {
    "transformers": ("transformers.modeling_utils", "transformers.trainer"),
}


def _preload_stacks(stacks: object) -> None:
    """Import the named `PRELOADABLE` stacks (run nothing: no thread pools before a fork)."""
    if not isinstance(stacks, list):
        return
    for stack in stacks:
        for module in PRELOADABLE.get(stack, ()) if isinstance(stack, str) else ():
            with contextlib.suppress(ImportError):
                importlib.import_module(module)


def _serve(sock: socket.socket) -> None:
    zygote = os.getpid()
    children: set[int] = set()
    try:
        while True:
            ready = select.select([sock], [], [], _POLL_S)[0]
            _reap(sock, children)
            if not ready:
                continue
            data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, 3)
            if not data:
                break
            request = json.loads(data)
            if "preload" in request:
                for fd in fds:
                    os.close(fd)
                _preload_stacks(request["preload"])
                continue
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the fork exits through os._exit
                _fork_main(request, fds, sock, zygote)
            for fd in fds:
                os.close(fd)
            children.add(pid)
            _send(sock, {"id": request["id"], "pid": pid})
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _reap(sock: socket.socket, children: set[int]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        _send(sock, {"pid": pid, "status": code})


def _fork_main(  # pragma: no cover - runs in the zygote's fork
    request: dict[str, Any], fds: list[int], sock: socket.socket, zygote: int
) -> None:
    code = _EXIT_SETUP_FAILED
    # A worker runs no tracing or profiling hook the zygote's own start
    # installed (a site hook, such as the test suite's coverage): an exec'd
    # worker (``-I -S``) never loads one, and its data could not leave the
    # sandbox anyway.
    sys.settrace(None)
    sys.setprofile(None)
    threading.settrace(None)
    threading.setprofile(None)
    try:
        sock.close()
        os.setsid()
        _die_with_parent()
        if os.getppid() != zygote:
            os._exit(code)
        out_w, err_w, status_w = fds
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(status_w, _STATUS_FD)
        os.closerange(_STATUS_FD + 1, 1 << 16)
        os.chdir(request["cwd"])
        flags = _CLONE_NEWNS
        if request["net"]:
            flags |= _CLONE_NEWNET
        if request["pid"]:
            flags |= _CLONE_NEWPID | _CLONE_NEWIPC
        _call("unshare", _LIBC.unshare(flags))
        _call("mount --make-rprivate /", _mount(None, "/", None, _MS_REC | _MS_PRIVATE))
        child = os.fork()
        if child == 0:
            _namespace_init(request)
        code = _wait_exit(child)
    except BaseException as e:  # noqa: BLE001 - the parent reads stderr
        with contextlib.suppress(OSError):
            os.write(2, f"replay zygote: sandbox set-up failed: {e}\n".encode())
    os._exit(code)


def _namespace_init(request: dict[str, Any]) -> None:  # pragma: no cover - in the fork
    from computewatch.verification import _sandbox_init  # noqa: PLC0415

    code = _EXIT_SETUP_FAILED
    try:
        _die_with_parent()  # --kill-child: the namespace dies with its parent
        if request["pid"]:
            _call("mount /proc private", _mount(None, "/proc", None, _MS_REC | _MS_PRIVATE))
            flags = _MS_NOSUID | _MS_NOEXEC | _MS_NODEV
            _call("mount proc", _mount("proc", "/proc", "proc", flags))
        os.environ.clear()
        os.environ.update(request["env"])
        spec = {**request["spec"], "status_fd": _STATUS_FD}
        code = _sandbox_init.serve(spec, lambda: _worker(request["args"]))
    except BaseException as e:  # noqa: BLE001 - the parent reads stderr
        with contextlib.suppress(OSError):
            os.write(2, f"replay zygote: sandbox init failed: {e}\n".encode())
    os._exit(code)


def _worker(args: list[str]) -> int:  # pragma: no cover - in the init's child
    import tempfile  # noqa: PLC0415
    import traceback  # noqa: PLC0415

    from computewatch.verification import _worker  # noqa: PLC0415

    tempfile.tempdir = None  # TMPDIR is the job's scratch now
    sys.argv = [str(_worker.__file__), *args]  # as ``python -m`` sets it
    try:
        code = _worker.main(sys.argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - as the interpreter would: traceback, status 1
        traceback.print_exc()
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return code


def _mount(source: str | None, target: str, fstype: str | None, flags: int) -> int:
    return int(
        _LIBC.mount(
            None if source is None else source.encode(),
            target.encode(),
            None if fstype is None else fstype.encode(),
            ctypes.c_ulong(flags),
            None,
        )
    )


def _call(what: str, result: int) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _wait_exit(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        code = os.waitstatus_to_exitcode(status)
        return code if code >= 0 else _SIGNAL_BASE - code


def main(argv: list[str]) -> int:
    """Serve the socket whose descriptor is ``argv[1]`` until the Verifier closes it."""
    sock = socket.socket(fileno=int(argv[1]))
    _preload()
    _send(sock, {"ready": True, "time": time.time()})
    _serve(sock)
    _exit_now()
    return 0


def _exit_now() -> None:
    """Exit at once: tearing down an interpreter holding torch's compiler stack takes seconds.

    Nothing the zygote holds needs a clean shutdown; a coverage measurement
    running in it (the test suite's) is saved first.
    """
    with contextlib.suppress(Exception):
        import coverage  # noqa: PLC0415 - only present under the test suite

        current = coverage.Coverage.current()
        if current is not None:
            current.stop()
            current.save()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
