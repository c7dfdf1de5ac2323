"""Behaviour of `SigningKey` and `VerifyingKey`, including their files."""

from __future__ import annotations

import hashlib
import os
import stat
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from computewatch.crypto import Digest, KeyID, Signer, SigningKey, VerifyingKey
from computewatch.crypto._keys import MAX_KEY_FILE_BYTES
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from pathlib import Path

SEED = bytes(range(32))


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.from_seed(SEED)


def test_sign_and_verify(key: SigningKey) -> None:
    signature = key.sign(b"message")
    assert len(signature) == 64
    assert key.sign(b"message") == signature  # Ed25519 is deterministic
    key.verifying_key.verify(signature, b"message")
    key.verifying_key.verify(bytearray(signature), memoryview(b"message"))  # type: ignore[arg-type]


def test_failed_verification_names_the_key(key: SigningKey) -> None:
    signature = key.sign(b"message")
    with pytest.raises(IntegrityError, match=f"key {key.key_id}: does not verify"):
        key.verifying_key.verify(signature, b"messagf")
    other = SigningKey.generate()
    with pytest.raises(IntegrityError, match=other.key_id):
        other.verifying_key.verify(signature, b"message")
    with pytest.raises(IntegrityError):
        key.verifying_key.verify(signature[:63], b"message")
    with pytest.raises(IntegrityError):
        key.verifying_key.verify(b"", b"message")


def test_key_id_rule(key: SigningKey) -> None:
    raw = key.verifying_key.raw
    assert key.key_id == KeyID("sha256:" + hashlib.sha256(raw).hexdigest())
    assert key.key_id == key.verifying_key.key_id
    assert str(Digest.parse(key.key_id)) == key.key_id


def test_generate_gives_distinct_keys() -> None:
    assert SigningKey.generate().key_id != SigningKey.generate().key_id


def test_signing_key_is_a_signer(key: SigningKey) -> None:
    signer: Signer = key
    assert signer.key_id == key.key_id


def test_repr_never_shows_the_secret(key: SigningKey) -> None:
    text = repr(key)
    assert text == f"SigningKey(key_id={key.key_id!r})"
    assert SEED.hex() not in text
    assert "PRIVATE" not in text


def test_verifying_key_dunders(key: SigningKey) -> None:
    same = VerifyingKey.from_raw(bytearray(key.verifying_key.raw))  # type: ignore[arg-type]
    other = SigningKey.generate().verifying_key
    assert same == key.verifying_key
    assert hash(same) == hash(key.verifying_key)
    assert same != other
    assert len({same, key.verifying_key, other}) == 2
    assert repr(same) == f"VerifyingKey(raw={key.verifying_key.raw!r})"


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_raw_lengths(length: int) -> None:
    with pytest.raises(FormatError, match=f"expected 32 bytes .*, got {length} bytes"):
        VerifyingKey.from_raw(bytes(length))
    with pytest.raises(FormatError, match=f"Ed25519 seed: expected 32 bytes, got {length}"):
        SigningKey.from_seed(bytes(length))


def test_pem_round_trips(key: SigningKey) -> None:
    public = VerifyingKey.from_pem(key.verifying_key.to_pem())
    assert public == key.verifying_key
    assert key.verifying_key.to_pem().startswith(b"-----BEGIN PUBLIC KEY-----")
    again = SigningKey.from_pem(key.to_pem())
    assert again.key_id == key.key_id
    assert again.sign(b"m") == key.sign(b"m")
    assert key.to_pem().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_pem_rejections(key: SigningKey) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1())
    p256_private = p256.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    p256_public = p256.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encrypted = key._key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(FormatError, match="expected an Ed25519 key, got EC"):
        SigningKey.from_pem(p256_private)
    # P-256 public keys are accepted (TPM secure elements); other curves are not
    assert VerifyingKey.from_pem(p256_public).scheme == "ecdsa-p256-sha256"
    with pytest.raises(FormatError, match="unencrypted Ed25519 PKCS#8 PEM"):
        SigningKey.from_pem(encrypted)
    with pytest.raises(FormatError, match="private key PEM"):
        SigningKey.from_pem(b"not a pem")
    with pytest.raises(FormatError, match="public key PEM"):
        VerifyingKey.from_pem(key.to_pem())


def test_private_key_file_round_trip(key: SigningKey, tmp_path: Path) -> None:
    path = tmp_path / "chip.key"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = SigningKey.load(path)
    assert loaded.key_id == key.key_id
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chip.key"]  # no temp files left


def test_private_key_file_is_private_even_with_a_loose_umask(
    key: SigningKey, tmp_path: Path
) -> None:
    old = os.umask(0)
    try:
        key.save(tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_save_refuses_to_overwrite(key: SigningKey, tmp_path: Path) -> None:
    path = tmp_path / "chip.key"
    path.write_bytes(b"precious")
    with pytest.raises(FormatError, match="exists already; pass overwrite=True"):
        key.save(path)
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chip.key"]
    key.save(path, overwrite=True)
    assert SigningKey.load(path).key_id == key.key_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_load_refuses_loose_permissions(key: SigningKey, tmp_path: Path, mode: int) -> None:
    path = tmp_path / "chip.key"
    key.save(path)
    path.chmod(mode)
    with pytest.raises(FormatError) as info:
        SigningKey.load(path)
    message = info.value.message
    assert str(path) in message
    assert f"got {mode:04o}" in message
    assert f"chmod 600 {path}" in message


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_load_accepts_owner_only_permissions(key: SigningKey, tmp_path: Path, mode: int) -> None:
    path = tmp_path / "chip.key"
    key.save(path)
    path.chmod(mode)
    assert SigningKey.load(path).key_id == key.key_id


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.key"
    with pytest.raises(FormatError, match=f"private key file {missing}: cannot open"):
        SigningKey.load(missing)
    with pytest.raises(FormatError, match="expected a regular file"):
        SigningKey.load(tmp_path)
    big = tmp_path / "big.pem"
    big.write_bytes(b"x" * (MAX_KEY_FILE_BYTES + 1))
    big.chmod(0o600)
    with pytest.raises(FormatError, match=f"expected at most {MAX_KEY_FILE_BYTES} bytes"):
        SigningKey.load(big)
    junk = tmp_path / "junk.key"
    junk.write_bytes(b"junk")
    junk.chmod(0o600)
    with pytest.raises(FormatError, match=f"private key file {junk}: private key PEM"):
        SigningKey.load(junk)
    with pytest.raises(FormatError, match=f"public key file {junk}: public key PEM"):
        VerifyingKey.load(junk)
    with pytest.raises(FormatError, match="cannot create it"):
        SigningKey.generate().save(tmp_path / "no-such-dir" / "k")


def test_public_key_file(key: SigningKey, tmp_path: Path) -> None:
    path = tmp_path / "chip.pub"
    key.verifying_key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert VerifyingKey.load(path) == key.verifying_key
    with pytest.raises(FormatError, match="exists already"):
        SigningKey.generate().verifying_key.save(path)
    assert VerifyingKey.load(path) == key.verifying_key
    other = SigningKey.generate().verifying_key
    other.save(path, overwrite=True)
    assert VerifyingKey.load(path) == other


def test_p256_verifying_keys_for_tpm_secure_elements() -> None:
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415

    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key = VerifyingKey.from_pem(pem)
    assert key.scheme == "ecdsa-p256-sha256"
    assert len(key.raw) == 65
    assert VerifyingKey.from_pem(key.to_pem()) == key
    assert VerifyingKey.from_raw(key.raw).key_id == key.key_id
    sig = private.sign(b"entry", ec.ECDSA(hashes.SHA256()))
    key.verify(sig, b"entry")
    with pytest.raises(IntegrityError, match="ECDSA P-256 signature"):
        key.verify(sig, b"entrY")
    with pytest.raises(FormatError, match="not on the curve"):
        VerifyingKey.from_raw(b"\x04" + bytes(64))
    with pytest.raises(FormatError, match="65-byte"):
        VerifyingKey.from_raw(bytes(33))
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(FormatError, match="Ed25519 or P-256"):
        VerifyingKey.from_pem(
            other.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
