"""The gradient reduction order of a run: a fixed binary tree over micro-shards (ADR 0033).

A run's global batch is cut into `micro_shards` equal, contiguous parts
(micro-shard ``j`` is points ``[j*B/M, (j+1)*B/M)`` of the step's batch). Each
micro-shard's gradient is computed on its own, and the `M` gradients are
summed in one fixed order, `tree_sum`: adjacent pairs, level by level, an odd
one carried up. Chip `r` of `R` computes micro-shards ``r*M/R ..
(r+1)*M/R - 1``, all-gathers the others' and sums the same tree, so every
chip, and a one-process replay, adds the same floats in the same order: the
result depends on the run's specification, not on the world size or the
communication backend.

Example::

    >>> import torch
    >>> tree_sum([torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([4.0])])
    tensor([7.])
    >>> Reduction.from_json({"scheme": "tree-v1", "micro_shards": 4}).micro_shards
    4
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch.errors import FormatError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

__all__ = ["TREE_SCHEME", "Reduction", "tree_sum"]

#: The manifest's name for `tree_sum` over contiguous micro-shards.
TREE_SCHEME = "tree-v1"

_MAX_MICRO_SHARDS = 1 << 16


def tree_sum(values: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum `values` as a binary tree: ``((v0+v1)+(v2+v3))+...``, an odd one carried up."""
    if not values:
        msg = "tree_sum: nothing to sum"
        raise ValueError(msg)
    level = list(values)
    while len(level) > 1:
        nxt = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].clone() if len(values) == 1 else level[0]


@dataclass(frozen=True, slots=True)
class Reduction:
    """The manifest's record of the reduction order (``sharding.reduction``).

    Attributes:
        micro_shards: `M`, the number of equal parts of the global batch whose
            gradients are summed by `tree_sum` (a multiple of the world size,
            a divisor of the batch size).
        scheme: always `TREE_SCHEME`; another name is refused.
    """

    micro_shards: int
    scheme: str = TREE_SCHEME

    def __post_init__(self) -> None:
        """Refuse an unknown scheme or a count out of range."""
        if self.scheme != TREE_SCHEME:
            msg = f"reduction scheme: expected {TREE_SCHEME!r}, got {self.scheme!r:.40}"
            raise FormatError(msg)
        m: object = self.micro_shards  # from a hostile manifest: check the type too
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= _MAX_MICRO_SHARDS:
            msg = (
                f"reduction micro_shards: expected an int in [1, {_MAX_MICRO_SHARDS}], "
                f"got {m!r:.40}"
            )
            raise FormatError(msg)

    def check_fits(self, batch_size: int, world_size: int) -> None:
        """Raise `FormatError` unless `world_size` divides `M` and `M` divides `batch_size`."""
        m = self.micro_shards
        if m % world_size or batch_size % m:
            msg = (
                f"reduction micro_shards {m}: expected a multiple of world_size {world_size} "
                f"that divides batch_size {batch_size}"
            )
            raise FormatError(msg)

    def to_json(self) -> dict[str, Any]:
        """The manifest record."""
        return {"scheme": self.scheme, "micro_shards": self.micro_shards}

    @classmethod
    def from_json(cls, doc: object) -> Reduction:
        """Parse the manifest record (`FormatError` on anything else)."""
        if not isinstance(doc, dict) or set(doc) != {"scheme", "micro_shards"}:
            msg = f"reduction: expected {{'scheme', 'micro_shards'}}, got {doc!r:.60}"
            raise FormatError(msg)
        return cls(micro_shards=doc["micro_shards"], scheme=doc["scheme"])
