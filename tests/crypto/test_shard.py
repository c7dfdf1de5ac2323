"""Behaviour of `shard_hash` and `ShardHasher`."""

from __future__ import annotations

import hashlib
import struct
import tracemalloc
from typing import Any

import blake3
import numpy as np
import numpy.typing as npt
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from computewatch.crypto import (
    SHARD_DOMAIN,
    SHARD_DTYPES,
    HashAlgorithm,
    ShardHasher,
    concat_shard_hash,
    shard_hash,
)
from computewatch.crypto._shard import _slab_indices, _torch_slab_chunks
from computewatch.errors import FormatError, ParameterError


def reference(dtype: str, shape: tuple[int, ...], data: bytes, algorithm: str = "sha256") -> str:
    """The v1 encoding written out independently of the implementation."""
    encoded = b"computewatch/shard/v1\x00"
    encoded += struct.pack("<Q", len(dtype)) + dtype.encode()
    encoded += struct.pack("<Q", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
    encoded += data
    hasher = hashlib.sha256() if algorithm == "sha256" else blake3.blake3()
    hasher.update(encoded)
    return f"{algorithm}:{hasher.hexdigest()}"


def test_domain_tag() -> None:
    assert SHARD_DOMAIN == b"computewatch/shard/v1\x00"


TORCH_CASES = [
    (torch.float32, (2, 3)),
    (torch.float16, (5,)),
    (torch.bfloat16, (3, 2)),
    (torch.int8, (4, 1, 2)),
    (torch.bool, (7,)),
    (torch.float64, ()),
    (torch.float32, (0, 3)),
    (torch.uint8, (3,)),
    (torch.int16, (2, 2)),
    (torch.uint16, (2,)),
    (torch.int32, (3,)),
    (torch.uint32, (3,)),
    (torch.int64, (2,)),
    (torch.uint64, (2,)),
    (torch.complex64, (2,)),
    (torch.complex128, (1, 1)),
    (torch.float8_e4m3fn, (4,)),
    (torch.float8_e5m2, (4,)),
]


def _sample(dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    values = torch.arange(-3, -3 + max(1, int(np.prod(shape))), dtype=torch.float64)
    values = values[: int(np.prod(shape))].reshape(shape)
    if dtype == torch.bool:
        return values.remainder(2) == 0
    if dtype in {torch.uint8, torch.uint16, torch.uint32, torch.uint64}:
        values = values.abs()
    return values.to(dtype)


@pytest.mark.parametrize(("dtype", "shape"), TORCH_CASES, ids=str)
@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
def test_torch_dtypes_match_reference(
    dtype: torch.dtype, shape: tuple[int, ...], algorithm: str
) -> None:
    tensor = _sample(dtype, shape)
    name = str(dtype).removeprefix("torch.")
    assert name in SHARD_DTYPES
    raw = tensor.contiguous().view(torch.uint8).numpy().tobytes() if tensor.ndim else b""
    if not tensor.ndim:
        raw = tensor.reshape(1).view(torch.uint8).numpy().tobytes()
    assert len(raw) == SHARD_DTYPES[name] * tensor.numel()
    assert str(shard_hash(tensor, algorithm)) == reference(name, shape, raw, algorithm)


@pytest.mark.parametrize(
    "dtype",
    ["float32", "float16", "int8", "bool", "float64", "uint8", "int64", "complex64", "complex128"],
)
def test_numpy_and_torch_agree(dtype: str) -> None:
    array = np.arange(12).reshape(3, 4).astype(dtype)
    assert shard_hash(array) == shard_hash(torch.from_numpy(array))
    assert shard_hash(array[1]) == shard_hash(torch.from_numpy(array)[1])


def test_bfloat16_hashes_its_bits() -> None:
    tensor = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.bfloat16)
    bits = tensor.view(torch.int16).numpy().astype("<i2").tobytes()
    assert str(shard_hash(tensor)) == reference("bfloat16", (2, 2), bits)
    # Same bits as float16 or int16 still give different hashes: the dtype is hashed.
    assert shard_hash(tensor) != shard_hash(tensor.view(torch.int16))
    assert shard_hash(tensor) != shard_hash(tensor.view(torch.float16))
    assert shard_hash(tensor.t()) == shard_hash(tensor.t().contiguous())


def test_zero_d_and_empty() -> None:
    assert str(shard_hash(np.float64(2.0).reshape(()))) == reference(
        "float64", (), struct.pack("<d", 2.0)
    )
    assert shard_hash(torch.tensor(2.0, dtype=torch.float64)) == shard_hash(np.array(2.0))
    assert str(shard_hash(np.zeros((0, 3), np.float32))) == reference("float32", (0, 3), b"")
    assert shard_hash(np.zeros((0, 3), np.float32)) != shard_hash(np.zeros((3, 0), np.float32))
    assert shard_hash(np.zeros((0,), np.float32)) != shard_hash(np.zeros((0,), np.int32))


def test_shape_and_dtype_are_bound() -> None:
    data = np.arange(6, dtype=np.int32)
    hashes = {
        shard_hash(data),
        shard_hash(data.reshape(2, 3)),
        shard_hash(data.reshape(3, 2)),
        shard_hash(data.reshape(1, 6)),
        shard_hash(data.view(np.float32)),
        shard_hash(data.view(np.uint32)),
    }
    assert len(hashes) == 6


strided_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float16, np.int8, np.bool_, np.float64, np.int64]),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
)


@settings(max_examples=60, deadline=None)
@given(strided_arrays, st.data())
def test_hash_ignores_memory_layout(array: npt.NDArray[Any], data: st.DataObject) -> None:
    """Permuted, sliced and Fortran-ordered views hash like their contiguous copies."""
    if array.ndim:
        perm = data.draw(st.permutations(range(array.ndim)))
        view = np.transpose(array, perm)
        steps = tuple(data.draw(st.integers(1, 3)) for _ in range(view.ndim))
        view = view[tuple(slice(None, None, s) for s in steps)]
    else:
        view = array
    contiguous = view.copy(order="C")
    expected = shard_hash(contiguous)
    assert shard_hash(view) == expected
    fortran = np.asfortranarray(view) if view.ndim else view  # asfortranarray makes 0-d 1-d
    assert shard_hash(fortran) == expected
    assert shard_hash(view, chunk_bytes=64) == expected
    assert shard_hash(torch.from_numpy(contiguous)) == expected


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        dtype=st.sampled_from(["<i2", "<u4", "<f4", "<f8", "<c8", "<u8", "<f2"]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=6),
    )
)
def test_big_endian_equals_little_endian(array: npt.NDArray[Any]) -> None:
    big = array.astype(array.dtype.newbyteorder(">"))
    assert big.dtype.byteorder == ">"
    assert np.array_equal(big, array, equal_nan=array.dtype.kind in "fc")
    assert shard_hash(big) == shard_hash(array)
    assert shard_hash(big, "blake3", chunk_bytes=64) == shard_hash(array, "blake3")


def test_torch_views_and_flags() -> None:
    base = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    expected = shard_hash(base.permute(2, 0, 1).contiguous())
    assert shard_hash(base.permute(2, 0, 1)) == expected
    assert shard_hash(base.permute(2, 0, 1), chunk_bytes=64) == expected
    grad = base.clone().requires_grad_()
    assert shard_hash(grad) == shard_hash(base)
    expanded = torch.ones(3, 1).expand(3, 5)
    assert shard_hash(expanded) == shard_hash(torch.ones(3, 5))
    offset = base.reshape(-1)[5:17]
    assert shard_hash(offset) == shard_hash(torch.arange(5, 17, dtype=torch.float32))
    z = torch.tensor([1 + 2j, 3 - 1j], dtype=torch.complex64)
    assert z.conj().is_conj()
    assert shard_hash(z.conj()) == shard_hash(np.array([1 - 2j, 3 + 1j], dtype=np.complex64))


def test_chunking_matches_single_update() -> None:
    array = np.arange(3 * 5 * 7, dtype=np.float64).reshape(3, 5, 7)
    expected = shard_hash(array)
    for chunk in (64, 100, 280, 1000, 10**6):
        assert shard_hash(array, chunk_bytes=chunk) == expected
        assert shard_hash(
            array.transpose(2, 0, 1).copy().transpose(1, 2, 0), chunk_bytes=chunk
        ) == (expected)
        assert shard_hash(array.astype(">f8"), chunk_bytes=chunk) == expected


def test_slab_indices_cover_in_c_order() -> None:
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    for limit in (64, 100, 500, 2000):
        pieces = [array[i] if i else array for i in _slab_indices(array.shape, 2, limit)]
        assert all(p.nbytes <= limit for p in pieces)
        assert np.array_equal(np.concatenate([p.reshape(-1) for p in pieces]), array.reshape(-1))
    assert list(_slab_indices((0, 100), 8, 64)) == [()]  # the whole (empty) array
    assert list(_slab_indices((100, 0), 8, 64)) == [()]
    assert list(_slab_indices((), 8, 64)) == [()]


def test_contiguous_shard_is_not_copied() -> None:
    array = np.ones(8 * 1024 * 1024, dtype=np.float32)  # 32 MiB
    tracemalloc.start()
    try:
        shard_hash(array, "blake3")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


def test_strided_shard_copies_are_bounded() -> None:
    array = np.ones((2048, 2048), dtype=np.float32).T  # 16 MiB, not C-contiguous
    tracemalloc.start()
    try:
        got = shard_hash(array, chunk_bytes=1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * 1024 * 1024
    assert got == shard_hash(np.ones((2048, 2048), dtype=np.float32))


@pytest.mark.parametrize("threads", [None, 1, -1])
def test_blake3_thread_counts_agree(threads: int | None) -> None:
    array = np.arange(300_000, dtype=np.float32)  # above the multithreading threshold
    assert shard_hash(array, HashAlgorithm.BLAKE3, max_threads=threads) == shard_hash(
        array, "blake3", max_threads=1
    )


@pytest.mark.parametrize(
    "array",
    [
        np.array(["a", "b"]),
        np.array([object()]),
        np.zeros(2, dtype="datetime64[s]"),
        np.zeros(2, dtype=[("x", "<f4")]),
        np.zeros(2, dtype=np.longdouble),
    ],
    ids=["str", "object", "datetime", "structured", "longdouble"],
)
def test_unsupported_numpy_dtypes(array: npt.NDArray[Any]) -> None:
    with pytest.raises(FormatError, match="shard dtype: expected one of"):
        shard_hash(array)


def test_unsupported_inputs() -> None:
    with pytest.raises(FormatError, match=r"expected a torch\.Tensor or numpy\.ndarray, got list"):
        shard_hash([1.0, 2.0])  # type: ignore[arg-type]
    sparse = torch.eye(3).to_sparse()
    with pytest.raises(FormatError, match=r"dense tensor.*to_dense"):
        shard_hash(sparse)
    with pytest.raises(FormatError, match="'meta' device"):
        shard_hash(torch.empty(3, device="meta"))
    with pytest.raises(ParameterError, match="chunk_bytes: expected at least 64, got 63"):
        shard_hash(np.zeros(3), chunk_bytes=63)


@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental")
def test_unsupported_torch_dtype() -> None:
    with pytest.raises(FormatError, match=r"got torch\.complex32"):
        shard_hash(torch.zeros(2, dtype=torch.complex64).to(torch.complex32))


def test_numpy_scalars_are_zero_d_shards() -> None:
    assert shard_hash(np.float32(1.5)) == shard_hash(np.array(1.5, dtype=np.float32))
    assert shard_hash(np.True_) == shard_hash(torch.ones((), dtype=torch.bool))


def test_bool_bytes_must_be_zero_or_one() -> None:
    bad = np.frombuffer(b"\x00\x01\x02", dtype=np.bool_)
    with pytest.raises(FormatError, match="expected bytes 0 or 1, got 2"):
        shard_hash(bad)
    good = bad.astype(np.uint8).astype(bool)
    assert shard_hash(good) == shard_hash(np.array([False, True, True]))


def test_shard_hasher_pieces() -> None:
    array = np.arange(10, dtype="<i4").reshape(2, 5)
    data = array.tobytes()
    hasher = ShardHasher("int32", np.int64(2) * np.array([1, 1]) + np.array([0, 3]))
    assert hasher.dtype == "int32"
    assert hasher.shape == (2, 5)
    assert hasher.nbytes == 40
    for start in range(0, 40, 7):
        hasher.update(data[start : start + 7])
    hasher.update(b"")
    assert hasher.digest() == shard_hash(array)
    assert hasher.digest() == shard_hash(array)  # digest() does not consume the state
    whole = ShardHasher("int32", (2, 5), "blake3")
    whole.update(array.data)  # a non-byte memoryview is fine
    assert whole.digest() == shard_hash(array, "blake3")


def test_shard_hasher_length_checks() -> None:
    hasher = ShardHasher("float32", (2,))
    hasher.update(b"\x00" * 4)
    with pytest.raises(FormatError, match=r"expected 8 bytes, got 4"):
        hasher.digest()
    with pytest.raises(FormatError, match=r"expected 8 bytes, got at least 12"):
        hasher.update(b"\x00" * 8)
    hasher.update(b"\x00" * 4)
    assert hasher.digest() == shard_hash(np.zeros(2, np.float32))
    strided = np.zeros(8, np.uint8).data[::2]
    with pytest.raises(FormatError, match="C-contiguous"):
        ShardHasher("uint8", (4,)).update(strided)


@pytest.mark.parametrize(
    ("dtype", "shape", "fragment"),
    [
        ("float128", (1,), "shard dtype: expected one of"),
        ("Float32", (1,), "shard dtype"),
        ("float32", (-1,), "expected 0 <= dimension < 2\\*\\*63 at dimension 0, got -1"),
        ("float32", (2, 2**63), "at dimension 1"),
        ("float32", (1.5,), "expected an int at dimension 0, got float"),
        ("float32", (1,) * 65, "at most 64 dimensions, got 65"),
    ],
)
def test_shard_hasher_rejects(dtype: str, shape: tuple[Any, ...], fragment: str) -> None:
    with pytest.raises(FormatError, match=fragment):
        ShardHasher(dtype, shape)


def test_shard_hasher_unknown_algorithm() -> None:
    with pytest.raises(FormatError, match="hash algorithm"):
        ShardHasher("float32", (1,), "md5")


@pytest.mark.parametrize("limit", [64, 200, 10**6])
def test_device_slab_path_on_host_tensors(limit: int) -> None:
    """The path used for accelerator tensors, exercised on CPU tensors."""
    base = torch.arange(6 * 7 * 5, dtype=torch.float32).reshape(6, 7, 5).to(torch.bfloat16)
    for tensor in (
        base,
        base.permute(2, 0, 1),
        base[:, 3],
        torch.tensor(1.5, dtype=torch.bfloat16),
    ):
        hasher = ShardHasher("bfloat16", tuple(tensor.shape))
        for piece in _torch_slab_chunks(tensor, limit):
            assert piece.nbytes <= limit
            hasher.update(piece)
        assert hasher.digest() == shard_hash(tensor.contiguous())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensor_hashes_like_its_host_copy() -> None:
    host = torch.randn(64, 33, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    device = host.cuda()
    assert shard_hash(device) == shard_hash(host)
    assert shard_hash(device.t(), chunk_bytes=256) == shard_hash(host.t().contiguous())


@settings(max_examples=50)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(1, 4), st.booleans()), min_size=1, max_size=5
    ),
    st.sampled_from(["sha256", "blake3"]),
)
def test_concat_shard_hash_is_the_hash_of_the_concatenation(
    shapes: list[tuple[int, int, bool]], algorithm: str
) -> None:
    """Streaming the parts equals hashing torch.cat of them, whatever their strides."""
    gen = torch.Generator().manual_seed(len(shapes))
    parts = []
    for rows, cols, transpose in shapes:
        t = torch.randn(rows, cols, generator=gen)
        parts.append(t.t() if transpose else t)  # a transpose is non-contiguous
    flat = torch.cat([p.reshape(-1) for p in parts])
    assert concat_shard_hash(parts, algorithm) == shard_hash(flat, algorithm)


def test_concat_shard_hash_tells_order_and_refuses_mixed_input() -> None:
    a, b = torch.zeros(3), torch.ones(3)
    assert concat_shard_hash([a, b]) != concat_shard_hash([b, a])
    with pytest.raises(FormatError, match="at least one tensor"):
        concat_shard_hash([])
    with pytest.raises(FormatError, match="one dtype"):
        concat_shard_hash([a, b.double()])
