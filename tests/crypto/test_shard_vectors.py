"""Golden vectors of the shard hash (``tests/vectors/shard_hash.json``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import torch

from computewatch.crypto import SHARD_DOMAIN, Digest, ShardHasher, shard_hash

if TYPE_CHECKING:
    from types import ModuleType

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
DOC: dict[str, Any] = json.loads((VECTORS / "shard_hash.json").read_text(encoding="utf-8"))

NUMPY_DTYPES = {
    "float32": "<f4",
    "float16": "<f2",
    "int8": "i1",
    "bool": "?",
    "float64": "<f8",
    "int64": "<i8",
    "complex64": "<c8",
}


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_crypto", VECTORS / "generate_crypto.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_domain_recorded() -> None:
    assert bytes.fromhex(DOC["domain_hex"]) == SHARD_DOMAIN


def test_vector_coverage() -> None:
    dtypes = {v["dtype"] for v in DOC["vectors"]}
    assert {"float32", "float16", "bfloat16", "int8", "bool", "float64"} <= dtypes
    shapes = [tuple(v["shape"]) for v in DOC["vectors"]]
    assert () in shapes
    assert any(0 in s for s in shapes)


@pytest.mark.parametrize("vector", DOC["vectors"], ids=lambda v: v["name"])
def test_committed_values(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["data_hex"])
    shape = tuple(vector["shape"])
    for algorithm in ("sha256", "blake3"):
        expected = Digest.parse(vector[algorithm])
        hasher = ShardHasher(vector["dtype"], shape, algorithm)
        hasher.update(data)
        assert hasher.digest() == expected
        if vector["dtype"] == "bfloat16":
            tensor = torch.frombuffer(bytearray(data), dtype=torch.bfloat16).reshape(shape)
            assert shard_hash(tensor, algorithm) == expected
        else:
            array = np.frombuffer(data, dtype=NUMPY_DTYPES[vector["dtype"]]).reshape(shape)
            assert shard_hash(array, algorithm) == expected
            assert shard_hash(torch.from_numpy(array.copy()), algorithm) == expected


def test_bfloat16_vector_values() -> None:
    vector = next(v for v in DOC["vectors"] if v["dtype"] == "bfloat16")
    tensor = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.bfloat16)
    assert str(shard_hash(tensor)) == vector["sha256"]


def test_regenerated_files_match(tmp_path: Path) -> None:
    load_generator().write(tmp_path)
    committed = (VECTORS / "shard_hash.json").read_bytes()
    assert (tmp_path / "shard_hash.json").read_bytes() == committed, (
        "shard hash vectors drifted; if the change is intended, run "
        "python tests/vectors/generate_crypto.py and review the diff"
    )
