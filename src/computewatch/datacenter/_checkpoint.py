"""Checkpoints `W` of a transcript: safetensors only, never pickle.

A checkpoint holds the full flat weights, the optimizer's state over them
(elementwise state such as Adam's moments, full length; scalars such as the
step count as they are), and the process-global RNG state, so a run can be
resumed or a segment replayed exactly. Its metadata (strings, per the
safetensors format) carries the step, the layout digest and the optimizer's
hyperparameter groups as JSON. Files are written atomically (temporary file,
fsync, rename) and hashed as the bytes on disk.

Example::

    >>> ckpt = load_checkpoint("run/checkpoints/step-00000010.safetensors")  # doctest: +SKIP
    >>> ckpt.step, ckpt.weights.shape  # doctest: +SKIP
    (10, torch.Size([...]))
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch.crypto import Digest, HashAlgorithm, canonical_json
from computewatch.crypto._canonical import new_hasher
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    import torch

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "file_digest", "load_checkpoint", "save_checkpoint"]

CHECKPOINT_FORMAT = "computewatch-checkpoint/v1"
_FILE_DOMAIN = b"computewatch/file/v1\x00"
#: Largest checkpoint the reader opens (bounded input).
MAX_CHECKPOINT_BYTES = 1 << 40
_READ_CHUNK = 1 << 24


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        step: the optimizer steps completed when it was taken (0 = W_0).
        weights: the full flat weights.
        optimizer_state: optimizer state tensors by name (full length).
        param_groups: the optimizer's hyperparameter groups (no params).
        rng_state: torch's global RNG state.
        layout_digest: digest of the flat layout it belongs to.
    """

    step: int
    weights: torch.Tensor
    optimizer_state: dict[str, torch.Tensor]
    param_groups: list[dict[str, Any]]
    rng_state: torch.Tensor
    layout_digest: str


def file_digest(path: str | os.PathLike[str]) -> Digest:
    """Hash of a file's bytes, streamed (how transcript files are committed)."""
    hasher = new_hasher(HashAlgorithm.SHA256)
    hasher.update(_FILE_DOMAIN)
    try:
        with Path(path).open("rb") as f:
            while chunk := f.read(_READ_CHUNK):
                hasher.update(chunk)
    except OSError as e:
        msg = f"{path}: cannot read ({e.strerror})"
        raise FormatError(msg) from e
    return Digest(HashAlgorithm.SHA256, hasher.digest())


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    step: int,
    weights: torch.Tensor,
    optimizer_state: dict[str, torch.Tensor],
    param_groups: list[dict[str, Any]],
    rng_state: torch.Tensor,
    layout_digest: str,
) -> Digest:
    """Write a checkpoint atomically and return its file digest."""
    from safetensors.torch import save_file  # noqa: PLC0415

    target = Path(path)
    tensors = {"weights": weights.detach().contiguous()}
    for name, value in optimizer_state.items():
        tensors[f"optim.{name}"] = value.detach().contiguous()
    tensors["rng.torch"] = rng_state.contiguous()
    # One metadata key holding canonical JSON: safetensors writes a map's keys
    # in no fixed order, and checkpoint bytes must be reproducible.
    metadata = {
        "computewatch": canonical_json(
            {
                "format": CHECKPOINT_FORMAT,
                "step": step,
                "layout": layout_digest,
                "param_groups": param_groups,
            }
        ).decode()
    }
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(tmp), metadata=metadata)
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        tmp.replace(target)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        msg = f"checkpoint {target}: cannot write ({e.strerror})"
        raise FormatError(msg) from e
    return file_digest(target)


def load_checkpoint(path: str | os.PathLike[str], *, expected: Digest | None = None) -> Checkpoint:
    """Read a checkpoint through safetensors (no code runs on load).

    Args:
        path: the file.
        expected: if given, the file digest it must have (from the report).

    Raises:
        IntegrityError: the file's digest differs from `expected`.
        FormatError: not a computewatch checkpoint, or malformed.
    """
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415

    file = Path(path)
    try:
        size = file.stat().st_size
    except OSError as e:
        msg = f"checkpoint {file}: cannot read ({e.strerror})"
        raise FormatError(msg) from e
    if size > MAX_CHECKPOINT_BYTES:
        msg = f"checkpoint {file}: larger than {MAX_CHECKPOINT_BYTES} bytes"
        raise FormatError(msg)
    if expected is not None:
        got = file_digest(file)
        if got != expected:
            msg = (
                f"checkpoint {file.name}: digest mismatch (expected {expected.hex[:12]}…, "
                f"got {got.hex[:12]}…)"
            )
            raise IntegrityError(msg)
    try:
        from safetensors import safe_open  # noqa: PLC0415

        with safe_open(str(file), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as e:
        msg = f"checkpoint {file.name}: not a valid safetensors file ({e})"
        raise FormatError(msg) from e
    try:
        meta = json.loads(metadata["computewatch"])
        if meta.get("format") != CHECKPOINT_FORMAT:
            got = meta.get("format")
            msg = f"checkpoint {file.name}: expected format {CHECKPOINT_FORMAT!r}, got {got!r}"
            raise FormatError(msg)
        step = int(meta["step"])
        groups = meta["param_groups"]
        layout = str(meta["layout"])
        weights = tensors.pop("weights")
        rng = tensors.pop("rng.torch")
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        msg = f"checkpoint {file.name}: missing or malformed field ({e})"
        raise FormatError(msg) from e
    if weights.ndim != 1 or not isinstance(groups, list):
        msg = f"checkpoint {file.name}: weights must be a flat vector"
        raise FormatError(msg)
    state = {k.removeprefix("optim."): v for k, v in tensors.items() if k.startswith("optim.")}
    return Checkpoint(
        step=step,
        weights=weights,
        optimizer_state=state,
        param_groups=groups,
        rng_state=rng,
        layout_digest=layout,
    )
