"""C2SP signed notes: signing, verification policy, grammar, tampering."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from computewatch.crypto._note import (
    MAX_NOTE_SIGNATURES,
    Note,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    sign_note,
    verify_note,
)
from computewatch.errors import FormatError, IntegrityError

LOG = NoteSigner.from_seed("example.com/log", bytes(range(32)))
WITNESS = NoteSigner.from_seed("witness.example/w1", bytes(range(1, 33)))
MALLORY = NoteSigner.from_seed("example.com/log", bytes(range(2, 34)))  # same name, other key
DASH = "\u2014"


def test_sign_and_verify() -> None:
    note = sign_note("hello\nworld\n", [LOG])
    verified = verify_note(note, [LOG.verifier])
    assert verified.text == "hello\nworld\n"
    assert [s.name for s in verified.verified] == ["example.com/log"]
    assert verified.unverified == ()
    assert note.decode().startswith("hello\nworld\n\n" + DASH + " example.com/log ")


def test_text_with_blank_lines_and_trailing_blank_line() -> None:
    for text in ["a\n\nb\n", "a\n\n", "\n"]:
        note = sign_note(text, [LOG])
        assert Note.parse(note).text == text
        assert verify_note(note, [LOG.verifier]).text == text


def test_unknown_signatures_are_ignored() -> None:
    note = sign_note("text\n", [LOG, WITNESS])
    verified = verify_note(note, [LOG.verifier])
    assert [s.name for s in verified.unverified] == ["witness.example/w1"]
    # Same name, different key (so a different key ID): ignored too.
    note = sign_note("text\n", [MALLORY, LOG])
    assert len(verify_note(note, [LOG.verifier]).unverified) == 1


def test_no_trusted_signature_is_refused() -> None:
    note = sign_note("text\n", [WITNESS, MALLORY])
    with pytest.raises(IntegrityError, match=r"expected a signature by a trusted key"):
        verify_note(note, [LOG.verifier])


def test_bad_signature_from_known_key_is_refused() -> None:
    sig = LOG.sign(b"other text\n")
    note = Note("text\n", (sig,)).to_bytes()
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_note(note, [LOG.verifier])
    # Even next to a good signature by another trusted key.
    good = WITNESS.sign(b"text\n")
    note = Note("text\n", (good, sig)).to_bytes()
    with pytest.raises(IntegrityError):
        verify_note(note, [LOG.verifier, WITNESS.verifier])


def test_forged_key_id_collision_is_refused() -> None:
    """A signature claiming the trusted name and key ID but made by another key."""
    forged = NoteSignature(LOG.name, LOG.verifier.key_id, MALLORY.sign(b"t\n").signature)
    with pytest.raises(IntegrityError):
        verify_note(Note("t\n", (forged,)).to_bytes(), [LOG.verifier])


def test_duplicate_known_signature_is_malformed() -> None:
    sig = LOG.sign(b"t\n")
    with pytest.raises(FormatError, match="more than once"):
        verify_note(Note("t\n", (sig, sig)).to_bytes(), [LOG.verifier])


def test_verify_needs_keys() -> None:
    with pytest.raises(FormatError, match="trusted key"):
        verify_note(sign_note("t\n", [LOG]), [])
    with pytest.raises(FormatError, match="signer"):
        sign_note("t\n", [])


def _sigline(name: str, raw: bytes) -> str:
    return f"{DASH} {name} {base64.b64encode(raw).decode()}\n"


GOOD_SIG = _sigline("example.com/log", b"\x01\x02\x03\x04" + b"s" * 64)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"text\n\n" + GOOD_SIG.encode()[:-1], "ending in a newline"),
        (b"text\n" + GOOD_SIG.encode(), "blank line"),
        (b"te\xffxt\n\n" + GOOD_SIG.encode(), "UTF-8"),
        (b"te\x07xt\n\n" + GOOD_SIG.encode(), "control character U\\+0007"),
        (b"text\r\n\n" + GOOD_SIG.encode(), "control character U\\+000D"),
        (("text\n\n" + GOOD_SIG * (MAX_NOTE_SIGNATURES + 1)).encode(), "at most 100 signatures"),
        (b"text\n\n- example.com/log AAAAAAA=\n", "em dash"),
        (("text\n\n" + DASH + " example.com/log\n").encode(), "2 fields|got 1 fields"),
        (("text\n\n" + DASH + " a b c\n").encode(), "got 3 fields"),
        (("text\n\n" + _sigline("bad+name", b"\x00" * 68)).encode(), "'\\+'"),
        (("text\n\n" + DASH + " example.com/log AAAA*AAA\n").encode(), "base64"),
        (("text\n\n" + DASH + " example.com/log AAAAAB==\n").encode(), "canonical base64"),
        (("text\n\n" + _sigline("example.com/log", b"\x00\x00\x00\x00")).encode(), "key ID"),
        (("text\n\n" + DASH + " example.com/log \n").encode(), "base64|bytes"),
        (("text\n\n" + GOOD_SIG + "\n").encode(), "signature lines ending|blank"),
        (b"x" * (2**20 + 1), "at most"),
    ],
)
def test_malformed_notes(data: bytes, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        Note.parse(data)


def test_signature_line_names_its_line() -> None:
    data = ("a\nb\n\n" + GOOD_SIG + DASH + " x y z\n").encode()
    with pytest.raises(FormatError, match="signature line 5"):
        Note.parse(data)


def test_sign_rejects_bad_text() -> None:
    with pytest.raises(FormatError, match="end with a newline"):
        sign_note("no newline", [LOG])
    with pytest.raises(FormatError, match="control character"):
        sign_note("tab\there\n", [LOG])


def test_vkey_round_trip_and_errors() -> None:
    vkey = LOG.verifier.vkey
    assert NoteVerifier.from_vkey(vkey) == LOG.verifier
    name, key_id, key = vkey.split("+", 2)
    assert key_id == f"{LOG.verifier.key_id:08x}"
    bad_id = f"{(LOG.verifier.key_id + 1) % 2**32:08x}"
    for text, match in [
        (f"{name}+{bad_id}+{key}", "key ID expected"),
        (f"{name}+{key_id.upper()}+{key}", "lowercase hex"),
        (f"{name}+{key_id}", "3 '\\+'|got 2"),
        (f"{name}+{key_id}+{key}+x", "base64"),
        (f"{name}+{key_id}+" + base64.b64encode(b"\x02" + b"k" * 32).decode(), "0x01"),
        (f"{name}+{key_id}+" + base64.b64encode(b"\x01" + b"k" * 31).decode(), "32-byte"),
        (f"na me+{key_id}+{key}", "spaces"),
        (f"+{key_id}+{key}", "non-empty"),
    ]:
        with pytest.raises(FormatError, match=match):
            NoteVerifier.from_vkey(text)


def test_skey_round_trip_and_repr() -> None:
    skey = LOG.skey
    assert skey.startswith("PRIVATE+KEY+example.com/log+")
    again = NoteSigner.from_skey(skey)
    assert again.verifier == LOG.verifier
    assert "PRIVATE" not in repr(LOG)
    assert base64.b64encode(bytes(range(32))).decode() not in repr(LOG)
    with pytest.raises(FormatError, match="PRIVATE"):
        NoteSigner.from_skey(LOG.verifier.vkey)
    wrong = skey.replace(f"+{LOG.verifier.key_id:08x}+", "+00000000+")
    with pytest.raises(FormatError, match="key ID"):
        NoteSigner.from_skey(wrong)
    with pytest.raises(FormatError, match="32-byte seed"):
        NoteSigner.from_seed("x", b"short")


def test_generated_signers_differ() -> None:
    a, b = NoteSigner.generate("n"), NoteSigner.generate("n")
    assert a.verifier != b.verifier
    assert a.name == "n"


def test_verifier_equality_and_hash() -> None:
    assert hash(LOG.verifier) == hash(NoteVerifier("example.com/log", LOG.verifier.public_key))
    assert len({LOG.verifier, WITNESS.verifier, LOG.verifier}) == 2
    assert not LOG.verifier.verify(b"t", b"short")


def test_every_byte_flip_is_refused() -> None:
    note = sign_note("example.com/log\n42\nsome text\n", [LOG])
    for pos in range(len(note)):
        for mask in (0x01, 0x80):
            data = bytearray(note)
            data[pos] ^= mask
            with pytest.raises((FormatError, IntegrityError)):
                verify_note(bytes(data), [LOG.verifier])


_TEXT_CHARS = st.characters(min_codepoint=0x20, exclude_categories=["Cs"])
_LINE = st.text(_TEXT_CHARS, max_size=30)


@settings(max_examples=50, deadline=None)
@given(lines=st.lists(_LINE, min_size=1, max_size=6), n=st.integers(1, 3))
def test_note_round_trip(lines: list[str], n: int) -> None:
    text = "\n".join(lines) + "\n"
    signers = [LOG, WITNESS, MALLORY][:n]
    note = sign_note(text, signers)
    parsed = Note.parse(note)
    assert parsed.text == text
    assert parsed.to_bytes() == note
    assert verify_note(note, [LOG.verifier]).text == text


def test_note_and_signature_constructors_validate() -> None:
    sig = LOG.sign(b"t\n")
    with pytest.raises(FormatError, match="non-empty signature"):
        NoteSignature("k", 1, b"")
    with pytest.raises(FormatError, match="key ID"):
        NoteSignature("k", 2**32, b"s")
    with pytest.raises(FormatError, match="expected 1 to 100 signatures, got 0"):
        Note("t\n", ())
    with pytest.raises(FormatError, match="got 101"):
        Note("t\n", (sig,) * 101)
