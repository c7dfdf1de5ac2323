"""C2SP transparency-log checkpoints (c2sp.org/tlog-checkpoint) and their signed form.

A checkpoint is the note text::

    <origin>
    <tree size, decimal, no leading zeros>
    <base64 root hash>
    [extension lines]

A `SignedCheckpoint` is a checkpoint inside a C2SP signed note. It is
parsed without trust; `SignedCheckpoint.verify` (or `verify_checkpoint`)
checks the origin and the log's signature and returns the `Checkpoint`.

Example:
    >>> from computewatch.crypto import Checkpoint, NoteSigner, SignedCheckpoint
    >>> from computewatch.crypto import MerkleLog, verify_checkpoint
    >>> signer = NoteSigner.generate("example.com/log")
    >>> cp = Checkpoint("example.com/log", 0, MerkleLog.in_memory().root())
    >>> signed = SignedCheckpoint.sign(cp, [signer])
    >>> verify_checkpoint(signed.to_bytes(), [signer.verifier], "example.com/log") == cp
    True
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING

from computewatch.crypto._merkle import HASH_SIZE, MAX_TREE_SIZE, check_uint
from computewatch.crypto._note import (
    Note,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    check_bytes,
    check_note_chars,
    strict_b64decode,
    verify_note,
)
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Checkpoint", "SignedCheckpoint", "verify_checkpoint"]

_MAX_SIZE_DIGITS = len(str(MAX_TREE_SIZE))


def parse_decimal(text: str, what: str) -> int:
    """Parse an ASCII decimal with no leading zeros (``0`` itself is allowed) below 2**64.

    Raises:
        FormatError: If ``text`` is anything else.
    """
    ok = (
        0 < len(text) <= _MAX_SIZE_DIGITS
        and all("0" <= c <= "9" for c in text)
        and (text == "0" or text[0] != "0")
    )
    if not ok or int(text) > MAX_TREE_SIZE:
        msg = f"{what}: expected a decimal below 2**64 with no leading zeros, got {text[:30]!r}"
        raise FormatError(msg)
    return int(text)


def _check_line(value: object, what: str) -> None:
    if not isinstance(value, str) or not value or "\n" in value:
        msg = f"{what}: expected a non-empty line, got {value!r}"
        raise FormatError(msg)
    check_note_chars(value, what)


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size and root hash (valid once constructed).

    Attributes:
        origin: The log's identity, a non-empty line (e.g. ``example.com/log42``).
        size: The number of leaves in the tree.
        root_hash: The 32-byte RFC 9162 root hash of the tree at ``size``.
        extensions: Optional opaque non-empty extension lines (not recommended).
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Check every field against the tlog-checkpoint grammar."""
        _check_line(self.origin, "checkpoint origin")
        check_uint(self.size, "checkpoint tree size")
        check_bytes(self.root_hash, "checkpoint root hash", HASH_SIZE)
        for i, ext in enumerate(self.extensions):
            _check_line(ext, f"checkpoint extension line {i}")

    def to_text(self) -> str:
        """Return the checkpoint note text, ending in a newline."""
        root = base64.b64encode(self.root_hash).decode()
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text.

        Raises:
            FormatError: Naming the line that breaks the grammar.
        """
        if not text.endswith("\n"):
            msg = "checkpoint: expected the text to end with a newline"
            raise FormatError(msg)
        lines = text[:-1].split("\n")
        if len(lines) < 3:  # noqa: PLR2004 - origin, size, root
            msg = f"checkpoint: expected at least 3 lines, got {len(lines)}"
            raise FormatError(msg)
        for i, line in enumerate(lines, start=1):
            if not line:
                msg = f"checkpoint line {i}: expected a non-empty line"
                raise FormatError(msg)
        size = parse_decimal(lines[1], "checkpoint line 2 (tree size)")
        root = strict_b64decode(lines[2], "checkpoint line 3 (root hash)")
        if len(root) != HASH_SIZE:
            msg = f"checkpoint line 3 (root hash): expected {HASH_SIZE} bytes, got {len(root)}"
            raise FormatError(msg)
        return cls(lines[0], size, root, tuple(lines[3:]))


def _is_bare_checkpoint(data: bytes | str) -> bool:
    try:
        text = data.decode() if isinstance(data, bytes) else data
        Checkpoint.from_text(text)
    except (FormatError, UnicodeDecodeError):
        return False
    return True


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint inside a signed note, as parsed: *not yet verified*.

    Attributes:
        checkpoint: The checkpoint the note text holds (unauthenticated).
        note: The signed note.
    """

    checkpoint: Checkpoint
    note: Note

    def __post_init__(self) -> None:
        """Check that the note text is exactly this checkpoint."""
        if self.note.text != self.checkpoint.to_text():
            msg = "signed checkpoint: the note text is not the checkpoint's text"
            raise FormatError(msg)

    @classmethod
    def parse(cls, data: bytes | str) -> SignedCheckpoint:
        """Parse signed checkpoint bytes; no signature is checked.

        Raises:
            FormatError: If the note or the checkpoint text is malformed.
            IntegrityError: If ``data`` is a bare checkpoint with no signature
                lines at all (an unsigned tree head is refused, not parsed).
        """
        try:
            note = Note.parse(data)
        except FormatError as e:
            if _is_bare_checkpoint(data):
                msg = "signed checkpoint: expected a signature by the log, got no signature lines"
                raise IntegrityError(msg) from e
            raise
        return cls(Checkpoint.from_text(note.text), note)

    @classmethod
    def sign(cls, checkpoint: Checkpoint, signers: Iterable[NoteSigner]) -> SignedCheckpoint:
        """Sign a checkpoint with every signer (the log key first)."""
        text = checkpoint.to_text()
        body = text.encode()
        signatures = tuple(s.sign(body) for s in signers)
        return cls(checkpoint, Note(text, signatures))

    def with_signatures(self, extra: Iterable[NoteSignature]) -> SignedCheckpoint:
        """This checkpoint with ``extra`` signature lines (e.g. cosignatures) appended.

        Lines already present (same name and key ID) are not added twice.
        """
        have = {(s.name, s.key_id) for s in self.note.signatures}
        new = []
        for s in extra:
            if (s.name, s.key_id) not in have:
                have.add((s.name, s.key_id))
                new.append(s)
        return SignedCheckpoint(
            self.checkpoint, Note(self.note.text, (*self.note.signatures, *new))
        )

    def to_bytes(self) -> bytes:
        """Return the signed note bytes."""
        return self.note.to_bytes()

    def verify(self, verifiers: Iterable[NoteVerifier], origin: str) -> Checkpoint:
        """Check the origin and the signatures; return the now-trusted checkpoint.

        Args:
            verifiers: Trusted log keys for ``origin``.
            origin: The origin line the caller expects.

        Raises:
            FormatError: If the note is malformed.
            IntegrityError: If the origin differs, a trusted key's signature
                fails, or no trusted key signed.
        """
        if self.checkpoint.origin != origin:
            msg = f"checkpoint origin: expected {origin!r}, got {self.checkpoint.origin!r}"
            raise IntegrityError(msg)
        verify_note(self.note, verifiers)
        return self.checkpoint


def verify_checkpoint(
    data: bytes | str, verifiers: Iterable[NoteVerifier], origin: str
) -> Checkpoint:
    """Parse and verify a signed checkpoint; return the trusted `Checkpoint`.

    Raises:
        FormatError: If the note or checkpoint is malformed.
        IntegrityError: If the origin or a signature is wrong, or no trusted key signed.
    """
    return SignedCheckpoint.parse(data).verify(verifiers, origin)
