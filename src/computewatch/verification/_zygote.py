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
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from computewatch.verification import _zygote_serve
from computewatch.verification._zygote_serve import (
    MAX_MESSAGE,
    PRELOADABLE,
    die_with_parent,
    send,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["WORKER_MODULE", "ForkServer", "Forked"]

#: The only module a zygote runs: the replay worker.
WORKER_MODULE = "computewatch.verification._worker"
_READY_TIMEOUT_S = 120.0
_KILLED_WAIT_S = 60.0


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
        boot = f"import sys; from {_zygote_serve.__name__} import main; sys.exit(main(sys.argv))"
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
        if not ready or json.loads(ours.recv(MAX_MESSAGE) or b"{}").get("ready") is not True:
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
                preexec_fn=die_with_parent,  # noqa: PLW1509 - async-signal-safe prctl only
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
        names = sorted(set(stacks) & PRELOADABLE.keys())  # the zygote checks again
        if not names:
            return
        if self._dead:
            msg = "replay zygote: gone"
            raise OSError(msg)
        with self._lock:
            send(self._sock, {"preload": names})

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
                send(self._sock, {**request, "id": ident}, [out_w, err_w, status_w])
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
                data = self._sock.recv(MAX_MESSAGE)
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
