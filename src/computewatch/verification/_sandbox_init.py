"""The first process inside the trusted-cluster sandbox (private; standard library only).

`computewatch.verification._sandbox` runs this file as a script, as
``python -I -S -B _sandbox_init.py SPEC``, under ``unshare(1)`` (or, in a
non-strict run where namespaces cannot be created, directly). SPEC is a JSON
object written by the parent (see `_sandbox._spec`). The script:

1. builds a root of its own that shows only the system's software, this
   Python, and the inputs, each read-only, and pivots into it
   (`_sandbox_root`): nothing else of the host is reachable by any path;
   binds every input onto itself and remounts it read-only;
2. remounts every mount it can reach read-only (the whole filesystem);
3. mounts a fresh, size-capped tmpfs on the scratch directory and on
   ``/dev/shm``, and an empty read-only tmpfs on ``/run`` so the host's daemon
   sockets are out of reach;
4. drops every capability (bounding, ambient, inheritable, permitted,
   effective) and sets ``no_new_privs``, so the command cannot undo 1-3;
5. *checks from the inside* which layers really hold (it trusts none of the
   flags it was started with), writes that report as JSON to the status file
   descriptor and closes it;
6. then, unless this is a probe or a strict run with a layer missing, runs
   the command as its child, reaps orphans, and exits with the command's
   status (128 + N if signal N killed it).

It never mounts anything unless it sits in a mount namespace other than the
parent's, so a failed ``unshare`` cannot touch the host's mounts. It imports
nothing outside the standard library and writes nothing to stdout, which
belongs to the command. The layer names below are the single source of truth;
`_sandbox.Layer` mirrors them.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

__all__ = [
    "EXIT_EXEC_FAILED",
    "EXIT_REFUSED",
    "HIDDEN_DIRS",
    "LAYERS",
    "SCRATCH_SUBDIRS",
]

NETWORK = "network"
READONLY_INPUTS = "readonly_inputs"
READONLY_FS = "readonly_fs"
SCRATCH_TMPFS = "scratch_tmpfs"
PROCESSES = "processes"
NO_CAPABILITIES = "no_capabilities"
#: Every isolation layer, in report order.
LAYERS = (NETWORK, READONLY_INPUTS, READONLY_FS, SCRATCH_TMPFS, PROCESSES, NO_CAPABILITIES)

#: Exit status when a strict run refuses to start the command.
EXIT_REFUSED = 121
#: Exit status when the command cannot be executed (as a shell's 127).
EXIT_EXEC_FAILED = 127
#: Directories covered by an empty read-only tmpfs (daemon sockets live there).
HIDDEN_DIRS = ("/run", "/var/run")
#: Directories created in the scratch tmpfs (HOME, TMPDIR, caches).
SCRATCH_SUBDIRS = ("home", "tmp", "cache", "config", "data", "state", "runtime")

_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REMOUNT = 0x20
_MS_NOATIME = 0x400
_MS_NODIRATIME = 0x800
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_RELATIME = 0x200000
# statvfs f_flag bit -> mount(2) flag to keep on a bind remount (locked flags
# in a user namespace must be kept, or the kernel answers EPERM).
_KEEP_FLAGS = (
    (os.ST_NOSUID, _MS_NOSUID),
    (os.ST_NODEV, _MS_NODEV),
    (os.ST_NOEXEC, _MS_NOEXEC),
    (os.ST_NOATIME, _MS_NOATIME),
    (os.ST_NODIRATIME, _MS_NODIRATIME),
    (os.ST_RELATIME, _MS_RELATIME),
)
_PR_SET_PDEATHSIG = 1
_SIGKILL = 9
_PR_CAPBSET_DROP = 24
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_VERSION_3 = 0x20080522
_SIGNAL_BASE = 128  # exit status of a command killed by a signal, as in a shell
_CAP_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
_SCRATCH = "computewatch-scratch"  # tmpfs "device" names, shown in mountinfo
_EMPTY = "computewatch-empty"
_DEV_SHM = "/dev/shm"  # noqa: S108 - replaced by a private tmpfs, not used as a temp dir


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


@functools.cache
def _libc() -> ctypes.CDLL:
    """Return the C library, loaded on first use (this module is imported on any OS)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = (
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    )
    libc.prctl.argtypes = (
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    )
    return libc


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        _libc().mount(
            os.fsencode(source),
            os.fsencode(target),
            None if fstype is None else fstype.encode(),
            flags,
            None if data is None else data.encode(),
        ),
        f"mount {target}",
    )


def _remount_readonly(path: str) -> None:
    """Make the mount at `path` read-only, keeping its other per-mount flags."""
    f_flag = os.statvfs(path).f_flag
    keep = 0
    for st_bit, ms_bit in _KEEP_FLAGS:
        if f_flag & st_bit:
            keep |= ms_bit
    _mount("none", path, None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | keep, None)


def _mounts() -> dict[int, tuple[str, frozenset[str], str]]:
    """Return ``{mount id: (mount point, per-mount options, fs type)}`` of this namespace."""
    return _root_module().mounts()  # type: ignore[no-any-return]


def _mount_id(path: str) -> int:
    """Return the id of the mount that `path` resolves to (from fdinfo)."""
    return _root_module().mount_id(path)  # type: ignore[no-any-return]


def _ns(kind: str) -> str:
    return str(Path(f"/proc/self/ns/{kind}").readlink())


def _proc_status() -> dict[str, str]:
    lines = Path("/proc/self/status").read_text(encoding="ascii").splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _mkdir(path: Path) -> None:
    path.mkdir(mode=0o700, exist_ok=True)


def _is_readonly(path: str) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


class _Report:
    """Setup failures and check results, layer by layer."""

    def __init__(self) -> None:
        self.reasons: dict[str, str] = {}

    def fail(self, layer: str, reason: str) -> None:
        self.reasons.setdefault(layer, reason)

    def attempt(self, layer: str, what: str, action: Any, *args: Any) -> bool:
        try:
            action(*args)
        except OSError as e:
            self.fail(layer, f"{what}: {e.strerror or e}")
            return False
        return True


# ---------------------------------------------------------------- setup


def _root_module() -> ModuleType:
    """`_sandbox_root`, imported beside this file (run as a script, no package is on the path)."""
    if __package__:
        return importlib.import_module(f"{__package__}._sandbox_root")
    location = Path(__file__).with_name("_sandbox_root.py")
    found = importlib.util.spec_from_file_location("_sandbox_root", location)
    if found is None or found.loader is None:  # pragma: no cover - the file ships beside this one
        msg = f"cannot load {location}"
        raise OSError(msg)
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return module


def _bind_inputs_readonly(inputs: list[str], report: _Report) -> None:
    for path in inputs:
        bound = report.attempt(
            READONLY_INPUTS, f"bind {path}", _mount, path, path, None, _MS_BIND | _MS_REC, None
        )
        if bound:
            report.attempt(READONLY_INPUTS, f"remount {path} read-only", _remount_readonly, path)


def _remount_all_readonly(report: _Report) -> None:
    for point in sorted({point for point, _, _ in _mounts().values()}, key=len):
        report.attempt(READONLY_FS, f"remount {point} read-only", _remount_readonly, point)


def _mount_scratch(scratch: str, size: int, report: _Report) -> set[int]:
    """Mount fresh tmpfs on `scratch` and /dev/shm; return their mount ids."""
    writable: set[int] = set()
    options = f"size={size},mode=0700"
    targets = [scratch]
    if Path(_DEV_SHM).is_dir():
        targets.append(_DEV_SHM)
    for target in targets:
        flags = _MS_NOSUID | _MS_NODEV
        if report.attempt(
            SCRATCH_TMPFS, f"tmpfs on {target}", _mount, _SCRATCH, target, "tmpfs", flags, options
        ):
            with contextlib.suppress(OSError):
                writable.add(_mount_id(target))
    return writable


def _hide_daemon_dirs(report: _Report) -> None:
    flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    for hidden in _hidden_dirs():
        report.attempt(
            NETWORK, f"hide {hidden}", _mount, _EMPTY, hidden, "tmpfs", flags, "size=4k,mode=0755"
        )


def _hide_paths(paths: list[str], report: _Report) -> None:
    """Cover each path the command must not see, then check it shows nothing."""
    for path in paths:
        if not os.path.lexists(path):  # not in the sandbox's root: nothing to see
            continue
        if Path(path).is_dir():
            flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
            report.attempt(
                READONLY_INPUTS, f"hide {path}", _mount, _EMPTY, path, "tmpfs", flags, "size=4k"
            )
        else:
            report.attempt(
                READONLY_INPUTS, f"hide {path}", _mount, "/dev/null", path, None, _MS_BIND, None
            )
        try:
            p = Path(path)
            shows = any(True for _ in p.iterdir()) if p.is_dir() else bool(p.stat().st_size)
        except OSError:
            shows = False
        if shows:
            report.fail(READONLY_INPUTS, f"{path} is still visible")


def _hidden_dirs() -> list[str]:
    return [d for d in HIDDEN_DIRS if Path(d).is_dir() and not Path(d).is_symlink()]


def _drop_capabilities() -> None:
    """Empty every capability set and forbid regaining any through execve."""
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text(encoding="ascii"))
    for cap in range(last + 1):
        _check(_libc().prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    _check(
        _libc().prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0),
        "clear ambient capabilities",
    )
    _check(_libc().prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "set no_new_privs")
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc().capset(ctypes.byref(header), data), "capset")


# ---------------------------------------------------------------- checks


def _check_network(spec: dict[str, Any], report: _Report) -> None:
    if _ns("net") == spec["host_ns"]["net"]:
        report.fail(NETWORK, "still in the host's network namespace")
        return
    lines = Path("/proc/net/dev").read_text(encoding="ascii").splitlines()[2:]
    others = sorted({line.split(":", 1)[0].strip() for line in lines} - {"lo"})
    if others:
        report.fail(NETWORK, f"interfaces other than lo: {others}")
    for hidden in _hidden_dirs():
        if any(Path(hidden).iterdir()) or not _is_readonly(hidden):
            report.fail(NETWORK, f"{hidden} (daemon sockets) is still visible")


def _check_filesystem(spec: dict[str, Any], report: _Report, writable: set[int]) -> None:
    table = _mounts()
    for path in spec["inputs"]:
        if not _is_readonly(path):
            report.fail(READONLY_INPUTS, f"{path} is writable")
    for point in sorted({point for point, _, _ in table.values()}):
        try:
            mount_id = _mount_id(point)
        except OSError:
            continue  # not reachable by path (under an over-mount, or no search permission)
        if mount_id not in writable and "ro" not in table[mount_id][1]:
            report.fail(READONLY_FS, f"{point} is writable")
    scratch = Path(spec["scratch"])
    try:
        scratch_id = _mount_id(str(scratch))
    except OSError:
        scratch_id = -1
    if scratch_id not in writable or table[scratch_id][2] != "tmpfs":
        report.fail(SCRATCH_TMPFS, f"{scratch} is not a private tmpfs")
    for sub in SCRATCH_SUBDIRS:  # on the tmpfs, or (no mount namespace) on the host's directory
        report.attempt(SCRATCH_TMPFS, f"mkdir {scratch / sub}", _mkdir, scratch / sub)


def _check_root(spec: dict[str, Any], report: _Report) -> None:
    """The sandbox's own root: nothing else of the host is reachable by any path."""
    points = {point for point, _, _ in _mounts().values()}
    reason = _root_module().check(spec, points, HIDDEN_DIRS)
    if reason:
        report.fail(READONLY_FS, reason)


def _check_processes(spec: dict[str, Any], report: _Report) -> None:
    if os.getpid() != 1 or str(Path("/proc/self").readlink()) != "1":
        report.fail(PROCESSES, "not process 1 of a fresh PID namespace with its own /proc")
    elif _ns("ipc") == spec["host_ns"]["ipc"]:
        report.fail(PROCESSES, "still in the host's IPC namespace")


def _check_capabilities(report: _Report) -> None:
    status = _proc_status()
    held = [name for name in _CAP_FIELDS if int(status.get(name, "1"), 16) != 0]
    if held:
        report.fail(NO_CAPABILITIES, f"capability sets not empty: {', '.join(held)}")
    if status.get("NoNewPrivs") != "1":
        report.fail(NO_CAPABILITIES, "no_new_privs is not set")


# ---------------------------------------------------------------- main


def _set_up_mounts(spec: dict[str, Any], skip: set[str], report: _Report) -> set[int]:
    """Mount the filesystem layers (in a private mount namespace); the scratch mounts' ids."""
    writable: set[int] = set()
    if READONLY_FS not in skip and "root" in spec:
        build = _root_module().build
        report.attempt(READONLY_FS, "own root", build, spec, _mount, _remount_readonly)
    if READONLY_INPUTS not in skip:
        _bind_inputs_readonly(spec["inputs"], report)
    if READONLY_FS not in skip:
        _remount_all_readonly(report)
    if SCRATCH_TMPFS not in skip:
        writable = _mount_scratch(spec["scratch"], int(spec["scratch_bytes"]), report)
    if NETWORK not in skip:
        _hide_daemon_dirs(report)
    if READONLY_INPUTS not in skip:
        _hide_paths(spec.get("hide", []), report)
    return writable


def _isolate(spec: dict[str, Any]) -> dict[str, str]:
    report = _Report()
    skip = set(spec["skip"])
    for layer in skip:
        report.fail(layer, "skipped on request (unsafe_skip)")
    writable: set[int] = set()
    if spec["mode"] != "bare" and _ns("mnt") != spec["host_ns"]["mnt"]:
        writable = _set_up_mounts(spec, skip, report)
    else:  # never mount in the host's mount namespace
        for layer in (READONLY_INPUTS, READONLY_FS, SCRATCH_TMPFS):
            report.fail(layer, "no private mount namespace")
    _check_network(spec, report)
    _check_filesystem(spec, report, writable)
    if "root" in spec:
        _check_root(spec, report)
    _check_processes(spec, report)
    if NO_CAPABILITIES not in skip:
        report.attempt(NO_CAPABILITIES, "drop capabilities", _drop_capabilities)
        _check_capabilities(report)
    return report.reasons


def main(argv: list[str]) -> int:
    """Set up the sandbox described by ``argv[1]`` and run its command.

    Returns:
        The command's exit status; 0 for a probe; `EXIT_REFUSED` when a
        strict run lacks a layer.
    """
    spec: dict[str, Any] = json.loads(argv[1])
    return serve(spec, functools.partial(_exec, spec["argv"]))


def serve(spec: dict[str, Any], command: Callable[[], int]) -> int:
    """Isolate, report the layers on ``spec["status_fd"]``, then run `command` as a child.

    `command` runs in a forked child after the report (it exec's the
    command, or, in a zygote's fork, calls it); see `main` for the status.
    """
    status_fd = int(spec["status_fd"])
    try:
        reasons = _isolate(spec)
    except Exception as e:  # noqa: BLE001 - reported to the parent, never swallowed
        reasons = {layer: f"sandbox setup crashed: {type(e).__name__}: {e}" for layer in LAYERS}
    status = json.dumps(
        {"layers": {layer: layer not in reasons for layer in LAYERS}, "reasons": reasons}
    )
    with os.fdopen(status_fd, "w", encoding="utf-8") as f:
        f.write(status)
    if spec["mode"] == "probe":
        return 0
    if spec["strict"] and reasons:
        return EXIT_REFUSED
    return _run(command, f"{spec['scratch']}/home")


def _exec(command: list[str]) -> int:  # pragma: no cover - runs in the forked child
    try:
        os.execvp(command[0], command)  # noqa: S606 - running the command is the point
    except OSError as e:
        sys.stderr.write(f"sandbox: cannot execute {command[0]!r}: {e.strerror or e}\n")
    return EXIT_EXEC_FAILED


def _run(command: Callable[[], int], home: str) -> int:
    """Run `command` in a child and reap every orphan until it exits.

    The command is not run in place: process 1 of a PID namespace ignores
    signals it has no handler for and must reap orphans, which ordinary
    programs do not expect. When this process exits, the kernel kills
    whatever is left in the namespace.

    Returns:
        The command's exit status, or 128 + N if signal N killed it.
    """
    with contextlib.suppress(OSError):
        os.chdir(home)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child exec's or exits
        _libc().prctl(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)  # dies with this init
        code = EXIT_EXEC_FAILED
        try:
            code = command()
        finally:
            os._exit(code)
    while True:
        pid, wait_status = os.wait()
        if pid == child:
            code = os.waitstatus_to_exitcode(wait_status)
            return code if code >= 0 else _SIGNAL_BASE - code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
