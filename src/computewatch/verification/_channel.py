"""The replay workers' only way out: tensors and metrics in one safetensors blob.

A worker writes, on a private file descriptor, a safetensors file (a
little-endian header length, a JSON header, raw little-endian tensor bytes:
a format that cannot carry code) whose metadata entry ``metrics`` is a JSON
object. The Verifier parses it with `decode_result`, which bounds the header
and the size before anything is read and turns every defect into a
`FormatError` naming the job and the key: a worker that writes noise, too
much or nothing gives a failed job, never a result.

Example::

    >>> import torch
    >>> blob = encode_result({"r0/6": torch.zeros(3)}, {"losses": [0.5]})
    >>> tensors, metrics = decode_result(blob, "job 1")
    >>> tensors["r0/6"].shape, metrics["losses"]
    (torch.Size([3]), [0.5])
"""

from __future__ import annotations

import json
import struct
from typing import TYPE_CHECKING, Any

from computewatch.errors import FormatError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import torch

__all__ = ["MAX_HEADER_BYTES", "decode_result", "encode_result"]

#: Largest safetensors header a worker may send.
MAX_HEADER_BYTES = 16 << 20
_LEN = 8


def encode_result(tensors: Mapping[str, torch.Tensor], metrics: Mapping[str, Any]) -> bytes:
    """The worker's answer: `tensors` (contiguous CPU copies) and JSON `metrics`."""
    from safetensors.torch import save  # noqa: PLC0415

    body = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return save(body, metadata={"metrics": json.dumps(dict(metrics), allow_nan=True)})


def decode_result(raw: bytes, where: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Parse a worker's answer (bounded; never unpickles).

    Raises:
        FormatError: empty, truncated, oversized header, not safetensors, or
            metrics that are not a JSON object.
    """
    from safetensors import SafetensorError  # noqa: PLC0415
    from safetensors.torch import load  # noqa: PLC0415

    if len(raw) < _LEN:
        msg = f"{where}: expected a safetensors result, got {len(raw)} bytes"
        raise FormatError(msg)
    (size,) = struct.unpack("<Q", raw[:_LEN])
    if size > MAX_HEADER_BYTES or _LEN + size > len(raw):
        msg = f"{where}: result header of {size} bytes exceeds the {len(raw)} bytes sent"
        raise FormatError(msg)
    try:
        header = json.loads(raw[_LEN : _LEN + size])
        meta = header.get("__metadata__") or {}
        metrics = json.loads(meta.get("metrics", "{}"))
        tensors = load(raw)
    except (ValueError, AttributeError, TypeError, SafetensorError) as e:
        msg = f"{where}: result is not a valid safetensors blob ({' '.join(str(e).split())[:200]})"
        raise FormatError(msg) from e
    if not isinstance(metrics, dict):
        msg = f"{where}: result metrics: expected a JSON object, got {type(metrics).__name__}"
        raise FormatError(msg)
    return dict(tensors), metrics
