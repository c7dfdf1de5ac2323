"""Generate the golden vectors of computewatch's own crypto formats.

Writes, next to this file (or into the folder given as the first argument):

* ``shard_hash.json``: shard hashes (SHA-256 and BLAKE3) of fixed small
  shards in several dtypes and shapes. Each input is given as its canonical
  little-endian bytes in hex, so another implementation needs no numpy.
* ``dsse_envelope.json``: a DSSE envelope over a canonical-JSON payload,
  signed by two Ed25519 keys derived from hard-coded 32-byte seeds (Ed25519
  signing is deterministic, so the envelope is reproducible byte for byte).

Everything here is fixed; ``tests/crypto/test_*_vectors.py`` regenerate the
files into a temporary folder and diff them against the committed ones, so
any change to these formats shows up as a failing test.

Usage::

    python tests/vectors/generate_crypto.py [OUT_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from computewatch.crypto import (
    SHARD_DOMAIN,
    ShardHasher,
    SigningKey,
    canonical_json,
    sign_envelope,
)
from computewatch.crypto.hazmat import pae

HERE = Path(__file__).resolve().parent

#: Seeds of the two test signing keys (never use these for anything real).
SEED_A = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf")
SEED_B = bytes.fromhex("c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf")

PAYLOAD_TYPE = "application/vnd.computewatch.test+json"


def _bfloat16_bytes(values: list[float]) -> bytes:
    """Little-endian bfloat16 bytes of ``values`` (each exactly representable)."""
    as_f32 = np.asarray(values, dtype="<f4").view("<u4")
    if np.any(as_f32 & 0xFFFF):
        msg = "bfloat16 vector values must be exactly representable"
        raise ValueError(msg)
    return (as_f32 >> 16).astype("<u2").tobytes()


def _shard_inputs() -> list[tuple[str, str, list[int], bytes, str]]:
    """Return (name, dtype, shape, little-endian data, description) of each vector."""
    return [
        (
            "float32-2x3",
            "float32",
            [2, 3],
            np.arange(6, dtype="<f4").tobytes(),
            "float32 [[0, 1, 2], [3, 4, 5]]",
        ),
        (
            "float16-4",
            "float16",
            [4],
            np.array([-1.5, 0.0, 0.25, 65504.0], dtype="<f2").tobytes(),
            "float16 [-1.5, 0, 0.25, 65504]",
        ),
        (
            "bfloat16-2x2",
            "bfloat16",
            [2, 2],
            _bfloat16_bytes([1.0, -2.0, 0.5, 3.0]),
            "bfloat16 [[1, -2], [0.5, 3]]",
        ),
        (
            "int8-8",
            "int8",
            [8],
            np.arange(-4, 4, dtype="i1").tobytes(),
            "int8 [-4, -3, ..., 3]",
        ),
        (
            "bool-3x1",
            "bool",
            [3, 1],
            np.array([[True], [False], [True]]).tobytes(),
            "bool [[true], [false], [true]]",
        ),
        (
            "float64-scalar",
            "float64",
            [],
            np.array(np.pi, dtype="<f8").tobytes(),
            "float64 0-d tensor holding pi",
        ),
        ("float32-empty-0x3", "float32", [0, 3], b"", "float32 with shape [0, 3], no elements"),
        (
            "int64-2x1x2",
            "int64",
            [2, 1, 2],
            np.array([0, -1, 2**62, -(2**63)], dtype="<i8").tobytes(),
            "int64 [[[0, -1]], [[2**62, -2**63]]]",
        ),
        (
            "complex64-2",
            "complex64",
            [2],
            np.array([1 + 2j, -0.5j], dtype="<c8").tobytes(),
            "complex64 [1+2j, -0.5j]",
        ),
    ]


def shard_vectors() -> dict[str, Any]:
    """Return the ``shard_hash.json`` document."""
    vectors = []
    for name, dtype, shape, data, description in _shard_inputs():
        digests = {}
        for algorithm in ("sha256", "blake3"):
            hasher = ShardHasher(dtype, shape, algorithm)
            hasher.update(data)
            digests[algorithm] = str(hasher.digest())
        vectors.append(
            {
                "name": name,
                "description": description,
                "dtype": dtype,
                "shape": shape,
                "data_hex": data.hex(),
                **digests,
            }
        )
    return {
        "format": "computewatch shard hash v1 (see computewatch/crypto/_shard.py)",
        "domain_hex": SHARD_DOMAIN.hex(),
        "vectors": vectors,
    }


def dsse_vectors() -> dict[str, Any]:
    """Return the ``dsse_envelope.json`` document."""
    keys = [SigningKey.from_seed(SEED_A), SigningKey.from_seed(SEED_B)]
    first = _shard_inputs()[0]
    hasher = ShardHasher(first[1], first[2])
    hasher.update(first[3])
    payload = canonical_json(
        {
            "kind": "snapshot",
            "serial": "0042",
            "seq": 17,
            "body": {"h": str(hasher.digest()), "region": "layer.3.attn.w"},
        }
    )
    envelope = sign_envelope(PAYLOAD_TYPE, payload, keys)
    return {
        "format": "DSSE v1.0.2 JSON envelope, Ed25519, computewatch key ids",
        "keys": [
            {
                "seed_hex": seed.hex(),
                "public_key_hex": key.verifying_key.raw.hex(),
                "key_id": key.key_id,
            }
            for seed, key in zip((SEED_A, SEED_B), keys, strict=True)
        ],
        "payload_type": PAYLOAD_TYPE,
        "payload_utf8": payload.decode("utf-8"),
        "pae_hex": pae(PAYLOAD_TYPE, payload).hex(),
        "signatures_hex": [s.sig.hex() for s in envelope.signatures],
        "envelope_json": envelope.to_json().decode("ascii"),
    }


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def write(out_dir: Path) -> list[Path]:
    """Write both vector files into ``out_dir``; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, doc in (("shard_hash.json", shard_vectors()), ("dsse_envelope.json", dsse_vectors())):
        path = out_dir / name
        path.write_text(_dump(doc), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    """Write the vectors to ``argv[0]`` (default: this folder)."""
    out_dir = Path(argv[0]) if argv else HERE
    for path in write(out_dir):
        print(f"wrote {path}")  # noqa: T201 - a script's report
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
