"""The data part `D` of a transcript: point hashes, batch roots, the order.

Every data point is hashed (`point_hash`); each step's batch is committed by
the RFC 9162 Merkle root of its points' hashes, in order (`batch_root`); and
the whole run by the root over the batch roots (`data_root`). A
`DataSchedule` fixes which points each step uses before training starts, so
the data order can be precommitted (paper §5, requirement (b)).

Example::

    >>> import torch
    >>> from computewatch.datacenter import batch_root, point_hash
    >>> str(batch_root([point_hash(torch.arange(4))])).startswith("sha256:")
    True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch._validate import int_in_range
from computewatch.crypto import Digest, HashAlgorithm, hash_bytes, leaf_hash, shard_hash
from computewatch.crypto.hazmat import merkle_root
from computewatch.errors import ParameterError

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

__all__ = ["DataSchedule", "batch_root", "data_root", "point_hash"]

_POINT_DOMAIN = b"computewatch/data-point/v1\x00"
_BATCH_DOMAIN = b"computewatch/batch-root/v1\x00"
_RUN_DOMAIN = b"computewatch/data-root/v1\x00"


def point_hash(point: torch.Tensor) -> Digest:
    """Hash of one data point (its dtype, shape and bytes)."""
    return hash_bytes(shard_hash(point).value, domain=_POINT_DOMAIN)


def batch_root(points: Sequence[Digest]) -> Digest:
    """Merkle root of a batch's point hashes, in order."""
    root = merkle_root([leaf_hash(p.value) for p in points])
    return Digest(HashAlgorithm.SHA256, hash_bytes(root, domain=_BATCH_DOMAIN).value)


def data_root(batch_roots: Sequence[Digest]) -> Digest:
    """Merkle root over every step's batch root, in step order."""
    root = merkle_root([leaf_hash(b.value) for b in batch_roots])
    return Digest(HashAlgorithm.SHA256, hash_bytes(root, domain=_RUN_DOMAIN).value)


@functools.lru_cache(maxsize=2)
def _permutation(size: int, seed: int) -> torch.Tensor:
    """One epoch's seeded permutation (cached: every step of the epoch slices it)."""
    import torch  # noqa: PLC0415

    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))


@dataclass(frozen=True, slots=True)
class DataSchedule:
    """Which data points every step uses, fixed before training.

    Points are drawn without replacement from a seeded permutation of the
    dataset, epoch after epoch. The global batch of a step is split evenly
    across the chips of the run, in rank order.

    Attributes:
        dataset_size: points in the dataset.
        batch_size: points per optimizer step (global).
        steps: optimizer steps in the run.
        seed: seed of the permutation.
    """

    dataset_size: int
    batch_size: int
    steps: int
    seed: int

    def __post_init__(self) -> None:
        """Validate the schedule."""
        int_in_range("dataset_size", self.dataset_size, 1, 1 << 48)
        int_in_range("batch_size", self.batch_size, 1, self.dataset_size)
        int_in_range("steps", self.steps, 1, 1 << 32)
        int_in_range("data seed", self.seed, 0, 2**63 - 1)

    def indices(self, step: int) -> list[int]:
        """The dataset indices of step `step`'s global batch."""
        int_in_range("step", step, 0, self.steps - 1)
        per_epoch = self.dataset_size // self.batch_size
        epoch, within = divmod(step, per_epoch)
        perm = _permutation(self.dataset_size, (self.seed + epoch) & (2**63 - 1))
        start = within * self.batch_size
        return [int(i) for i in perm[start : start + self.batch_size].tolist()]

    def local_indices(self, step: int, rank: int, world_size: int) -> list[int]:
        """The part of step `step`'s batch that chip `rank` trains on."""
        idx = self.indices(step)
        if self.batch_size % world_size:
            msg = f"batch_size {self.batch_size} is not divisible by world_size {world_size}"
            raise ParameterError(msg)
        per = self.batch_size // world_size
        return idx[rank * per : (rank + 1) * per]

    def to_json(self) -> dict[str, Any]:
        """The manifest record."""
        return {
            "dataset_size": self.dataset_size,
            "batch_size": self.batch_size,
            "steps": self.steps,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DataSchedule:
        """Parse the manifest record."""
        return cls(
            dataset_size=doc["dataset_size"],
            batch_size=doc["batch_size"],
            steps=doc["steps"],
            seed=doc["seed"],
        )
