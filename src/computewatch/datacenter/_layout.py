r"""Flat weights, shards, and verifiable initialization.

All of a model's parameters live in one flat float32 vector (each parameter
a view into it, in `named_parameters` order): the *full flattened weights*
the paper's shards are slices of. `FlatLayout` records where each parameter
sits; `shard_range` gives chip `r` of `R` its contiguous slice ω.

Initialization is verifiable (paper §5, requirement (a)): `init_flat` fills
the vector from a short seed through a documented generator, so anyone with
the layout and the seed regenerates W_0 exactly. Scheme ``cw-normal-v1``:
for each parameter, in layout order, a `torch.Generator` seeded with the
first 8 bytes (big-endian, top bit cleared) of
``SHA-256("computewatch/init/v1\0" ‖ seed as 8 bytes big-endian ‖ name)``;
biases are zeros, one-dimensional ``weight`` parameters (norm gains) ones,
everything else ``normal(0, std)`` drawn from that generator. The seed
itself is derived from the run's precommitment (`derive_init_seed`), so the
Prover cannot pick W_0.

Example::

    >>> from computewatch.datacenter import FlatLayout, init_flat, shard_range
    >>> shard_range(rank=1, world_size=4, numel=10)
    (3, 6)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch._validate import int_in_range
from computewatch.crypto import Digest, hash_bytes
from computewatch.errors import FormatError, ParameterError

if TYPE_CHECKING:
    import torch

__all__ = [
    "INIT_SCHEMES",
    "FlatLayout",
    "derive_init_seed",
    "flatten_model",
    "init_flat",
    "shard_range",
]

INIT_SCHEMES = ("cw-normal-v1",)
_INIT_DOMAIN = b"computewatch/init/v1\x00"
_SEED_DOMAIN = b"computewatch/init-seed/v1\x00"


@dataclass(frozen=True, slots=True)
class FlatLayout:
    """Where each parameter sits in the flat weight vector.

    Attributes:
        names: parameter names, in order.
        shapes: their shapes.
        offsets: their first index in the flat vector.
        numel: length of the flat vector.
    """

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]
    numel: int

    @classmethod
    def from_model(cls, model: torch.nn.Module) -> FlatLayout:
        """The layout of `model.named_parameters()`."""
        names, shapes, offsets = [], [], []
        offset = 0
        for name, p in model.named_parameters():
            names.append(name)
            shapes.append(tuple(int(d) for d in p.shape))
            offsets.append(offset)
            offset += p.numel()
        if offset == 0:
            msg = "model: expected at least one parameter, got none"
            raise ParameterError(msg)
        return cls(tuple(names), tuple(shapes), tuple(offsets), offset)

    def to_json(self) -> list[dict[str, Any]]:
        """The manifest record."""
        return [
            {"name": n, "shape": list(s), "offset": o}
            for n, s, o in zip(self.names, self.shapes, self.offsets, strict=True)
        ]

    @classmethod
    def from_json(cls, doc: object) -> FlatLayout:
        """Parse and check a manifest record (contiguous, in order)."""
        if not isinstance(doc, list) or not doc:
            msg = "layout: expected a non-empty list of parameters"
            raise FormatError(msg)
        names, shapes, offsets = [], [], []
        offset = 0
        for i, item in enumerate(doc):
            try:
                name, shape, off = str(item["name"]), item["shape"], item["offset"]
                dims = tuple(int_in_range(f"layout[{i}].shape", d, 0, 2**40) for d in shape)
            except (KeyError, TypeError, ParameterError) as e:
                msg = f"layout[{i}]: malformed parameter record ({e})"
                raise FormatError(msg) from e
            if off != offset:
                msg = f"layout[{i}] {name!r}: expected offset {offset}, got {off}"
                raise FormatError(msg)
            names.append(name)
            shapes.append(dims)
            offsets.append(offset)
            n = 1
            for d in dims:
                n *= d
            offset += n
        return cls(tuple(names), tuple(shapes), tuple(offsets), offset)

    def digest(self) -> Digest:
        """A hash of the layout (names, shapes, offsets)."""
        from computewatch.crypto import json_digest  # noqa: PLC0415

        return json_digest(self.to_json())


def flatten_model(model: torch.nn.Module) -> tuple[FlatLayout, torch.Tensor]:
    """Move every parameter of `model` into one flat float32 buffer.

    Afterwards each parameter's data is a view into the returned vector, so
    writing the vector updates the model. Values are preserved.
    """
    import torch  # noqa: PLC0415

    layout = FlatLayout.from_model(model)
    flat = torch.empty(layout.numel, dtype=torch.float32)
    with torch.no_grad():
        for (_, p), off in zip(model.named_parameters(), layout.offsets, strict=True):
            if p.dtype != torch.float32:
                msg = f"parameter dtype: expected float32, got {p.dtype}"
                raise ParameterError(msg)
            view = flat[off : off + p.numel()].view_as(p)
            view.copy_(p)
            p.data = view
    return layout, flat


def shard_range(rank: int, world_size: int, numel: int) -> tuple[int, int]:
    """Chip `rank`'s slice `[a, b)` of a flat vector of `numel` elements.

    The first `numel % world_size` chips get one element more.
    """
    world = int_in_range("world_size", world_size, 1, 1 << 20)
    r = int_in_range("rank", rank, 0, world - 1)
    n = int_in_range("numel", numel, 1, 1 << 48)
    base, extra = divmod(n, world)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


def derive_init_seed(precommitment: Digest) -> int:
    """The initialization seed bound to a run's precommitment (63 bits)."""
    raw = hash_bytes(precommitment.value, domain=_SEED_DOMAIN).value
    return int.from_bytes(raw[:8], "big") & (2**63 - 1)


def init_flat(
    layout: FlatLayout, seed: int, scheme: str = "cw-normal-v1", std: float = 0.02
) -> torch.Tensor:
    """Regenerate W_0 from `seed` (see the module docs for the scheme)."""
    import torch  # noqa: PLC0415

    if scheme not in INIT_SCHEMES:
        msg = f"init scheme: expected one of {INIT_SCHEMES}, got {scheme!r}"
        raise FormatError(msg)
    int_in_range("init seed", seed, 0, 2**63 - 1)
    flat = torch.empty(layout.numel, dtype=torch.float32)
    seed_bytes = seed.to_bytes(8, "big")
    for name, shape, off in zip(layout.names, layout.shapes, layout.offsets, strict=True):
        n = 1
        for d in shape:
            n *= d
        part = flat[off : off + n]
        if name.endswith("bias"):
            part.zero_()
        elif len(shape) == 1 and name.endswith("weight"):
            part.fill_(1.0)
        else:
            digest = hashlib.sha256(_INIT_DOMAIN + seed_bytes + name.encode()).digest()
            g = torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") & (2**63 - 1))
            part.normal_(0.0, std, generator=g)
    return flat
