"""Per-step commitments: one digest of the weights and optimizer state after every step (ADR 0034).

The digest after a step combines, in rank order, one digest per chip of
that chip's slice of the flat weights and of its optimizer state (each
tensor by `leaf_hash`, the shard hash with BLAKE3 on one thread, names
sorted): a chip hashes only what it holds and the chips all-gather 32 bytes
each. BLAKE3 because this hash runs after every step, over 12 bytes per
parameter under Adam: it is 4x faster than SHA-256 here (ADR 0042). The
Verifier computes the same digest from a full state (a checkpoint, or a
replay) with `state_digest`, cutting it into the manifest's slices. The
digests go into ``metrics.jsonl`` (`MetricsRecord.state`), which the
transcript's commitment covers, so a disputed segment can be bisected down
to the one step whose outcome is wrong (`computewatch.verification.bisect_first_bad`).

Example::

    >>> import torch
    >>> w = torch.arange(6, dtype=torch.float32)
    >>> one = state_digest(w, {"exp_avg": torch.zeros(6)}, [(0, 6)])
    >>> two = state_digest(w, {"exp_avg": torch.zeros(6)}, [(0, 3), (3, 6)])
    >>> one != two, str(one).startswith("sha256:")
    (True, True)
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from computewatch.crypto import Digest, HashAlgorithm, concat_shard_hash, shard_hash
from computewatch.errors import ParameterError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import torch

__all__ = [
    "LEAF_HASH",
    "combine_slice_digests",
    "concat_leaf_hash",
    "leaf_hash",
    "slice_digest",
    "slice_digest_of",
    "state_digest",
]

LEAF_HASH = HashAlgorithm.BLAKE3
"""The shard hash's algorithm for the tensors of a per-step commitment (ADR 0042)."""

_SLICE_DOMAIN = b"computewatch/step-state/slice/v2\x00"  # v2: BLAKE3 leaves
_STATE_DOMAIN = b"computewatch/step-state/v1\x00"


def leaf_hash(tensor: torch.Tensor) -> Digest:
    """The shard hash of one tensor of a per-step commitment (BLAKE3, one thread).

    One thread: it runs beside the lab's forward and backward (ADR 0040),
    which already use every core.
    """
    return shard_hash(tensor, LEAF_HASH, max_threads=1)


def concat_leaf_hash(parts: Sequence[torch.Tensor]) -> Digest:
    """`leaf_hash` of the 1-D concatenation of `parts`, streamed without copying them."""
    return concat_shard_hash(parts, LEAF_HASH, max_threads=1)


def slice_digest(weights: torch.Tensor, state: Mapping[str, torch.Tensor]) -> bytes:
    """The 32-byte digest of one chip's weight slice and its optimizer state."""
    return slice_digest_of(leaf_hash(weights), {k: leaf_hash(v) for k, v in state.items()})


def slice_digest_of(weights: Digest, state: Mapping[str, Digest]) -> bytes:
    """`slice_digest` from the `leaf_hash` of the weights and of each state tensor.

    Raises:
        ParameterError: a digest is not a `LEAF_HASH` one (a caller hashed with
            another algorithm: its commitment would never match a replay's).
    """
    for digest in (weights, *state.values()):
        if digest.algorithm is not LEAF_HASH:
            got = digest.algorithm.value
            msg = f"step-state leaf: expected a {LEAF_HASH.value} digest, got {got}"
            raise ParameterError(msg)
    h = hashlib.sha256(_SLICE_DOMAIN)
    h.update(weights.value)
    for name in sorted(state):
        h.update(name.encode() + b"\x00")
        h.update(state[name].value)
    return h.digest()


def combine_slice_digests(parts: Sequence[bytes]) -> Digest:
    """The step's digest over every chip's `slice_digest`, in rank order."""
    h = hashlib.sha256(_STATE_DOMAIN)
    h.update(len(parts).to_bytes(4, "big"))
    for part in parts:
        h.update(part)
    return Digest(HashAlgorithm.SHA256, h.digest())


def state_digest(
    weights: torch.Tensor,
    optimizer_state: Mapping[str, torch.Tensor],
    slices: Sequence[tuple[int, int]],
) -> Digest:
    """The digest of a full state (weights, optimizer state over the whole vector).

    A 1-D state tensor of the weights' length is cut into the chips'
    slices; any other (Adam's step count) belongs whole to every chip.
    """
    n = weights.numel()
    parts = []
    for a, b in slices:
        state = {
            name: value[a:b] if value.ndim == 1 and value.numel() == n else value
            for name, value in optimizer_state.items()
        }
        parts.append(slice_digest(weights[a:b], state))
    return combine_slice_digests(parts)
