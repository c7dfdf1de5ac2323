r"""The weight-shard hash: a canonical, domain-separated hash of a tensor.

The shard hash ``h = Hash(ω)`` is what chip firmware logs for each snapshot
(paper §4, DESIGN "Weight shard hash"), so it must depend only on the
tensor's *value* (dtype, shape, elements) and never on how it sits in
memory: its strides, its byte order, or whether it is a torch tensor or a
numpy array. Version 1 of the encoding is::

    H( b"computewatch/shard/v1\x00"                       # SHARD_DOMAIN
     ‖ u64le(len(dtype)) ‖ dtype                           # ASCII name, e.g. b"bfloat16"
     ‖ u64le(ndim) ‖ u64le(shape[0]) ‖ … ‖ u64le(shape[ndim-1])
     ‖ elements in C (row-major) order, each little-endian )

where ``u64le`` is an unsigned 64-bit little-endian integer and ``dtype`` is
a key of `SHARD_DTYPES`. ``bool`` elements are one byte, 0 or 1; complex
elements are (real, imaginary); ``bfloat16`` and ``float8_*`` are their raw
bit patterns. ``H`` is SHA-256 (default) or BLAKE3.

Memory: a C-contiguous little-endian shard on the CPU is hashed **without a
copy**, through a memoryview fed to the hash in `CHUNK_BYTES` slices. Three
cases need copies, each bounded by ``chunk_bytes`` at a time (never a full
copy of the shard): non-contiguous views (e.g. a transpose; its logical
C-order content is hashed, so ``t`` and ``t.contiguous()`` agree),
big-endian numpy arrays (byte-swapped chunk by chunk: the copy is
unavoidable since the hash is over little-endian bytes) and tensors on an
accelerator (copied to host slab by slab). A complex tensor with a pending
conjugation (``t.conj()`` view) is resolved first, which copies it whole.

Example:
    >>> import numpy as np
    >>> from computewatch.crypto import shard_hash
    >>> a = np.arange(6, dtype=np.float32).reshape(2, 3)
    >>> shard_hash(a) == shard_hash(np.asfortranarray(a))
    True
    >>> shard_hash(a) == shard_hash(a.astype(">f4"))
    True
    >>> str(shard_hash(a, "blake3")).startswith("blake3:")
    True
"""

from __future__ import annotations

import math
import operator
import struct
import sys
from types import MappingProxyType
from typing import TYPE_CHECKING, SupportsIndex

import numpy as np

from computewatch.crypto._canonical import new_hasher
from computewatch.crypto._digest import Digest, HashAlgorithm
from computewatch.errors import FormatError, ParameterError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    import torch

__all__ = [
    "CHUNK_BYTES",
    "SHARD_DOMAIN",
    "SHARD_DTYPES",
    "ShardHasher",
    "concat_shard_hash",
    "shard_hash",
]

#: Domain tag of the shard hash, version 1 of the encoding.
SHARD_DOMAIN = b"computewatch/shard/v1\x00"

#: Size of each hash update, and bound on each temporary copy, in bytes.
CHUNK_BYTES = 64 * 1024 * 1024

#: Supported element types: canonical name (torch's and numpy's) to size in bytes.
SHARD_DTYPES: Mapping[str, int] = MappingProxyType(
    {
        "bool": 1,
        "int8": 1,
        "uint8": 1,
        "float8_e4m3fn": 1,
        "float8_e5m2": 1,
        "int16": 2,
        "uint16": 2,
        "float16": 2,
        "bfloat16": 2,
        "int32": 4,
        "uint32": 4,
        "float32": 4,
        "int64": 8,
        "uint64": 8,
        "float64": 8,
        "complex64": 8,
        "complex128": 16,
    }
)

#: Smallest ``chunk_bytes`` (larger than any element, so slabs always progress).
_MIN_CHUNK_BYTES = 64

#: Most dimensions a shard may have (numpy's and torch's limit).
MAX_NDIM = 64

_U64 = struct.Struct("<Q")
_LITTLE_HOST = sys.byteorder == "little"


def _dims(shape: Sequence[SupportsIndex]) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of ints, or raise FormatError if it is not a shape."""
    if len(shape) > MAX_NDIM:
        msg = f"shard shape: expected at most {MAX_NDIM} dimensions, got {len(shape)}"
        raise FormatError(msg)
    dims = []
    for i, d in enumerate(shape):
        try:
            dim = operator.index(d)
        except TypeError as e:
            msg = f"shard shape: expected an int at dimension {i}, got {type(d).__name__}"
            raise FormatError(msg) from e
        if not 0 <= dim < 2**63:
            msg = f"shard shape: expected 0 <= dimension < 2**63 at dimension {i}, got {dim}"
            raise FormatError(msg)
        dims.append(dim)
    return tuple(dims)


def _header(dtype: str, shape: Sequence[int]) -> bytes:
    """Return ``SHARD_DOMAIN ‖ dtype ‖ shape`` as specified in the module docs."""
    name = dtype.encode("ascii")
    parts = [SHARD_DOMAIN, _U64.pack(len(name)), name, _U64.pack(len(shape))]
    parts.extend(_U64.pack(d) for d in shape)
    return b"".join(parts)


class ShardHasher:
    """Incremental shard hash over data that arrives in pieces.

    Use it when the shard is not in memory as one tensor, e.g. when hashing
    a safetensors entry straight from the file: give the dtype and shape,
    then feed the little-endian C-order bytes in any number of pieces.
    `shard_hash` is this class fed from a tensor.

    Example:
        >>> import numpy as np
        >>> h = ShardHasher("float32", (2, 3))
        >>> data = np.arange(6, dtype="<f4").tobytes()
        >>> h.update(data[:10])
        >>> h.update(data[10:])
        >>> h.digest() == shard_hash(np.arange(6, dtype=np.float32).reshape(2, 3))
        True
    """

    def __init__(
        self,
        dtype: str,
        shape: Sequence[SupportsIndex],
        algorithm: HashAlgorithm | str = HashAlgorithm.SHA256,
        *,
        max_threads: int | None = None,
    ) -> None:
        """Start hashing a shard of the given dtype and shape.

        Args:
            dtype: A key of `SHARD_DTYPES`, e.g. ``"bfloat16"``.
            shape: Non-negative dimensions (``()`` for a scalar).
            algorithm: SHA-256 (default) or BLAKE3.
            max_threads: BLAKE3 only: 1, ``-1`` (all cores) or None (decide
                from the shard size).

        Raises:
            FormatError: Unsupported dtype, a bad shape or unknown algorithm.
        """
        if dtype not in SHARD_DTYPES:
            msg = f"shard dtype: expected one of {', '.join(SHARD_DTYPES)}, got {dtype!r}"
            raise FormatError(msg)
        dims = _dims(shape)
        self._dtype = dtype
        self._shape = dims
        self._algorithm = HashAlgorithm.coerce(algorithm)
        self._nbytes = SHARD_DTYPES[dtype] * math.prod(dims)
        self._seen = 0
        self._hasher = new_hasher(self._algorithm, size_hint=self._nbytes, max_threads=max_threads)
        self._hasher.update(_header(dtype, dims))

    @property
    def dtype(self) -> str:
        """The canonical dtype name."""
        return self._dtype

    @property
    def shape(self) -> tuple[int, ...]:
        """The shard's shape."""
        return self._shape

    @property
    def nbytes(self) -> int:
        """Number of data bytes the shard has: itemsize times element count."""
        return self._nbytes

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Absorb the next piece of the shard's little-endian C-order bytes.

        Args:
            data: Any C-contiguous buffer (no copy is made).

        Raises:
            FormatError: The buffer is not contiguous, would exceed the
                shard's `nbytes`, or (for ``bool``) holds a byte other than
                0 or 1.
        """
        view = memoryview(data)
        if not view.c_contiguous:
            msg = "shard data: expected a C-contiguous buffer, got a strided memoryview"
            raise FormatError(msg)
        n = view.nbytes
        if n == 0:
            return
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")  # a byte view of the same memory (BLAKE3 wants bytes)
        if self._seen + n > self._nbytes:
            msg = (
                f"shard data for {self._dtype}{list(self._shape)}: expected {self._nbytes} "
                f"bytes, got at least {self._seen + n}"
            )
            raise FormatError(msg)
        if self._dtype == "bool":
            top = int(np.frombuffer(view, dtype=np.uint8).max())
            if top > 1:
                msg = (
                    f"bool shard data: expected bytes 0 or 1, got {top} near byte {self._seen}; "
                    "convert with .astype(bool) / .bool() first"
                )
                raise FormatError(msg)
        self._hasher.update(view)
        self._seen += n

    def digest(self) -> Digest:
        """Return the shard hash once all `nbytes` bytes have been given.

        Returns:
            The typed digest.

        Raises:
            FormatError: Fewer bytes than the dtype and shape require.
        """
        if self._seen != self._nbytes:
            msg = (
                f"shard data for {self._dtype}{list(self._shape)}: expected {self._nbytes} "
                f"bytes, got {self._seen}"
            )
            raise FormatError(msg)
        return Digest(self._algorithm, self._hasher.digest())


def shard_hash(
    shard: torch.Tensor | np.ndarray | np.generic,
    algorithm: HashAlgorithm | str = HashAlgorithm.SHA256,
    *,
    max_threads: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Digest:
    """Return the shard hash of a torch tensor or numpy array.

    Args:
        shard: A dense tensor (any device, any strides, gradients ignored) or
            a numpy array (any strides or byte order) or scalar (a 0-d shard)
            of a `SHARD_DTYPES` type.
        algorithm: SHA-256 (default) or BLAKE3.
        max_threads: BLAKE3 only: 1, ``-1`` (all cores) or None (decide from
            the size).
        chunk_bytes: Bytes per hash update, and bound on temporary copies.

    Returns:
        The digest of the encoding in the module docs.

    Raises:
        FormatError: Unsupported dtype, layout or device, or not an array.
        ParameterError: ``chunk_bytes`` is below 64.
    """
    if operator.index(chunk_bytes) < _MIN_CHUNK_BYTES:
        msg = f"chunk_bytes: expected at least {_MIN_CHUNK_BYTES}, got {chunk_bytes}"
        raise ParameterError(msg)
    torch_mod = sys.modules.get("torch")
    if torch_mod is not None and isinstance(shard, torch_mod.Tensor):
        dtype, shape, chunks = _torch_chunks(shard, chunk_bytes)
    elif isinstance(shard, np.ndarray | np.generic):
        array = np.asarray(shard)  # a numpy scalar is a 0-d shard
        dtype, shape = _numpy_dtype(array.dtype), array.shape
        chunks = _array_chunks(array, chunk_bytes)
    else:
        msg = f"shard: expected a torch.Tensor or numpy.ndarray, got {type(shard).__name__}"
        raise FormatError(msg)
    hasher = ShardHasher(dtype, shape, algorithm, max_threads=max_threads)
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.digest()


def _numpy_dtype(dtype: np.dtype[np.generic]) -> str:
    """Return the canonical name of a numpy dtype, or raise FormatError."""
    name = dtype.name
    if dtype.fields is not None or SHARD_DTYPES.get(name) != dtype.itemsize:
        msg = f"shard dtype: expected one of {', '.join(SHARD_DTYPES)}, got numpy {dtype!s}"
        raise FormatError(msg)
    return name


def _is_little(dtype: np.dtype[np.generic]) -> bool:
    """Whether elements of ``dtype`` are stored little-endian (or are single bytes)."""
    order = dtype.byteorder
    return order in {"<", "|"} or (order == "=" and _LITTLE_HOST)


def _slab_indices(
    shape: tuple[int, ...], itemsize: int, limit: int
) -> Iterator[tuple[int | slice, ...]]:
    """Yield index tuples that cover ``shape`` in C order, each at most ``limit`` bytes.

    ``()`` means the whole array. Every other tuple ends with a slice, so
    indexing with it never yields a numpy scalar.
    """
    if not shape or itemsize * math.prod(shape) <= limit:
        yield ()
        return
    row = itemsize * math.prod(shape[1:])  # > 0: the whole array is larger than limit
    if row > limit:
        for i in range(shape[0]):
            for sub in _slab_indices(shape[1:], itemsize, limit):
                yield (i, *sub) if sub else (i, slice(None))
        return
    step = limit // row
    for start in range(0, shape[0], step):
        yield (slice(start, start + step),)


def _array_chunks(array: np.ndarray, limit: int) -> Iterator[memoryview]:
    """Yield the little-endian C-order bytes of ``array`` in pieces of <= ``limit`` bytes."""
    if array.flags.c_contiguous and _is_little(array.dtype):
        flat = array.reshape(-1).view(np.uint8).data  # a memoryview: no copy
        for start in range(0, flat.nbytes, limit):
            yield flat[start : start + limit]
        return
    little = array.dtype.newbyteorder("<")
    for index in _slab_indices(array.shape, array.dtype.itemsize, limit):
        piece = np.ascontiguousarray(array[index] if index else array, dtype=little)
        yield piece.reshape(-1).view(np.uint8).data


def concat_shard_hash(
    parts: Sequence[torch.Tensor],
    algorithm: HashAlgorithm | str = HashAlgorithm.SHA256,
    *,
    max_threads: int | None = None,
) -> Digest:
    """The shard hash of the 1-D concatenation of `parts`, without concatenating them.

    Equal to ``shard_hash(torch.cat([p.reshape(-1) for p in parts]))`` but
    streams each part's C-order bytes into one `ShardHasher`, so hashing a
    model's per-parameter optimizer state as one flat vector copies nothing.
    `max_threads` as in `shard_hash` (BLAKE3 only).

    Example:
        >>> import torch
        >>> a, b = torch.arange(6.0).reshape(2, 3), torch.ones(4)
        >>> concat_shard_hash([a, b]) == shard_hash(torch.cat([a.reshape(-1), b]))
        True

    Raises:
        FormatError: no parts, parts of different dtypes, or an unsupported one.
    """
    if not parts:
        msg = "concat_shard_hash: expected at least one tensor, got none"
        raise FormatError(msg)
    dtypes = {p.dtype for p in parts}
    if len(dtypes) != 1:
        msg = f"concat_shard_hash: expected one dtype, got {sorted(map(str, dtypes))}"
        raise FormatError(msg)
    dtype, _, _ = _torch_chunks(parts[0].reshape(-1)[:0], CHUNK_BYTES)
    hasher = ShardHasher(
        dtype, (sum(p.numel() for p in parts),), algorithm, max_threads=max_threads
    )
    for part in parts:
        for chunk in _torch_chunks(part.reshape(-1), CHUNK_BYTES)[2]:
            hasher.update(chunk)
    return hasher.digest()


def _torch_chunks(
    tensor: torch.Tensor, limit: int
) -> tuple[str, tuple[int, ...], Iterator[memoryview]]:
    """Return the canonical dtype, shape and byte pieces of a torch tensor."""
    import torch  # noqa: PLC0415 - already imported by the caller; keeps torch optional

    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in SHARD_DTYPES:
        msg = f"shard dtype: expected one of {', '.join(SHARD_DTYPES)}, got {tensor.dtype}"
        raise FormatError(msg)
    if tensor.layout != torch.strided:
        msg = f"shard: expected a dense tensor, got layout {tensor.layout}; call .to_dense() first"
        raise FormatError(msg)
    if tensor.device.type == "meta":
        msg = "shard: expected a tensor with data, got one on the 'meta' device"
        raise FormatError(msg)
    tensor = tensor.detach().resolve_conj().resolve_neg()
    shape = tuple(tensor.shape)
    if tensor.device.type == "cpu":
        return dtype, shape, _array_chunks(_torch_cpu_array(tensor), limit)
    return dtype, shape, _torch_slab_chunks(tensor, limit)


def _torch_slab_chunks(tensor: torch.Tensor, limit: int) -> Iterator[memoryview]:
    """Copy a tensor to the host slab by slab (each <= ``limit`` bytes) and yield the bytes."""
    for index in _slab_indices(tuple(tensor.shape), tensor.element_size(), limit):
        piece = (tensor[index] if index else tensor).contiguous().cpu()
        yield from _array_chunks(_torch_cpu_array(piece), limit)


def _torch_cpu_array(tensor: torch.Tensor) -> np.ndarray:
    """View a CPU tensor as a numpy array with the same bytes (no copy).

    numpy has no bfloat16 or float8, so those are viewed as same-width
    integers: only the bytes matter to the hash.
    """
    import torch  # noqa: PLC0415 - see _torch_chunks

    if tensor.dtype in {torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2}:
        same_width = {1: torch.uint8, 2: torch.int16}[tensor.element_size()]
        tensor = tensor.view(same_width)
    return tensor.numpy()
