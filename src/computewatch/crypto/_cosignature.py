r"""Witness cosignatures of checkpoints (c2sp.org/tlog-cosignature).

A cosignature is a note signature line on a checkpoint by a *cosigner* (a
witness) stating that, at its timestamp, this is the largest consistent tree
it has seen for the log. Two kinds:

* **Ed25519** (``cosignature/v1``): key ID ``SHA-256(name || 0x0A || 0x04 ||
  key)[:4]``; the signed message is ``"cosignature/v1\ntime <T>\n"`` followed
  by the checkpoint's note text.
* **ML-DSA-44** (``subtree/v1``): key ID ``SHA-256(name || 0x0A || 0x06 ||
  key)[:4]``; the signed message is the binary ``cosigned_message``: the
  label ``"subtree/v1\n\0"``, the cosigner name and the log origin (each with
  a one-byte length), the timestamp, start (0) and end (the tree size) as
  big-endian u64, and the root hash.

Either way the signature line carries ``key ID || u64 timestamp ||
signature``. A `Cosigner` signs; a `CosignerKey` (its public half, written
as a vkey ``<name>+<hex key ID>+<base64(type || key)>``) verifies.

Example:
    >>> from computewatch.crypto import Checkpoint, Cosigner, MerkleLog
    >>> witness = Cosigner.generate("witness.example/w1")
    >>> cp = Checkpoint("example.com/log", 0, MerkleLog.in_memory().root())
    >>> line = witness.cosign(cp, timestamp=1_700_000_000)
    >>> witness.key.verify(cp, line)
    1700000000
"""

from __future__ import annotations

import base64
import enum
import hashlib
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey, MLDSA44PublicKey

from computewatch.crypto._note import NoteSignature, check_bytes, check_key_name, strict_b64decode
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from computewatch.crypto._checkpoint import Checkpoint

__all__ = [
    "MAX_TIMESTAMP",
    "CosignatureKind",
    "Cosigner",
    "CosignerKey",
    "ed25519_cosigned_message",
    "mldsa_cosigned_message",
]

#: Largest timestamp a cosignature may carry (2**63 - 1).
MAX_TIMESTAMP = (1 << 63) - 1
_KEY_ID_SIZE = 4
_TS_SIZE = 8
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_SUBTREE_LABEL = b"subtree/v1\n\x00"
_MAX_NAME = 255


class CosignatureKind(enum.IntEnum):
    """The cosignature algorithms, by their key ID type byte."""

    ED25519 = 0x04
    MLDSA44 = 0x06

    @property
    def public_size(self) -> int:
        """Bytes of a raw public key."""
        return 32 if self is CosignatureKind.ED25519 else 1312

    @property
    def signature_size(self) -> int:
        """Bytes of a raw signature."""
        return 64 if self is CosignatureKind.ED25519 else 2420


def _check_timestamp(timestamp: object) -> int:
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        msg = f"cosignature timestamp: expected an integer, got {type(timestamp).__name__}"
        raise FormatError(msg)
    if not 0 < timestamp <= MAX_TIMESTAMP:
        msg = f"cosignature timestamp: expected 1 to 2**63 - 1, got {timestamp}"
        raise FormatError(msg)
    return timestamp


def ed25519_cosigned_message(checkpoint: Checkpoint, timestamp: int) -> bytes:
    """The ``cosignature/v1`` message: header, time line, then the checkpoint note text."""
    return f"cosignature/v1\ntime {timestamp}\n{checkpoint.to_text()}".encode()


def _short_bytes(value: bytes, what: str) -> bytes:
    if not 1 <= len(value) <= _MAX_NAME:
        msg = f"{what}: expected 1 to {_MAX_NAME} bytes, got {len(value)}"
        raise FormatError(msg)
    return bytes([len(value)]) + value


def mldsa_cosigned_message(  # noqa: PLR0917 - the structure's fields, in order
    name: str, timestamp: int, origin: str, start: int, end: int, root_hash: bytes
) -> bytes:
    """The ML-DSA-44 ``cosigned_message`` structure (RFC 8446 presentation language)."""
    return b"".join(
        (
            _SUBTREE_LABEL,
            _short_bytes(name.encode(), "cosigner name"),
            struct.pack(">Q", timestamp),
            _short_bytes(origin.encode(), "log origin"),
            struct.pack(">QQ", start, end),
            root_hash,
        )
    )


def _message(kind: CosignatureKind, name: str, checkpoint: Checkpoint, timestamp: int) -> bytes:
    if kind is CosignatureKind.ED25519:
        return ed25519_cosigned_message(checkpoint, timestamp)
    return mldsa_cosigned_message(
        name, timestamp, checkpoint.origin, 0, checkpoint.size, checkpoint.root_hash
    )


def _key_id(name: str, kind: CosignatureKind, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public_key).digest()
    return int.from_bytes(digest[:_KEY_ID_SIZE], "big")


def _parse_key_text(text: str, what: str) -> tuple[str, int, CosignatureKind, bytes]:
    parts = text.split("+", 2)
    if len(parts) != 3:  # noqa: PLR2004 - name, key ID, key
        msg = f"{what}: expected '<name>+<key ID>+<key>', got {len(parts)} '+'-separated parts"
        raise FormatError(msg)
    name, id_hex, key_b64 = parts
    check_key_name(name)
    if len(id_hex) != 2 * _KEY_ID_SIZE or any(c not in "0123456789abcdef" for c in id_hex):
        msg = f"{what} {name}: expected 8 lowercase hex digits as key ID, got {id_hex[:20]!r}"
        raise FormatError(msg)
    raw = strict_b64decode(key_b64, f"{what} {name} key")
    if not raw or raw[0] not in {k.value for k in CosignatureKind}:
        got = f"0x{raw[0]:02x}" if raw else "nothing"
        msg = f"{what} {name}: expected key type 0x04 (Ed25519) or 0x06 (ML-DSA-44), got {got}"
        raise FormatError(msg)
    return name, int(id_hex, 16), CosignatureKind(raw[0]), raw[1:]


@dataclass(frozen=True)
class CosignerKey:
    """A trusted cosigner (witness) public key: name, kind and raw key.

    Attributes:
        name: The cosigner's name, as in its signature lines.
        kind: Ed25519 or ML-DSA-44.
        public_key: The raw public key (32 or 1312 bytes).
    """

    name: str
    kind: CosignatureKind
    public_key: bytes

    def __post_init__(self) -> None:
        """Validate the name and the key size."""
        check_key_name(self.name)
        kind: object = self.kind
        if not isinstance(kind, CosignatureKind):
            msg = f"cosigner {self.name}: expected a CosignatureKind, got {kind!r}"
            raise FormatError(msg)
        check_bytes(self.public_key, f"cosigner {self.name} public key", self.kind.public_size)
        if len(self.name.encode()) > _MAX_NAME:
            msg = f"cosigner name: expected at most {_MAX_NAME} bytes"
            raise FormatError(msg)

    @property
    def key_id(self) -> int:
        """``SHA-256(name || 0x0A || type || key)[:4]`` as an int."""
        return _key_id(self.name, self.kind, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key text ``<name>+<hex key ID>+<base64(type || key)>``."""
        raw = base64.b64encode(bytes([self.kind]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{raw}"

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignerKey:
        """Parse a cosigner vkey (type 0x04 or 0x06).

        Raises:
            FormatError: Malformed, another key type, or a key ID that does not match.
        """
        name, key_id, kind, public_key = _parse_key_text(vkey, "cosigner key")
        key = cls(name, kind, public_key)
        if key.key_id != key_id:
            msg = f"cosigner key {name}: key ID expected {key.key_id:08x}, got {key_id:08x}"
            raise FormatError(msg)
        return key

    def matches(self, line: NoteSignature) -> bool:
        """Whether a signature line names this key (name and key ID)."""
        return line.name == self.name and line.key_id == self.key_id

    def verify(self, checkpoint: Checkpoint, line: NoteSignature) -> int | None:
        """Return the cosignature's timestamp if ``line`` is this key's valid cosignature.

        Returns None if the line is not this key's, is malformed, has a zero
        timestamp or does not verify.
        """
        if not self.matches(line):
            return None
        raw = line.signature
        if len(raw) != _TS_SIZE + self.kind.signature_size:
            return None
        timestamp = int.from_bytes(raw[:_TS_SIZE], "big")
        if not 0 < timestamp <= MAX_TIMESTAMP:
            return None
        message = _message(self.kind, self.name, checkpoint, timestamp)
        try:
            if self.kind is CosignatureKind.ED25519:
                Ed25519PublicKey.from_public_bytes(self.public_key).verify(raw[_TS_SIZE:], message)
            else:
                MLDSA44PublicKey.from_public_bytes(self.public_key).verify(raw[_TS_SIZE:], message)
        except (InvalidSignature, ValueError):
            return None
        return timestamp


class Cosigner:
    """A witness's cosigning key (Ed25519 or ML-DSA-44) with its name.

    `skey` exports ``PRIVATE+KEY+<name>+<hex key ID>+<base64(type || seed)>``
    (a 32-byte seed for either kind).
    """

    __slots__ = ("_key", "_private")

    def __init__(self, name: str, private: Ed25519PrivateKey | MLDSA44PrivateKey) -> None:
        """Create a cosigner from a name and a private key."""
        key: object = private
        if isinstance(key, Ed25519PrivateKey):
            kind = CosignatureKind.ED25519
        elif isinstance(key, MLDSA44PrivateKey):
            kind = CosignatureKind.MLDSA44
        else:
            msg = f"cosigner {name}: expected an Ed25519 or ML-DSA-44 key"
            raise FormatError(msg)
        self._private = private
        self._key = CosignerKey(name, kind, private.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, name: str, kind: CosignatureKind = CosignatureKind.ED25519) -> Cosigner:
        """A cosigner with a fresh random key."""
        if kind is CosignatureKind.MLDSA44:
            return cls(name, MLDSA44PrivateKey.generate())
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, kind: CosignatureKind, seed: bytes) -> Cosigner:
        """A cosigner from a 32-byte seed (RFC 8032 or FIPS 204 ``xi``)."""
        if len(seed) != 32:  # noqa: PLR2004 - both kinds use 32-byte seeds
            msg = f"cosigner {name}: expected a 32-byte seed, got {len(seed)} bytes"
            raise FormatError(msg)
        if kind is CosignatureKind.MLDSA44:
            return cls(name, MLDSA44PrivateKey.from_seed_bytes(seed))
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_skey(cls, skey: str) -> Cosigner:
        """Parse a ``PRIVATE+KEY+...`` cosigner key text.

        Raises:
            FormatError: Malformed, or the key ID does not match.
        """
        if not skey.startswith(_PRIVATE_PREFIX):
            msg = "cosigner key: expected the prefix 'PRIVATE+KEY+'"
            raise FormatError(msg)
        name, key_id, kind, seed = _parse_key_text(skey[len(_PRIVATE_PREFIX) :], "cosigner key")
        signer = cls.from_seed(name, kind, seed)
        if signer.key.key_id != key_id:
            want = signer.key.key_id
            msg = f"cosigner key {name}: key ID expected {want:08x}, got {key_id:08x}"
            raise FormatError(msg)
        return signer

    @property
    def skey(self) -> str:
        """The private key text. Treat it as a secret."""
        seed = self._private.private_bytes_raw()
        raw = base64.b64encode(bytes([self._key.kind]) + seed).decode()
        return f"{_PRIVATE_PREFIX}{self._key.name}+{self._key.key_id:08x}+{raw}"

    @property
    def key(self) -> CosignerKey:
        """The public cosigner key."""
        return self._key

    @property
    def name(self) -> str:
        """The cosigner's name."""
        return self._key.name

    def cosign(self, checkpoint: Checkpoint, *, timestamp: int) -> NoteSignature:
        """Cosign ``checkpoint`` at ``timestamp`` (POSIX seconds, > 0).

        The caller is responsible for the witness's consistency checks; this
        only signs.
        """
        ts = _check_timestamp(timestamp)
        message = _message(self._key.kind, self._key.name, checkpoint, ts)
        signature = struct.pack(">Q", ts) + self._private.sign(message)
        return NoteSignature(self._key.name, self._key.key_id, signature)

    def __repr__(self) -> str:
        """Show the name, kind and key ID, never the key."""
        k = self._key
        return f"Cosigner({k.name!r}, {k.kind.name}, key_id={k.key_id:08x})"
