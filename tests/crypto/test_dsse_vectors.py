"""DSSE spec vectors (protocol.md v1.0.2) and our golden envelope."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from computewatch.crypto import (
    Envelope,
    SigningKey,
    VerifyingKey,
    canonical_json,
    sign_envelope,
    verify_envelope,
)
from computewatch.crypto.hazmat import pae

VECTORS = Path(__file__).resolve().parents[1] / "vectors"
GOLDEN: dict[str, Any] = json.loads((VECTORS / "dsse_envelope.json").read_text(encoding="utf-8"))

# The example of DSSE protocol.md, "Test Vectors" (restated by scripts/restate_vectors.py).
SPEC: dict[str, Any] = json.loads((VECTORS / "dsse_example.json").read_text(encoding="utf-8"))
SPEC_TYPE: str = SPEC["payload_type"]
SPEC_BODY: bytes = SPEC["serialized_body"].encode()
SPEC_PAE: bytes = SPEC["pae"].encode()
SPEC_ENVELOPE: str = SPEC["envelope_json"]
# ECDSA P-256 / SHA-256, deterministic (RFC 6979); signature is raw r || s.
SPEC_X: int = SPEC["x"]
SPEC_Y: int = SPEC["y"]
SPEC_D: int = SPEC["d"]


def test_pae_of_the_spec_example() -> None:
    assert pae(SPEC_TYPE, SPEC_BODY) == SPEC_PAE
    assert pae(SPEC_TYPE.encode(), SPEC_BODY) == SPEC_PAE


def test_pae_edge_cases() -> None:
    assert pae("", b"") == b"DSSEv1 0  0 "
    assert pae("é", b"\x00") == b"DSSEv1 2 \xc3\xa9 1 \x00"
    assert pae("t", b"x" * 1000) == b"DSSEv1 1 t 1000 " + b"x" * 1000
    # Length prefixes make the encoding injective where plain concatenation is not.
    assert pae("a b", b"c") != pae("a", b"b c")


def test_spec_envelope_parses_and_its_signature_verifies_over_our_pae() -> None:
    envelope = Envelope.from_json(SPEC_ENVELOPE)
    assert envelope.payload_type == SPEC_TYPE
    assert envelope.payload == SPEC_BODY
    (signature,) = envelope.signatures
    assert signature.keyid == ""
    public = ec.EllipticCurvePublicNumbers(SPEC_X, SPEC_Y, ec.SECP256R1()).public_key()
    r = int.from_bytes(signature.sig[:32], "big")
    s = int.from_bytes(signature.sig[32:], "big")
    message = pae(envelope.payload_type, envelope.payload)
    public.verify(utils.encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    # Deterministic ECDSA reproduces the spec's signature exactly.
    private = ec.derive_private_key(SPEC_D, ec.SECP256R1())
    ours = private.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    assert utils.decode_dss_signature(ours) == (r, s)


def test_golden_envelope_committed_values() -> None:
    keys = [SigningKey.from_seed(bytes.fromhex(k["seed_hex"])) for k in GOLDEN["keys"]]
    for key, recorded in zip(keys, GOLDEN["keys"], strict=True):
        assert key.verifying_key.raw.hex() == recorded["public_key_hex"]
        assert key.key_id == recorded["key_id"]
    payload = GOLDEN["payload_utf8"].encode("utf-8")
    assert canonical_json(json.loads(payload)) == payload
    assert pae(GOLDEN["payload_type"], payload).hex() == GOLDEN["pae_hex"]
    trusted = {
        k["key_id"]: VerifyingKey.from_raw(bytes.fromhex(k["public_key_hex"]))
        for k in GOLDEN["keys"]
    }
    wire = GOLDEN["envelope_json"]
    verified = verify_envelope(wire, trusted, threshold=2, payload_type=GOLDEN["payload_type"])
    assert verified.payload == payload
    envelope = Envelope.from_json(wire)
    assert [s.sig.hex() for s in envelope.signatures] == GOLDEN["signatures_hex"]
    again = sign_envelope(GOLDEN["payload_type"], payload, keys)
    assert again.to_json().decode("ascii") == wire


def test_regenerated_files_match(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("generate_crypto", VECTORS / "generate_crypto.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write(tmp_path)
    assert (tmp_path / "dsse_envelope.json").read_bytes() == (
        VECTORS / "dsse_envelope.json"
    ).read_bytes(), "DSSE vectors drifted; rerun tests/vectors/generate_crypto.py and review"
