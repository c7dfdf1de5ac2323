"""The sandbox's own root: only what a replay needs of the host (private; standard library only).

A worker must see only what an honest replay needs (issue 13): the system's
software, the Python that runs it, and its job's inputs. A read-only view of
the whole host would still show it every other file there: another Prover's
transcript, the Verifier's own files, the answers of a later job. So the
init (`_sandbox_init`, inside a private mount namespace) builds a fresh
tmpfs, grafts onto it, each read-only, the paths the parent listed
(``spec["root"]``: ``/usr`` and the other system directories, a few files of
``/etc``, this Python's installation and computewatch's own package) and the
job's inputs, adds ``/proc`` (this PID namespace's), a few device nodes and
an empty directory for the scratch tmpfs, and then pivots into it
(``pivot_root``) and detaches the host's root. Nothing of the host outside
those paths is left to reach by any path, ``/proc/PID/root`` included.

`visible_paths` is the parent's list; `build` runs in the init; `check`
(with `strays`) is the init's check from the inside; `mounts` and
`mount_id` read this namespace's mount table for the init's checks.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["DEVICES", "build", "check", "mount_id", "mounts", "strays", "unescape", "visible_paths"]

#: Directories of the system's software (symlinks, as on merged-/usr systems, are kept as links).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: Files of /etc the dynamic loader and the C library read.
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
)
#: Read-only system information the numeric libraries ask for (CPU topology).
SYS_DIRS = ("/sys/devices/system/cpu",)
#: Device nodes bound into the root's ``/dev`` (and every ``/dev/nvidia*``: GPUs).
DEVICES = ("null", "zero", "full", "random", "urandom")

_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MNT_DETACH = 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
_ROOT = "computewatch-root"
_OLD = "/.host"
_OCTAL_DIGITS = 3


def visible_paths() -> list[str]:
    """What a sandboxed command may see of the host, besides its inputs (the parent's list).

    The system's directories, a few files of /etc, and this Python: its
    prefixes and computewatch's package folder (an editable install's source
    tree), all resolved; never the working directory or a repository around
    them. A prefix reached through a symlink (a ``.venv`` linked to a shared
    one) is kept under its own name too, as the link, so ``sys.executable``
    means inside what it means outside. Worked out once per process (it is
    the same for every worker).
    """
    return list(_visible_paths())


@functools.cache
def _visible_paths() -> tuple[str, ...]:
    import computewatch  # noqa: PLC0415 - the parent's package, for its folder

    package = Path(computewatch.__file__).resolve().parent.parent
    prefixes = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    python = [str(Path(p).resolve()) for p in prefixes]
    python += [str(Path(p).absolute()) for p in prefixes if Path(p).is_symlink()]
    python.append(str(Path(sys.executable).resolve().parent))
    paths = [*SYSTEM_DIRS, *ETC_FILES, *SYS_DIRS, *python, str(package)]
    return tuple(
        sorted({p for p in paths if Path(p).is_symlink() or Path(p).exists()}, key=_shortest)
    )


def _shortest(path: str) -> tuple[int, str]:
    return len(path), path


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _covered(path: str, grafted: Iterable[str]) -> bool:
    return any(path == g or path.startswith(g.rstrip("/") + "/") for g in grafted)


def _graft(
    path: str,
    root: str,
    mount: Callable[[str, str, str | None, int, str | None], None],
    readonly: Callable[[str], None],
) -> bool:
    """Show host `path` at the same path under `root`, read-only; False if it does not exist."""
    source, target = Path(path), Path(root + path)
    if source.is_symlink():  # keep the link; what it names is grafted on its own
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_symlink():
            target.symlink_to(source.readlink())
        return False
    if not source.exists():
        return False
    if source.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    mount(path, str(target), None, _MS_BIND | _MS_REC, None)
    readonly(str(target))
    return True


def _devices(root: str, mount: Callable[[str, str, str | None, int, str | None], None]) -> None:
    dev = Path(root + "/dev")
    dev.mkdir(exist_ok=True)
    host = Path("/dev")
    names = list(DEVICES)
    if host.is_dir():
        names += sorted(n.name for n in host.iterdir() if n.name.startswith("nvidia"))
    for name in names:
        node = host / name
        if node.exists() and not node.is_dir():
            (dev / name).touch(exist_ok=True)
            mount(str(node), str(dev / name), None, _MS_BIND, None)
    (dev / "shm").mkdir(exist_ok=True)
    for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                       ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        (dev / name).symlink_to(link)


def _pivot(root: str) -> None:
    """Make `root` the root of this mount namespace and detach the host's."""
    number = _SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        msg = f"pivot_root: no system call number known for {os.uname().machine}"
        raise OSError(msg)
    Path(root + _OLD).mkdir(mode=0o700)
    libc = _libc()
    _check(libc.syscall(number, os.fsencode(root), os.fsencode(root + _OLD)), "pivot_root")
    os.chdir("/")
    _check(libc.umount2(os.fsencode(_OLD), _MNT_DETACH), "detach the host's root")
    Path(_OLD).rmdir()


def build(
    spec: dict[str, object],
    mount: Callable[[str, str, str | None, int, str | None], None],
    readonly: Callable[[str], None],
) -> None:
    """Build the root at ``spec["scratch"]`` and pivot into it (in the init's mount namespace).

    The scratch directory is the tmpfs's mount point on the host side; inside
    the new root the same path is an empty directory that the init mounts
    the scratch tmpfs on.

    Raises:
        OSError: A mount, the pivot or the detach failed (the layer fails).
    """
    root = str(spec["scratch"])
    mount(_ROOT, root, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=16m,mode=0755")
    grafted: list[str] = []
    wanted = [*spec["root"], *spec["inputs"]]  # type: ignore[misc]
    for path in sorted({str(p) for p in wanted}, key=_shortest):
        if not _covered(path, grafted) and _graft(path, root, mount, readonly):
            grafted.append(path)
    Path(root + "/proc").mkdir(exist_ok=True)
    mount("/proc", root + "/proc", None, _MS_BIND | _MS_REC, None)
    _devices(root, mount)
    Path(root + "/run").mkdir(exist_ok=True)  # empty, as the init leaves the host's
    Path(root + root).mkdir(parents=True, exist_ok=True)
    _pivot(root)


def check(spec: dict[str, object], points: Iterable[str], covers: Iterable[str]) -> str:
    """Why the sandbox's root is not its own (from the inside), or ``""``."""
    root = Path("/").stat()
    if [root.st_dev, root.st_ino] == spec["host_root"]:
        return "/ is still the host's root"
    shown = strays(spec, points, covers)
    return f"host paths still visible: {', '.join(shown[:5])}" if shown else ""


def strays(spec: dict[str, object], points: Iterable[str], covers: Iterable[str]) -> list[str]:
    """Mount points inside the sandbox that are none of the listed paths (should be none).

    `covers` are the empty mounts the init put over paths to hide.
    """
    listed = [*spec["root"], *spec["inputs"], *spec.get("hide", [])]  # type: ignore[misc]
    allowed = [*listed, *covers, "/proc", "/dev", str(spec["scratch"])]
    return sorted(p for p in points if p != "/" and not _covered(p, [str(a) for a in allowed]))


def unescape(field: str) -> str:
    r"""Decode mountinfo's octal escapes (``\040`` for a space, and so on)."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == _OCTAL_DIGITS and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts() -> dict[int, tuple[str, frozenset[str], str]]:
    """Return ``{mount id: (mount point, per-mount options, fs type)}`` of this namespace."""
    table: dict[int, tuple[str, frozenset[str], str]] = {}
    text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="surrogateescape")
    for line in text.splitlines():
        fields = line.split(" ")
        fstype = fields[fields.index("-") + 1]
        table[int(fields[0])] = (unescape(fields[4]), frozenset(fields[5].split(",")), fstype)
    return table


def mount_id(path: str) -> int:
    """Return the id of the mount that `path` resolves to (from fdinfo)."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        for line in Path(f"/proc/self/fdinfo/{fd}").read_text(encoding="ascii").splitlines():
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    finally:
        os.close(fd)
    msg = f"no mnt_id in /proc/self/fdinfo for {path}"
    raise OSError(msg)
