"""The transcript folder `T = {M, D, W}` and its commitment (paper §5, App. D).

One folder per run::

    manifest.json               M: program, config, layout, init, data schedule,
                                determinism, sharding, checkpoint interval
    code/program.py             the training program's source (hash in M)
    data/steps.jsonl            D: per step, every point's hash and the batch root
    metrics.jsonl               per step: loss, lr, update and gradient norms, time
    checkpoints/step-N.safetensors  W: weights + optimizer state every k steps
    checkpoints/index.jsonl     step -> file digest
    snapshots/SERIAL-SEQ.safetensors  the ω copies the chips' firmware wrote
    chips/SERIAL.json           each chip's shard slice and snapshot claims
    commitment.json             the Merkle root over all of the above
    report.json                 the Prover report: hashes only

Nothing in it is pickled. Line files are appended one complete line per
step; a run killed at any point leaves a prefix that `Recorder.resume` cuts
back to its last checkpoint.

Example::

    >>> paths = TranscriptPaths("runs/run-1")
    >>> paths.checkpoint(10).name
    'step-00000010.safetensors'
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from computewatch.crypto import Digest, HashAlgorithm, canonical_json, hash_bytes, leaf_hash
from computewatch.crypto.hazmat import merkle_root
from computewatch.errors import ComputeWatchError, FormatError

__all__ = [
    "MANIFEST_FORMAT",
    "REPORT_FORMAT",
    "LineWriter",
    "StorageError",
    "TranscriptPaths",
    "append_line",
    "commitment_root",
    "read_lines",
    "read_lines_checked",
    "write_json_atomic",
]

MANIFEST_FORMAT = "computewatch-transcript/v1"
REPORT_FORMAT = "computewatch-report/v1"
_COMMIT_DOMAIN = b"computewatch/transcript-commitment/v1\x00"
#: Longest line accepted in a transcript line file.
MAX_LINE_BYTES = 1 << 22


class StorageError(ComputeWatchError):
    """The transcript could not be written (full disk, unwritable folder)."""

    exit_code = 2
    kind = "storage error"


@dataclass(frozen=True, slots=True)
class TranscriptPaths:
    """Where each part of a transcript lives."""

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Paths under the run folder `root`."""
        object.__setattr__(self, "root", Path(root))

    @property
    def manifest(self) -> Path:
        """`manifest.json`."""
        return self.root / "manifest.json"

    @property
    def program(self) -> Path:
        """`code/program.py`."""
        return self.root / "code" / "program.py"

    @property
    def steps(self) -> Path:
        """`data/steps.jsonl`."""
        return self.root / "data" / "steps.jsonl"

    @property
    def metrics(self) -> Path:
        """`metrics.jsonl`."""
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        """`checkpoints/`."""
        return self.root / "checkpoints"

    def checkpoint(self, step: int) -> Path:
        """The checkpoint after `step` optimizer steps."""
        return self.checkpoints / f"step-{step:08d}.safetensors"

    @property
    def checkpoint_index(self) -> Path:
        """`checkpoints/index.jsonl`."""
        return self.checkpoints / "index.jsonl"

    @property
    def snapshots(self) -> Path:
        """`snapshots/`."""
        return self.root / "snapshots"

    @property
    def chips(self) -> Path:
        """`chips/`."""
        return self.root / "chips"

    @property
    def commitment(self) -> Path:
        """`commitment.json`."""
        return self.root / "commitment.json"

    @property
    def report(self) -> Path:
        """`report.json`."""
        return self.root / "report.json"


def write_json_atomic(path: Path, doc: Any) -> bytes:
    """Write canonical JSON atomically (tmp, fsync, rename); return the bytes."""
    data = canonical_json(doc)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        msg = f"transcript file {path}: cannot write ({e.strerror})"
        raise StorageError(msg) from e
    return data


def append_line(path: Path, doc: Any, *, sync: bool = False) -> None:
    """Append one canonical-JSON line (complete or not at all on disk)."""
    line = canonical_json(doc) + b"\n"
    try:
        with path.open("ab") as f:
            f.write(line)
            f.flush()
            if sync:
                os.fsync(f.fileno())
    except OSError as e:
        msg = f"transcript file {path}: cannot append ({e.strerror})"
        raise StorageError(msg) from e


class LineWriter:
    """An open, unbuffered append handle for one line file (the per-step hot path).

    Each `write` is one ``write(2)`` of one whole canonical-JSON line, so a
    killed process leaves whole lines. Records are the recorder's own
    (string keys, numbers, hex strings), so they are encoded without
    `canonical_json`'s per-value validation; the bytes are the same.
    """

    def __init__(self, path: Path) -> None:
        """Open `path` for appending."""
        self.path = path
        try:
            self._file = path.open("ab", buffering=0)
        except OSError as e:
            msg = f"transcript file {path}: cannot open ({e.strerror})"
            raise StorageError(msg) from e

    def write(self, doc: dict[str, Any]) -> None:
        """Append one record."""
        try:
            line = json.dumps(
                doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode()
        except ValueError as e:
            msg = f"transcript file {self.path.name}: record not representable ({e})"
            raise FormatError(msg) from e
        try:
            self._file.write(line + b"\n")
        except OSError as e:
            msg = f"transcript file {self.path}: cannot append ({e.strerror})"
            raise StorageError(msg) from e

    def write_line(self, line: bytes) -> None:
        """Append one pre-encoded line (ending in a newline)."""
        try:
            self._file.write(line)
        except OSError as e:
            msg = f"transcript file {self.path}: cannot append ({e.strerror})"
            raise StorageError(msg) from e

    def close(self) -> None:
        """Close the handle."""
        self._file.close()


def read_lines(path: Path, *, drop_torn: bool = False) -> list[dict[str, Any]]:
    """Read a line file; a torn last line is an error unless `drop_torn`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        msg = f"transcript file {path}: cannot read ({e.strerror})"
        raise FormatError(msg) from e
    lines = data.split(b"\n")
    tail = lines.pop()  # "" when the file ends with a newline
    if tail and not drop_torn:
        msg = f"transcript file {path.name}: torn last line (incomplete write)"
        raise FormatError(msg)
    out = []
    for i, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE_BYTES:
            msg = f"transcript file {path.name} line {i}: longer than {MAX_LINE_BYTES} bytes"
            raise FormatError(msg)
        try:
            doc = json.loads(line)
        except ValueError as e:
            msg = f"transcript file {path.name} line {i}: not JSON ({e})"
            raise FormatError(msg) from e
        if not isinstance(doc, dict):
            msg = f"transcript file {path.name} line {i}: expected an object"
            raise FormatError(msg)
        out.append(doc)
    return out


def read_lines_checked(path: Path) -> list[dict[str, Any]]:
    """Read a committed line file; a torn line is a format error."""
    return read_lines(path, drop_torn=False)


def rewrite_lines(path: Path, docs: list[dict[str, Any]]) -> None:
    """Replace a line file with `docs` atomically (used when resuming)."""
    data = b"".join(canonical_json(d) + b"\n" for d in docs)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as e:
        msg = f"transcript file {path}: cannot write ({e.strerror})"
        raise StorageError(msg) from e


def commitment_root(parts: dict[str, str]) -> Digest:
    """Merkle root over the named part digests, in name order."""
    leaves = [leaf_hash(canonical_json([name, parts[name]])) for name in sorted(parts)]
    root = merkle_root(leaves)
    return Digest(HashAlgorithm.SHA256, hash_bytes(root, domain=_COMMIT_DOMAIN).value)
