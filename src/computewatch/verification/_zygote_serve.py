"""The replay zygote's own process: what it imports, and how it forks workers (ADR 0027).

`_zygote.ForkServer` starts ``main`` here in a fresh interpreter. It imports
what every worker needs (`import_worker_modules`, and on the Verifier's hint
a `PRELOADABLE` training stack), then serves fork requests on its socket
until the Verifier closes it; `_zygote`'s docs say what each fork does
before the job's code runs. Nothing here runs a thread pool: a fork must
not copy a busy one.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from typing import Any

__all__ = [
    "MAX_MESSAGE",
    "PRELOADABLE",
    "die_with_parent",
    "import_stacks",
    "import_worker_modules",
    "main",
    "send",
]

MAX_MESSAGE = 1 << 20
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


def send(sock: socket.socket, doc: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(doc).encode()
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.sendall(data)


def import_worker_modules() -> None:
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


def import_stacks(stacks: object) -> None:
    """Import the named `PRELOADABLE` stacks (run nothing: no thread pools before a fork)."""
    if not isinstance(stacks, list):
        return
    for stack in stacks:
        for module in PRELOADABLE.get(stack, ()) if isinstance(stack, str) else ():
            with contextlib.suppress(ImportError):
                importlib.import_module(module)


_LIBC = ctypes.CDLL(None, use_errno=True)


def die_with_parent() -> None:
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _serve(sock: socket.socket) -> None:
    zygote = os.getpid()
    children: set[int] = set()
    try:
        while True:
            ready = select.select([sock], [], [], _POLL_S)[0]
            _reap(sock, children)
            if not ready:
                continue
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 3)
            if not data:
                break
            request = json.loads(data)
            if "preload" in request:
                for fd in fds:
                    os.close(fd)
                import_stacks(request["preload"])
                continue
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the fork exits through os._exit
                _fork_main(request, fds, sock, zygote)
            for fd in fds:
                os.close(fd)
            children.add(pid)
            send(sock, {"id": request["id"], "pid": pid})
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
        send(sock, {"pid": pid, "status": code})


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
        die_with_parent()
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
        die_with_parent()  # --kill-child: the namespace dies with its parent
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
    import_worker_modules()
    send(sock, {"ready": True, "time": time.time()})
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
