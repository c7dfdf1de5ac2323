r"""C2SP signed notes with Ed25519 keys (c2sp.org/signed-note).

A signed note is a UTF-8 text ending in a newline, a blank line, and one or
more signature lines ``— <key name> <base64(key ID || signature)>``. Keys
are identified by their name and a 4-byte key ID,
``SHA-256(name || 0x0A || 0x01 || public key)[:4]``, and written as verifier
keys (*vkeys*) ``<name>+<hex key ID>+<base64(0x01 || public key)>``.

The text of a note must not be used before `verify_note` has checked it:
verification needs at least one good signature from a trusted key, ignores
signatures from unknown keys, and refuses the whole note when a trusted key's
signature does not verify.

Example:
    >>> from computewatch.crypto import NoteSigner, sign_note, verify_note
    >>> signer = NoteSigner.generate("example.com/log")
    >>> note = sign_note("hello\n", [signer])
    >>> verify_note(note, [signer.verifier]).text
    'hello\n'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from computewatch.crypto._merkle import check_uint
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "MAX_NOTE_SIGNATURES",
    "MAX_NOTE_SIZE",
    "Note",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "VerifiedNote",
    "sign_note",
    "verify_note",
]

#: Signature type byte of Ed25519 note signatures.
ED25519_TYPE = 0x01
#: Most signature lines a note may carry (the spec asks for at least 16).
MAX_NOTE_SIGNATURES = 100
#: Largest note accepted, in bytes.
MAX_NOTE_SIZE = 1 << 20

_SIG_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_ED25519_KEY_SIZE = 32
_ED25519_SIG_SIZE = 64
_KEY_ID_SIZE = 4
_KEY_ID_HEX = 8


def strict_b64decode(text: str, what: str) -> bytes:
    """Decode standard base64, refusing any non-canonical spelling.

    Raises:
        FormatError: If ``text`` is not the canonical base64 of some bytes.
    """
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as e:
        msg = f"{what}: expected standard base64, got {text[:40]!r}"
        raise FormatError(msg) from e
    if base64.b64encode(data).decode("ascii") != text:
        msg = f"{what}: expected canonical base64, got {text[:40]!r}"
        raise FormatError(msg)
    return data


def check_bytes(value: object, what: str, size: int | None = None) -> bytes:
    """Return ``value`` if it is ``bytes`` of length ``size`` (if given); else `FormatError`."""
    if not isinstance(value, bytes):
        msg = f"{what}: expected bytes, got {type(value).__name__}"
        raise FormatError(msg)
    if size is not None and len(value) != size:
        msg = f"{what}: expected {size} bytes, got {len(value)}"
        raise FormatError(msg)
    return value


def check_note_chars(text: str, what: str) -> None:
    """Refuse ASCII control characters other than newline (signed-note Format)."""
    for pos, char in enumerate(text):
        if char < " " and char != "\n":
            msg = f"{what}: control character U+{ord(char):04X} at offset {pos}"
            raise FormatError(msg)


def check_key_name(name: object) -> str:
    """Return ``name`` if it is a valid key name: non-empty, no spaces, no '+'.

    Raises:
        FormatError: If it is not.
    """
    if not isinstance(name, str) or not name:
        msg = f"note key name: expected a non-empty string, got {name!r}"
        raise FormatError(msg)
    if "+" in name or any(c.isspace() for c in name):
        msg = f"note key name {name!r}: expected no spaces or '+'"
        raise FormatError(msg)
    check_note_chars(name, f"note key name {name!r}")
    return name


def ed25519_key_id(name: str, public_key: bytes) -> int:
    """Return the key ID ``SHA-256(name || 0x0A || 0x01 || public_key)[:4]`` as an int."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_TYPE]) + public_key).digest()
    return int.from_bytes(digest[:_KEY_ID_SIZE], "big")


def _parse_key_text(text: str, what: str) -> tuple[str, int, bytes]:
    parts = text.split("+", 2)  # the base64 key may itself contain '+'
    if len(parts) != 3:  # noqa: PLR2004 - name, key ID, key
        msg = f"{what}: expected '<name>+<key ID>+<key>', got {len(parts)} '+'-separated parts"
        raise FormatError(msg)
    name, id_hex, key_b64 = parts
    check_key_name(name)
    if len(id_hex) != _KEY_ID_HEX or any(c not in "0123456789abcdef" for c in id_hex):
        msg = f"{what}: expected 8 lowercase hex digits as key ID, got {id_hex!r}"
        raise FormatError(msg)
    raw = strict_b64decode(key_b64, f"{what} key")
    if len(raw) != 1 + _ED25519_KEY_SIZE or raw[0] != ED25519_TYPE:
        msg = f"{what}: expected 0x01 and a 32-byte Ed25519 key, got {len(raw)} bytes"
        raise FormatError(msg)
    return name, int(id_hex, 16), raw[1:]


@dataclass(frozen=True)
class NoteVerifier:
    """A trusted Ed25519 note key: its name, key ID and public key.

    Attributes:
        name: The key name, as it appears in signature lines.
        public_key: The 32-byte Ed25519 public key.
    """

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        """Validate the name and key size."""
        check_key_name(self.name)
        check_bytes(self.public_key, f"note verifier {self.name} public key", _ED25519_KEY_SIZE)

    @property
    def key_id(self) -> int:
        """The key ID, ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``."""
        return ed25519_key_id(self.name, self.public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key ``<name>+<hex key ID>+<base64(0x01 || key)>``.

        Raises:
            FormatError: If the text is malformed or its key ID does not
                match the name and key.
        """
        name, key_id, public_key = _parse_key_text(vkey, "note verifier key")
        verifier = cls(name, public_key)
        if verifier.key_id != key_id:
            msg = (
                f"note verifier key {name}: key ID expected {verifier.key_id:08x}, got {key_id:08x}"
            )
            raise FormatError(msg)
        return verifier

    @property
    def vkey(self) -> str:
        """The verifier key text of this key."""
        raw = base64.b64encode(bytes([ED25519_TYPE]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{raw}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """Return whether ``signature`` is this key's Ed25519 signature of ``text``."""
        if len(signature) != _ED25519_SIG_SIZE:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except (InvalidSignature, ValueError):
            return False
        return True


class NoteSigner:
    """An Ed25519 note signing key with its name.

    The private key stays inside the object; `skey` exports it in the
    ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`` text form that
    golang.org/x/mod/sumdb/note uses.
    """

    __slots__ = ("_key", "_name", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        """Create a signer from a key name and an Ed25519 private key."""
        self._name = check_key_name(name)
        self._key = private_key
        self._verifier = NoteVerifier(name, private_key.public_key().public_bytes_raw())

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """Create a signer with a fresh random key."""
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> NoteSigner:
        """Create a signer from a 32-byte RFC 8032 private key seed."""
        if len(seed) != _ED25519_KEY_SIZE:
            msg = f"note signer {name}: expected a 32-byte seed, got {len(seed)} bytes"
            raise FormatError(msg)
        return cls(name, Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse a ``PRIVATE+KEY+...`` signer key text.

        Raises:
            FormatError: If malformed or if the key ID does not match.
        """
        if not skey.startswith(_PRIVATE_PREFIX):
            msg = "note signer key: expected the prefix 'PRIVATE+KEY+'"
            raise FormatError(msg)
        name, key_id, seed = _parse_key_text(skey[len(_PRIVATE_PREFIX) :], "note signer key")
        signer = cls.from_seed(name, seed)
        if signer.verifier.key_id != key_id:
            want = signer.verifier.key_id
            msg = f"note signer key {name}: key ID expected {want:08x}, got {key_id:08x}"
            raise FormatError(msg)
        return signer

    @property
    def skey(self) -> str:
        """The private signer key text. Treat it as a secret."""
        seed = self._key.private_bytes_raw()
        raw = base64.b64encode(bytes([ED25519_TYPE]) + seed).decode()
        return f"{_PRIVATE_PREFIX}{self._name}+{self._verifier.key_id:08x}+{raw}"

    @property
    def name(self) -> str:
        """The key name."""
        return self._name

    @property
    def verifier(self) -> NoteVerifier:
        """The public verifier of this key."""
        return self._verifier

    def sign(self, text: bytes) -> NoteSignature:
        """Sign note text bytes and return the signature line's content."""
        return NoteSignature(self._name, self._verifier.key_id, self._key.sign(text))

    def __repr__(self) -> str:
        """Show the name and key ID, never the key."""
        return f"NoteSigner({self._name!r}, key_id={self._verifier.key_id:08x})"


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note.

    Attributes:
        name: The key name.
        key_id: The 32-bit key ID.
        signature: The signature bytes (after the 4-byte key ID).
    """

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        """Validate the fields."""
        check_key_name(self.name)
        check_uint(self.key_id, f"note signature by {self.name}: key ID", maximum=(1 << 32) - 1)
        check_bytes(self.signature, f"note signature by {self.name}")
        if not self.signature:
            msg = f"note signature by {self.name}: expected a non-empty signature"
            raise FormatError(msg)

    def to_line(self) -> str:
        """Return the signature line, with its final newline."""
        raw = self.key_id.to_bytes(_KEY_ID_SIZE, "big") + self.signature
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(raw).decode()}\n"

    @classmethod
    def from_line(cls, line: str, lineno: int) -> NoteSignature:
        """Parse one signature line (without its newline).

        Raises:
            FormatError: If the line is malformed; the message names ``lineno``.
        """
        where = f"note signature line {lineno}"
        if not line.startswith(_SIG_PREFIX):
            msg = f"{where}: expected it to start with an em dash and a space"
            raise FormatError(msg)
        parts = line[len(_SIG_PREFIX) :].split(" ")
        if len(parts) != 2:  # noqa: PLR2004 - name and signature
            msg = f"{where}: expected '<name> <base64 signature>', got {len(parts)} fields"
            raise FormatError(msg)
        name, b64 = parts
        check_key_name(name)
        raw = strict_b64decode(b64, where)
        if len(raw) <= _KEY_ID_SIZE:
            msg = f"{where}: expected a key ID and a signature, got {len(raw)} bytes"
            raise FormatError(msg)
        return cls(name, int.from_bytes(raw[:_KEY_ID_SIZE], "big"), raw[_KEY_ID_SIZE:])


@dataclass(frozen=True)
class Note:
    """A parsed, *unverified* signed note. Use `verify_note` before trusting its text.

    Attributes:
        text: The note text, ending in a newline.
        signatures: The signature lines, in order.
    """

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        """Validate the text and the number of signatures."""
        if not self.text.endswith("\n"):
            msg = "note text: expected it to end with a newline"
            raise FormatError(msg)
        check_note_chars(self.text, "note text")
        if not 1 <= len(self.signatures) <= MAX_NOTE_SIGNATURES:
            msg = (
                f"note: expected 1 to {MAX_NOTE_SIGNATURES} signatures, got {len(self.signatures)}"
            )
            raise FormatError(msg)

    @classmethod
    def parse(cls, data: bytes | str) -> Note:
        """Parse signed note bytes without verifying any signature.

        Raises:
            FormatError: If the note breaks any rule of the grammar.
        """
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if len(raw) > MAX_NOTE_SIZE:
            msg = f"note: expected at most {MAX_NOTE_SIZE} bytes, got {len(raw)}"
            raise FormatError(msg)
        try:
            message = raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError as e:
            msg = f"note: expected UTF-8, got an invalid byte at offset {e.start}"
            raise FormatError(msg) from e
        check_note_chars(message, "note")
        split = message.rfind("\n\n")
        if split < 0:
            msg = "note: expected a blank line before the signatures, found none"
            raise FormatError(msg)
        text, sigs = message[: split + 1], message[split + 2 :]
        if not sigs.endswith("\n"):
            msg = "note: expected signature lines ending in a newline"
            raise FormatError(msg)
        lines = sigs[:-1].split("\n")
        if len(lines) > MAX_NOTE_SIGNATURES:
            msg = f"note: expected at most {MAX_NOTE_SIGNATURES} signatures, got {len(lines)}"
            raise FormatError(msg)
        first = text.count("\n") + 2
        signatures = tuple(NoteSignature.from_line(s, first + i) for i, s in enumerate(lines))
        return cls(text, signatures)

    def to_bytes(self) -> bytes:
        """Return the signed note bytes."""
        return (self.text + "\n" + "".join(s.to_line() for s in self.signatures)).encode()


@dataclass(frozen=True)
class VerifiedNote:
    """A note whose text was authenticated by at least one trusted key.

    Attributes:
        text: The authenticated note text.
        verified: Signatures by trusted keys, all of which verified.
        unverified: Signatures by keys the verifier does not know (ignored).
    """

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def sign_note(text: str, signers: Iterable[NoteSigner]) -> bytes:
    """Sign ``text`` with every signer and return the signed note bytes.

    Raises:
        FormatError: If the text is not valid note text or no signer is given.
    """
    signers = list(signers)
    if not signers:
        msg = "sign note: expected at least one signer, got none"
        raise FormatError(msg)
    body = text.encode()
    note = Note(text, tuple(s.sign(body) for s in signers))
    return note.to_bytes()


def verify_note(note: bytes | str | Note, verifiers: Iterable[NoteVerifier]) -> VerifiedNote:
    """Verify a signed note against trusted keys and return its authenticated text.

    Signatures from keys not in ``verifiers`` (by name *and* key ID) are
    ignored. Every signature from a known key must verify, and at least one
    must be present.

    Raises:
        FormatError: If the note is malformed, or a known key signed twice.
        IntegrityError: If a known key's signature fails, or no known key signed.
    """
    parsed = note if isinstance(note, Note) else Note.parse(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    if not known:
        msg = "verify note: expected at least one trusted key, got none"
        raise FormatError(msg)
    body = parsed.text.encode()
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    seen: set[tuple[str, int]] = set()
    for sig in parsed.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unverified.append(sig)
            continue
        if (sig.name, sig.key_id) in seen:
            msg = f"note: key {sig.name}+{sig.key_id:08x} signed more than once"
            raise FormatError(msg)
        seen.add((sig.name, sig.key_id))
        if not verifier.verify(body, sig.signature):
            msg = f"note: signature by trusted key {sig.name}+{sig.key_id:08x} does not verify"
            raise IntegrityError(msg)
        verified.append(sig)
    if not verified:
        names = ", ".join(sorted(f"{n}+{i:08x}" for n, i in known))
        msg = f"note: expected a signature by a trusted key ({names}), got none of them"
        raise IntegrityError(msg)
    return VerifiedNote(parsed.text, tuple(verified), tuple(unverified))
