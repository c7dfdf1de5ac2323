"""Ed25519 signing and verifying keys, and their files.

Every signature in computewatch is Ed25519 (RFC 8032) through
``cryptography``. A key is named by its `KeyID`::

    key_id = "sha256:" + hex(SHA-256(raw 32-byte Ed25519 public key))

Private keys are stored as unencrypted PKCS#8 PEM files, written atomically
with mode 0600 and never over an existing file unless asked; loading one
whose permissions let the group or others read it is refused, as ssh does.
Public keys are SubjectPublicKeyInfo PEM files (mode 0644): safe to share.
Files are capped at `MAX_KEY_FILE_BYTES`. POSIX only (permissions, hard
links).

`SigningKey.sign` signs exactly the bytes it is given. Prefer
`sign_envelope`, which binds the payload's type into what is signed; a raw
signature over untyped bytes can be replayed in another context.

Example:
    >>> from computewatch.crypto import SigningKey, VerifyingKey
    >>> key = SigningKey.from_seed(bytes(32))
    >>> sig = key.sign(b"hello")
    >>> public = VerifyingKey.from_pem(key.verifying_key.to_pem())
    >>> public.verify(sig, b"hello")  # returns None; raises IntegrityError if bad
    >>> public.key_id == key.key_id
    True
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from computewatch.crypto._digest import KeyID
from computewatch.errors import FormatError, IntegrityError

__all__ = ["MAX_KEY_FILE_BYTES", "Signer", "SigningKey", "VerifyingKey"]

#: Largest key file `SigningKey.load` and `VerifyingKey.load` read.
MAX_KEY_FILE_BYTES = 64 * 1024

_PUBLIC_KEY_BYTES = 32
_P256_POINT_BYTES = 65
_SEC1_UNCOMPRESSED = 0x04
_SEED_BYTES = 32


class Signer(Protocol):
    """Anything that can sign: a `SigningKey`, or a secure element holding one.

    `sign_envelope` needs only this, so keys that never leave a chip's secure
    element can sign envelopes too.
    """

    @property
    def key_id(self) -> KeyID:
        """The `KeyID` of the public key that verifies this signer's signatures."""
        ...

    def sign(self, message: bytes) -> bytes:
        """Return the Ed25519 signature of exactly ``message``."""
        ...


def _key_id(raw_public: bytes) -> KeyID:
    return KeyID("sha256:" + hashlib.sha256(raw_public).hexdigest())


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A public key that verifies signatures; safe to share.

    Ed25519 is the default everywhere. ECDSA over NIST P-256 with SHA-256
    is accepted too, because TPM 2.0 secure elements (the chip's ``tpm:``
    backend) sign with it; such keys are given as their 65-byte
    uncompressed SEC1 point and verify DER-encoded signatures.

    Two keys are equal (and hash equal) when their raw bytes are.

    Attributes:
        raw: The 32-byte RFC 8032 encoding of an Ed25519 key, or the 65-byte
            uncompressed SEC1 point (``04 ‖ x ‖ y``) of a P-256 key.
    """

    raw: bytes
    _key: Ed25519PublicKey | ec.EllipticCurvePublicKey = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        """Parse ``raw`` into a usable key.

        Raises:
            FormatError: ``raw`` is neither a 32-byte Ed25519 key nor a valid
                65-byte P-256 point.
        """
        object.__setattr__(self, "raw", bytes(self.raw))
        if len(self.raw) == _PUBLIC_KEY_BYTES:
            key: Ed25519PublicKey | ec.EllipticCurvePublicKey = Ed25519PublicKey.from_public_bytes(
                self.raw
            )
        elif len(self.raw) == _P256_POINT_BYTES and self.raw[0] == _SEC1_UNCOMPRESSED:
            try:
                key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.raw)
            except ValueError as e:
                msg = "P-256 public key: the point is not on the curve"
                raise FormatError(msg) from e
        else:
            msg = (
                f"public key: expected {_PUBLIC_KEY_BYTES} bytes (Ed25519) or a "
                f"{_P256_POINT_BYTES}-byte uncompressed P-256 point, got {len(self.raw)} bytes"
            )
            raise FormatError(msg)
        object.__setattr__(self, "_key", key)

    @property
    def scheme(self) -> str:
        """``"ed25519"`` or ``"ecdsa-p256-sha256"``."""
        return "ed25519" if len(self.raw) == _PUBLIC_KEY_BYTES else "ecdsa-p256-sha256"

    @classmethod
    def from_raw(cls, raw: bytes) -> VerifyingKey:
        """Return the key with the raw encoding ``raw`` (see `raw`).

        Raises:
            FormatError: ``raw`` is not a valid encoding.
        """
        return cls(bytes(raw))

    @classmethod
    def from_pem(cls, data: bytes) -> VerifyingKey:
        """Parse a SubjectPublicKeyInfo PEM (``-----BEGIN PUBLIC KEY-----``).

        Raises:
            FormatError: Not PEM, or neither an Ed25519 nor a P-256 key.
        """
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            msg = f"public key PEM: expected an Ed25519 SubjectPublicKeyInfo PEM ({e})"
            raise FormatError(msg) from e
        if isinstance(key, Ed25519PublicKey):
            return cls(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return cls(
                key.public_bytes(
                    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
                )
            )
        msg = f"public key PEM: expected an Ed25519 or P-256 key, got {type(key).__name__}"
        raise FormatError(msg)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VerifyingKey:
        """Read a public key PEM file.

        Raises:
            FormatError: The file is missing, too large or not an Ed25519 PEM.
        """
        data, _ = _read_key_file(Path(path), "public key file")
        try:
            return cls.from_pem(data)
        except FormatError as e:
            msg = f"public key file {path}: {e.message}"
            raise FormatError(msg) from e

    @property
    def key_id(self) -> KeyID:
        """``sha256:`` hex of the raw public key (see the module docs)."""
        return _key_id(self.raw)

    def to_pem(self) -> bytes:
        """Return the SubjectPublicKeyInfo PEM encoding."""
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the PEM to ``path`` atomically, mode 0644.

        Raises:
            FormatError: ``path`` exists and ``overwrite`` is False.
        """
        _write_atomic(Path(path), self.to_pem(), mode=0o644, overwrite=overwrite)

    def verify(self, signature: bytes, message: bytes) -> None:
        """Check that ``signature`` is this key's signature of exactly ``message``.

        Raises:
            IntegrityError: The signature does not verify; the message names
                this key's id.
        """
        try:
            if isinstance(self._key, Ed25519PublicKey):
                self._key.verify(bytes(signature), bytes(message))
            else:
                self._key.verify(bytes(signature), bytes(message), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as e:
            name = "Ed25519" if self.scheme == "ed25519" else "ECDSA P-256"
            msg = f"{name} signature by key {self.key_id}: does not verify"
            raise IntegrityError(msg) from e


class SigningKey:
    """An Ed25519 private key. Its `repr` shows only the key id.

    Example:
        >>> key = SigningKey.generate()
        >>> key.verifying_key.verify(key.sign(b"m"), b"m")
    """

    __slots__ = ("_key", "_verifying_key")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        """Wrap a ``cryptography`` private key; see the ``generate``/``from_*`` constructors."""
        self._key = key
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self._verifying_key = VerifyingKey(raw)

    @classmethod
    def generate(cls) -> SigningKey:
        """Return a new key from the operating system's randomness."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Return the key whose RFC 8032 32-byte secret is ``seed``.

        For test vectors and deterministic fixtures; real keys come from
        `generate`.

        Raises:
            FormatError: ``seed`` is not 32 bytes.
        """
        seed = bytes(seed)
        if len(seed) != _SEED_BYTES:
            msg = f"Ed25519 seed: expected {_SEED_BYTES} bytes, got {len(seed)}"
            raise FormatError(msg)
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, data: bytes) -> SigningKey:
        """Parse an unencrypted PKCS#8 PEM (``-----BEGIN PRIVATE KEY-----``).

        Raises:
            FormatError: Not PEM, encrypted, or not an Ed25519 private key.
        """
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as e:
            msg = f"private key PEM: expected an unencrypted Ed25519 PKCS#8 PEM ({e})"
            raise FormatError(msg) from e
        if not isinstance(key, Ed25519PrivateKey):
            msg = f"private key PEM: expected an Ed25519 key, got {type(key).__name__}"
            raise FormatError(msg)
        return cls(key)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        """Read a private key file, refusing one that others may read.

        Raises:
            FormatError: The file is missing, too large, not a PEM Ed25519
                key, or readable or writable by its group or others (the
                message gives the ``chmod`` that fixes it).
        """
        data, mode = _read_key_file(Path(path), "private key file")
        if mode & 0o077:
            msg = (
                f"private key file {path}: expected permissions 0600 (owner only), "
                f"got {mode:04o}; fix with: chmod 600 {path}"
            )
            raise FormatError(msg)
        try:
            return cls.from_pem(data)
        except FormatError as e:
            msg = f"private key file {path}: {e.message}"
            raise FormatError(msg) from e

    @property
    def verifying_key(self) -> VerifyingKey:
        """The matching public key."""
        return self._verifying_key

    @property
    def key_id(self) -> KeyID:
        """The `KeyID` of the public key."""
        return self._verifying_key.key_id

    def to_pem(self) -> bytes:
        """Return the *secret* key as unencrypted PKCS#8 PEM."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the private key to ``path`` atomically, mode 0600 from the start.

        Raises:
            FormatError: ``path`` exists and ``overwrite`` is False.
        """
        _write_atomic(Path(path), self.to_pem(), mode=0o600, overwrite=overwrite)

    def sign(self, message: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of exactly ``message`` (deterministic)."""
        return self._key.sign(bytes(message))

    def __repr__(self) -> str:
        """Return ``SigningKey(key_id='sha256:…')``, never the secret."""
        return f"SigningKey(key_id={self.key_id!r})"


def _read_key_file(path: Path, what: str) -> tuple[bytes, int]:
    """Read a regular file of at most `MAX_KEY_FILE_BYTES`; return its bytes and mode bits."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        msg = f"{what} {path}: cannot open ({e.strerror})"
        raise FormatError(msg) from e
    try:
        info = os.fstat(fd)  # of the file we opened: no check-then-open race
        if not stat.S_ISREG(info.st_mode):
            msg = f"{what} {path}: expected a regular file"
            raise FormatError(msg)
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        msg = f"{what} {path}: expected at most {MAX_KEY_FILE_BYTES} bytes, got more"
        raise FormatError(msg)
    return data, stat.S_IMODE(info.st_mode)


def _write_atomic(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    """Write ``data`` to ``path`` with ``mode`` so readers see all of it or nothing.

    The temporary file is created 0600 (``mkstemp``) and only then widened to
    ``mode``, so a private key is never readable by others, even briefly.
    Without ``overwrite`` the file is published with ``link``, which fails if
    ``path`` exists (no check-then-write race).
    """
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        msg = f"key file {path}: cannot create it ({e.strerror})"
        raise FormatError(msg) from e
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            tmp.replace(path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError as e:
                msg = f"key file {path}: exists already; pass overwrite=True to replace it"
                raise FormatError(msg) from e
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
