"""A content-addressed store of Prover artifacts, read by replay workers only.

The Verifier copies each Prover file a job needs into the store once, with
a bounded read (`read_bounded`: a regular file, not a link, a FIFO or a
device, no larger than a cap), and names it by the SHA-256 of its bytes. A
job names its inputs by those hashes; `ArtifactStore.stage` links exactly
those objects into a fresh job folder, the only Prover data its worker sees
(the store itself is hidden from workers). Nothing in the store is ever
deserialized by the engine that moves jobs around.

Example::

    >>> import tempfile
    >>> store = ArtifactStore(tempfile.mkdtemp())
    >>> key = store.put_bytes(b"hello")
    >>> key[:12]
    '2cf24dba5fb0'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from computewatch.errors import FormatError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["ArtifactStore", "read_bounded"]

_CHUNK = 1 << 20


def read_bounded(path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """Read a whole regular file of at most `limit` bytes.

    Opened without following links and without blocking, so a file linked
    to ``/dev/zero``, a FIFO or a device is refused before a byte is read.

    Raises:
        FormatError: missing, not a regular file, a symlink, or too large.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        reason = "a symbolic link" if e.errno == 40 else (e.strerror or str(e))  # noqa: PLR2004 - ELOOP
        msg = f"{what}: cannot open ({reason})"
        raise FormatError(msg) from e
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            msg = f"{what}: expected a regular file, got {stat.filemode(info.st_mode)}"
            raise FormatError(msg)
        if info.st_size > limit:
            msg = f"{what}: expected at most {limit} bytes, got {info.st_size}"
            raise FormatError(msg)
        parts = []
        total = 0
        while chunk := os.read(fd, min(_CHUNK, limit + 1 - total)):
            parts.append(chunk)
            total += len(chunk)
            if total > limit:
                msg = f"{what}: grew past {limit} bytes while being read"
                raise FormatError(msg)
        return b"".join(parts)
    except OSError as e:
        msg = f"{what}: cannot read ({e.strerror})"
        raise FormatError(msg) from e
    finally:
        os.close(fd)


class ArtifactStore:
    """Objects named by the SHA-256 of their bytes, under one folder."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Use (or create) the store at `root`."""
        self.root = Path(root).resolve()
        (self.root / "objects").mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Where object `key` lives."""
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):  # noqa: PLR2004
            msg = f"artifact store: expected a SHA-256 hex key, got {key[:80]!r}"
            raise FormatError(msg)
        return self.root / "objects" / key

    def put_bytes(self, data: bytes) -> str:
        """Store `data`; return its key."""
        key = hashlib.sha256(data).hexdigest()
        target = self.path(key)
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=self.root / "objects")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            Path(tmp).chmod(0o444)
            Path(tmp).replace(target)
        return key

    def put_file(self, path: str | os.PathLike[str], limit: int, what: str) -> str:
        """Store a Prover file read with `read_bounded`; return its key."""
        return self.put_bytes(read_bounded(path, limit, what))

    def stage(self, files: Mapping[str, str], folder: Path | None = None) -> Path:
        """A folder (fresh unless given) holding exactly `files`, linked from the store."""
        folder = folder or Path(tempfile.mkdtemp(prefix="computewatch-job-"))
        for name, key in files.items():
            if Path(name).name != name or name.startswith("."):
                msg = f"artifact store: job file name {name!r} must be a plain name"
                raise FormatError(msg)
            source, target = self.path(key), folder / name
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        return folder

    @staticmethod
    def unstage(folder: Path) -> None:
        """Remove a staged job folder."""
        with contextlib.suppress(OSError):
            shutil.rmtree(folder)
