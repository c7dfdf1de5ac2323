"""Conformance of the witness (tlog-witness add-checkpoint) and cosignatures (tlog-cosignature)."""

from __future__ import annotations

import base64
import hashlib
import struct
import threading
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PublicKey
from tests.crypto import c2sp_facts as spec

from computewatch.crypto import (
    BadConsistency,
    Checkpoint,
    CosignatureKind,
    Cosigner,
    CosignerKey,
    MerkleLog,
    NoteSignature,
    NoteSigner,
    SignedCheckpoint,
    SizeConflict,
    UnknownLog,
    Witness,
    WitnessBadRequest,
    WitnessForbidden,
    add_checkpoint_body,
    parse_add_checkpoint,
)
from computewatch.crypto._cosignature import ed25519_cosigned_message, mldsa_cosigned_message
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from pathlib import Path

ORIGIN = "log.test/registry"
NOW = 1_800_000_000


def _sofa() -> Checkpoint:
    return Checkpoint(spec.SOFA_ORIGIN, spec.SOFA_SIZE, base64.b64decode(spec.SOFA_ROOT_B64))


# --- cosignatures ------------------------------------------------------------------


def test_ed25519_message_is_the_specs_example() -> None:
    assert ed25519_cosigned_message(_sofa(), spec.SOFA_TIMESTAMP) == (
        spec.SOFA_COSIGNED_MESSAGE.encode()
    )


def test_spec_cosignature_line_carries_the_examples_timestamp() -> None:
    line = NoteSignature.from_line(spec.SOFA_COSIGNATURE_LINE, 1)
    assert len(line.signature) == 8 + spec.ED25519_SIGNATURE_BYTES
    assert int.from_bytes(line.signature[:8], "big") == spec.SOFA_TIMESTAMP


def test_ed25519_cosignature_bytes_match_an_independent_computation() -> None:
    witness = Cosigner.generate("witness.example.com/w1")
    cp = _sofa()
    line = witness.cosign(cp, timestamp=spec.SOFA_TIMESTAMP)
    raw = witness.key.public_key
    want_id = hashlib.sha256(b"witness.example.com/w1\n" + bytes([spec.ED25519_TYPE]) + raw)
    assert line.key_id == int.from_bytes(want_id.digest()[:4], "big")
    assert line.signature[:8] == struct.pack(">Q", spec.SOFA_TIMESTAMP)
    # Ed25519 is deterministic: verifying the raw signature over the hand-built message
    Ed25519PublicKey.from_public_bytes(raw).verify(
        line.signature[8:], spec.SOFA_COSIGNED_MESSAGE.encode()
    )
    assert witness.key.verify(cp, line) == spec.SOFA_TIMESTAMP


def test_mldsa_cosignature_bytes_match_an_independent_computation() -> None:
    witness = Cosigner.generate("witness.example/w2", CosignatureKind.MLDSA44)
    cp = _sofa()
    line = witness.cosign(cp, timestamp=spec.SOFA_TIMESTAMP)
    raw = witness.key.public_key
    assert len(raw) == spec.MLDSA44_PUBLIC_KEY_BYTES
    want_id = hashlib.sha256(b"witness.example/w2\n" + bytes([spec.MLDSA44_TYPE]) + raw)
    assert line.key_id == int.from_bytes(want_id.digest()[:4], "big")
    assert len(line.signature) == 8 + spec.MLDSA44_SIGNATURE_BYTES
    name, origin = b"witness.example/w2", spec.SOFA_ORIGIN.encode()
    message = (
        spec.SUBTREE_LABEL
        + bytes([len(name)])
        + name
        + spec.SOFA_TIMESTAMP.to_bytes(8, "big")
        + bytes([len(origin)])
        + origin
        + (0).to_bytes(8, "big")
        + spec.SOFA_SIZE.to_bytes(8, "big")
        + base64.b64decode(spec.SOFA_ROOT_B64)
    )
    assert message == mldsa_cosigned_message(
        "witness.example/w2", spec.SOFA_TIMESTAMP, spec.SOFA_ORIGIN, 0, spec.SOFA_SIZE, cp.root_hash
    )
    MLDSA44PublicKey.from_public_bytes(raw).verify(line.signature[8:], message)
    assert witness.key.verify(cp, line) == spec.SOFA_TIMESTAMP


@pytest.mark.parametrize("kind", list(CosignatureKind))
def test_cosignature_refused_when_anything_changes(kind: CosignatureKind) -> None:
    witness = Cosigner.generate("w.example", kind)
    cp = _sofa()
    line = witness.cosign(cp, timestamp=NOW)
    other = Checkpoint(cp.origin, cp.size + 1, cp.root_hash)
    assert witness.key.verify(other, line) is None
    for pos in (0, 7, 8, len(line.signature) - 1):  # timestamp and signature bytes
        bad = bytearray(line.signature)
        bad[pos] ^= 1
        assert witness.key.verify(cp, NoteSignature(line.name, line.key_id, bytes(bad))) is None
    zero = b"\0" * 8 + line.signature[8:]
    assert witness.key.verify(cp, NoteSignature(line.name, line.key_id, zero)) is None
    assert Cosigner.generate("w.example", kind).key.verify(cp, line) is None


@pytest.mark.parametrize("kind", list(CosignatureKind))
def test_keys_round_trip(kind: CosignatureKind) -> None:
    witness = Cosigner.generate("w.example/a", kind)
    again = Cosigner.from_skey(witness.skey)
    assert again.key == witness.key
    assert CosignerKey.from_vkey(witness.key.vkey) == witness.key
    assert "PRIVATE" not in repr(witness)
    name, key_id, _ = witness.key.vkey.split("+", 2)
    with pytest.raises(FormatError, match="key ID"):
        CosignerKey.from_vkey(witness.key.vkey.replace(key_id, f"{int(key_id, 16) ^ 1:08x}"))
    note_key = NoteSigner.generate(name).verifier.vkey
    with pytest.raises(FormatError, match="0x04"):
        CosignerKey.from_vkey(note_key)  # a log key (type 0x01) is not a cosigner key
    with pytest.raises(FormatError, match="timestamp"):
        witness.cosign(_sofa(), timestamp=0)


# --- the witness -------------------------------------------------------------------


class _Setup:
    def __init__(self, folder: Path) -> None:
        self.signer = NoteSigner.generate(ORIGIN)
        self.log = MerkleLog.in_memory()
        self.cosigner = Cosigner.generate("witness.test/w1")
        self.witness = Witness.open(
            folder / "w.db", [self.cosigner], {ORIGIN: [self.signer.verifier]}, clock=lambda: NOW
        )

    def grow(self, n: int) -> SignedCheckpoint:
        start = self.log.size
        self.log.append_many([f"e{i}".encode() for i in range(start, start + n)])
        return self.log.checkpoint(self.signer)

    def body(
        self, old: int, signed: SignedCheckpoint, proof: tuple[bytes, ...] | None = None
    ) -> bytes:
        if proof is None:
            size = signed.checkpoint.size
            proof = self.log.consistency_proof(old, size) if 0 < old < size else ()
        return add_checkpoint_body(old, proof, signed.to_bytes())


@pytest.fixture
def setup(tmp_path: Path) -> _Setup:
    return _Setup(tmp_path)


def test_spec_request_head_parses() -> None:
    signed = SignedCheckpoint.sign(_sofa(), [NoteSigner.generate(spec.SOFA_ORIGIN)])
    old, proof, parsed = parse_add_checkpoint(
        spec.WITNESS_REQUEST_HEAD.encode() + signed.to_bytes()
    )
    assert old == 20852014
    assert len(proof) == 4
    assert parsed.checkpoint == signed.checkpoint


def test_first_then_consistent_checkpoints_are_cosigned(setup: _Setup) -> None:
    first = setup.grow(3)
    lines = setup.witness.add_checkpoint(setup.body(0, first)).decode()
    assert lines.startswith(f"{spec.DASH} witness.test/w1 ")
    assert lines.endswith("\n")
    line = NoteSignature.from_line(lines.rstrip("\n"), 1)
    assert setup.cosigner.key.verify(first.checkpoint, line) == NOW
    second = setup.grow(5)
    assert setup.witness.add_checkpoint(setup.body(3, second))
    again = setup.witness.add_checkpoint(setup.body(8, second))  # same size, same root: 200
    assert again
    stored = SignedCheckpoint.parse(setup.witness.latest(ORIGIN) or b"")
    assert stored.checkpoint == second.checkpoint


def test_unknown_origin_is_404(setup: _Setup) -> None:
    other = NoteSigner.generate("other.test/log")
    signed = SignedCheckpoint.sign(Checkpoint("other.test/log", 0, setup.log.root()), [other])
    with pytest.raises(UnknownLog) as e:
        setup.witness.add_checkpoint(add_checkpoint_body(0, (), signed.to_bytes()))
    assert e.value.status == spec.STATUS_UNKNOWN_ORIGIN


def test_no_trusted_signature_is_403(setup: _Setup) -> None:
    stranger = NoteSigner.generate(ORIGIN)  # right name, another key
    signed = SignedCheckpoint.sign(Checkpoint(ORIGIN, 0, setup.log.root()), [stranger])
    with pytest.raises(WitnessForbidden) as e:
        setup.witness.add_checkpoint(add_checkpoint_body(0, (), signed.to_bytes()))
    assert e.value.status == spec.STATUS_BAD_SIGNATURE


def test_failing_trusted_signature_is_403(setup: _Setup) -> None:
    signed = setup.grow(2)
    sig = signed.note.signatures[0]
    forged = NoteSignature(sig.name, sig.key_id, bytes(64))
    bad = SignedCheckpoint(signed.checkpoint, type(signed.note)(signed.note.text, (forged,)))
    with pytest.raises(WitnessForbidden) as e:
        setup.witness.add_checkpoint(add_checkpoint_body(0, (), bad.to_bytes()))
    assert e.value.status == spec.STATUS_BAD_SIGNATURE


def test_old_size_larger_than_checkpoint_is_400(setup: _Setup) -> None:
    signed = setup.grow(2)
    with pytest.raises(WitnessBadRequest) as e:
        setup.witness.add_checkpoint(setup.body(3, signed, ()))
    assert e.value.status == spec.STATUS_OLD_LARGER


@pytest.mark.parametrize(
    "body",
    [b"", b"old 1\n", b"old 01\n\n", b"new 0\n\n", b"old 0\nnot base64!\n\n", b"old -1\n\n"],
)
def test_malformed_bodies_are_400(setup: _Setup, body: bytes) -> None:
    signed = setup.grow(1).to_bytes()
    with pytest.raises(WitnessBadRequest) as e:
        setup.witness.add_checkpoint(body + (signed if body.endswith(b"\n\n") else b""))
    assert e.value.status == 400


def test_too_many_proof_lines_is_400(setup: _Setup) -> None:
    signed = setup.grow(1)
    proof = tuple(bytes(32) for _ in range(spec.MAX_PROOF_LINES + 1))
    with pytest.raises(WitnessBadRequest, match="63"):
        setup.witness.add_checkpoint(setup.body(0, signed, proof))


def test_size_mismatch_is_409_with_the_latest_size(setup: _Setup) -> None:
    setup.witness.add_checkpoint(setup.body(0, setup.grow(4)))
    newer = setup.grow(2)
    for old in (0, 2, 5):
        with pytest.raises(SizeConflict) as e:
            setup.witness.add_checkpoint(setup.body(old, newer))
        assert e.value.status == spec.STATUS_SIZE_MISMATCH
        assert e.value.latest_size == 4
        assert e.value.body == b"4\n"


def test_size_zero_needs_the_empty_root_422(setup: _Setup) -> None:
    signed = SignedCheckpoint.sign(Checkpoint(ORIGIN, 0, bytes(32)), [setup.signer])
    with pytest.raises(BadConsistency) as e:
        setup.witness.add_checkpoint(add_checkpoint_body(0, (), signed.to_bytes()))
    assert e.value.status == spec.STATUS_BAD_PROOF


def test_proof_from_size_zero_is_422(setup: _Setup) -> None:
    with pytest.raises(BadConsistency):
        setup.witness.add_checkpoint(setup.body(0, setup.grow(3), (bytes(32),)))


def test_bad_consistency_proof_is_422_and_not_stored(setup: _Setup) -> None:
    setup.witness.add_checkpoint(setup.body(0, setup.grow(3)))
    newer = setup.grow(4)
    proof = list(setup.log.consistency_proof(3, 7))
    proof[0] = bytes(32)
    with pytest.raises(BadConsistency) as e:
        setup.witness.add_checkpoint(setup.body(3, newer, tuple(proof)))
    assert e.value.status == spec.STATUS_BAD_PROOF
    assert SignedCheckpoint.parse(setup.witness.latest(ORIGIN) or b"").checkpoint.size == 3


def test_same_size_other_root_is_422(setup: _Setup) -> None:
    signed = setup.grow(3)
    setup.witness.add_checkpoint(setup.body(0, signed))
    fork = SignedCheckpoint.sign(Checkpoint(ORIGIN, 3, bytes(32)), [setup.signer])
    with pytest.raises(BadConsistency):
        setup.witness.add_checkpoint(add_checkpoint_body(3, (), fork.to_bytes()))


def test_a_fork_is_never_cosigned(setup: _Setup) -> None:
    setup.witness.add_checkpoint(setup.body(0, setup.grow(5)))
    fork_log = MerkleLog.in_memory()
    fork_log.append_many([f"e{i}".encode() for i in range(4)] + [b"forged", b"x", b"y"])
    fork = fork_log.checkpoint(setup.signer)
    with pytest.raises(BadConsistency):
        setup.witness.add_checkpoint(
            add_checkpoint_body(5, fork_log.consistency_proof(5, 7), fork.to_bytes())
        )


def test_forged_lines_in_the_name_of_the_witness_are_not_echoed(setup: _Setup) -> None:
    signed = setup.grow(2)
    fake = NoteSignature(setup.cosigner.name, setup.cosigner.key.key_id, bytes(72))
    body = add_checkpoint_body(0, (), signed.with_signatures([fake]).to_bytes())
    lines = setup.witness.add_checkpoint(body).decode().splitlines()
    assert len(lines) == 1
    assert setup.cosigner.key.verify(signed.checkpoint, NoteSignature.from_line(lines[0], 1))


def test_racing_requests_never_roll_back(setup: _Setup) -> None:
    """Many threads push interleaved sizes; the stored size only grows and every 200 fits."""
    checkpoints = [setup.grow(3) for _ in range(12)]
    cosigned: list[int] = []
    lock = threading.Lock()

    def push(k: int) -> None:
        for signed in checkpoints[k::3]:
            old = 0
            for _ in range(20):
                try:
                    setup.witness.add_checkpoint(setup.body(old, signed))
                except SizeConflict as e:
                    old = e.latest_size
                    if old > signed.checkpoint.size:
                        break
                    continue
                with lock:
                    cosigned.append(signed.checkpoint.size)
                break

    threads = [threading.Thread(target=push, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = SignedCheckpoint.parse(setup.witness.latest(ORIGIN) or b"").checkpoint.size
    sizes = sorted(cosigned)
    assert final == max(sizes) == 36
    assert final >= max(cosigned)
