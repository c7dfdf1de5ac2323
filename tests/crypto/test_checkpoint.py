"""C2SP tlog-checkpoint parsing, formatting, signing and verification."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from computewatch.crypto._checkpoint import Checkpoint, SignedCheckpoint, verify_checkpoint
from computewatch.crypto._merkle import EMPTY_ROOT
from computewatch.crypto._note import Note, NoteSigner
from computewatch.errors import FormatError, IntegrityError

ORIGIN = "example.com/log"
LOG = NoteSigner.from_seed(ORIGIN, bytes(range(32)))
OTHER = NoteSigner.from_seed("witness.example/w1", bytes(range(1, 33)))
ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()


def test_text_format() -> None:
    cp = Checkpoint(ORIGIN, 20852163, ROOT, ("ext one",))
    assert cp.to_text() == f"{ORIGIN}\n20852163\n{ROOT_B64}\next one\n"
    assert Checkpoint.from_text(cp.to_text()) == cp


def test_sign_and_verify() -> None:
    cp = Checkpoint(ORIGIN, 5, ROOT)
    signed = SignedCheckpoint.sign(cp, [LOG, OTHER])
    data = signed.to_bytes()
    assert verify_checkpoint(data, [LOG.verifier], ORIGIN) == cp
    assert SignedCheckpoint.parse(data) == signed
    with pytest.raises(IntegrityError, match=r"checkpoint origin: expected 'example\.com/other'"):
        verify_checkpoint(data, [LOG.verifier], "example.com/other")


def test_signed_by_an_untrusted_key_only() -> None:
    data = SignedCheckpoint.sign(Checkpoint(ORIGIN, 5, ROOT), [OTHER]).to_bytes()
    with pytest.raises(IntegrityError, match="trusted key"):
        verify_checkpoint(data, [LOG.verifier], ORIGIN)


def test_unsigned_checkpoint_is_an_integrity_error() -> None:
    bare = Checkpoint(ORIGIN, 5, ROOT).to_text()
    with pytest.raises(IntegrityError, match="no signature lines"):
        verify_checkpoint(bare, [LOG.verifier], ORIGIN)
    with pytest.raises(IntegrityError, match="no signature lines"):
        SignedCheckpoint.parse(bare.encode())


def test_note_text_must_be_the_checkpoint() -> None:
    cp = Checkpoint(ORIGIN, 5, ROOT)
    note = Note("something else\n", (LOG.sign(b"something else\n"),))
    with pytest.raises(FormatError, match="not the checkpoint"):
        SignedCheckpoint(cp, note)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (f"{ORIGIN}\n5\n{ROOT_B64}", "end with a newline"),
        (f"{ORIGIN}\n5\n", "at least 3 lines"),
        (f"\n5\n{ROOT_B64}\n", "line 1: expected a non-empty line"),
        (f"{ORIGIN}\n05\n{ROOT_B64}\n", "line 2 .*no leading zeros"),
        (f"{ORIGIN}\n-5\n{ROOT_B64}\n", "line 2"),
        (f"{ORIGIN}\n+5\n{ROOT_B64}\n", "line 2"),
        (f"{ORIGIN}\n 5\n{ROOT_B64}\n", "line 2"),
        (f"{ORIGIN}\n5.0\n{ROOT_B64}\n", "line 2"),
        (f"{ORIGIN}\n{2**64}\n{ROOT_B64}\n", "line 2"),
        (f"{ORIGIN}\n{'1' * 30}\n{ROOT_B64}\n", "line 2"),
        (f"{ORIGIN}\n\u0665\n{ROOT_B64}\n", "line 2"),  # Arabic-Indic digit five
        (f"{ORIGIN}\n5\n{ROOT_B64[:-4]}\n", "line 3 .*expected 32 bytes"),
        (f"{ORIGIN}\n5\n{ROOT_B64[:-1]}\n", "line 3 .*base64"),
        (f"{ORIGIN}\n5\n{ROOT_B64[:-2]}9=\n", "line 3 .*canonical base64"),
        (f"{ORIGIN}\n5\n{ROOT_B64}\n\n", "line 4: expected a non-empty line"),
        (f"{ORIGIN}\n5\n{ROOT_B64}\next\n\nmore\n", "line 5: expected a non-empty line"),
    ],
)
def test_malformed_text(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        Checkpoint.from_text(text)


def test_constructor_validates() -> None:
    Checkpoint(ORIGIN, 2**64 - 1, ROOT)
    for args in [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        ("a\x00", 1, ROOT),
        (ORIGIN, -1, ROOT),
        (ORIGIN, 2**64, ROOT),
        (ORIGIN, True, ROOT),
        (ORIGIN, 1, ROOT[:31]),
        (ORIGIN, 1, "root"),
    ]:
        with pytest.raises(FormatError):
            Checkpoint(*args)  # type: ignore[arg-type]
    with pytest.raises(FormatError, match="extension line 0"):
        Checkpoint(ORIGIN, 1, ROOT, ("",))


def test_empty_tree_checkpoint() -> None:
    cp = Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    assert Checkpoint.from_text(cp.to_text()) == cp


def test_every_byte_flip_is_refused() -> None:
    data = SignedCheckpoint.sign(Checkpoint(ORIGIN, 1234, ROOT, ("ext",)), [LOG]).to_bytes()
    for pos in range(len(data)):
        for mask in (0x01, 0x20, 0x80):
            bad = bytearray(data)
            bad[pos] ^= mask
            with pytest.raises((FormatError, IntegrityError)):
                verify_checkpoint(bytes(bad), [LOG.verifier], ORIGIN)


_LINE = st.text(
    st.characters(min_codepoint=0x20, exclude_categories=["Cs"]),
    min_size=1,
    max_size=20,
)


@settings(max_examples=50, deadline=None)
@given(
    origin=_LINE,
    size=st.integers(0, 2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_LINE, max_size=3),
)
def test_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.from_text(cp.to_text()) == cp
    signer = NoteSigner.from_seed("k", bytes(32))
    signed = SignedCheckpoint.sign(cp, [signer])
    assert SignedCheckpoint.parse(signed.to_bytes()) == signed
    assert signed.verify([signer.verifier], origin) == cp
