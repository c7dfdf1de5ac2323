"""Worked examples of the C2SP specifications (signed-note, tlog-checkpoint, tlog-cosignature).

The examples are stated here as literals; `test_literals_are_the_specs` checks
that they still appear verbatim in ``shared/vectors/c2sp/``.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from computewatch.crypto._checkpoint import SignedCheckpoint
from computewatch.crypto._note import Note, NoteSigner, NoteVerifier, ed25519_key_id, verify_note
from computewatch.errors import FormatError, IntegrityError

C2SP = Path(__file__).resolve().parents[2] / ".." / "shared" / "vectors" / "c2sp"
DASH = "\u2014"

# signed-note.md, "Verifier keys / Example".
FOO_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
FOO_NOTE = (
    "This is an example message.\n"
    "\n"
    f"{DASH} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3"
    "mFXmRKuwHjG1Yu72IneyaQM=\n"
)
# signed-note.md, the opening example (no public key is published for it).
QUASIMODO_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed \u00e8 subito sera.\n"
    "\n"
    f"{DASH} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKON"
    "rMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)
# tlog-cosignature.md: a checkpoint with a log signature and an Ed25519 cosignature.
SOFA_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    f"{DASH} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Z"
    "hcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    f"{DASH} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJ"
    "sX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


def test_literals_are_the_specs() -> None:
    if not C2SP.is_dir():
        pytest.skip("shared/vectors/c2sp is not beside the checkout")
    note_spec = (C2SP / "signed-note.md").read_text()
    cosig_spec = (C2SP / "tlog-cosignature.md").read_text()
    assert FOO_VKEY in note_spec
    assert FOO_NOTE in note_spec
    assert QUASIMODO_NOTE in note_spec
    assert SOFA_CHECKPOINT in cosig_spec
    assert SOFA_CHECKPOINT.split("\n\n", maxsplit=1)[0] in (C2SP / "tlog-checkpoint.md").read_text()


def test_foo_vkey_verifies_foo_note() -> None:
    verifier = NoteVerifier.from_vkey(FOO_VKEY)
    assert verifier.name == "example.com/foo"
    assert verifier.key_id == 0x530D903A
    assert ed25519_key_id("example.com/foo", verifier.public_key) == 0x530D903A
    assert verifier.vkey == FOO_VKEY
    verified = verify_note(FOO_NOTE.encode(), [verifier])
    assert verified.text == "This is an example message.\n"
    assert Note.parse(FOO_NOTE).to_bytes() == FOO_NOTE.encode()


def test_foo_note_altered_text_is_refused() -> None:
    verifier = NoteVerifier.from_vkey(FOO_VKEY)
    with pytest.raises(IntegrityError):
        verify_note(FOO_NOTE.replace("example message", "example massage").encode(), [verifier])


def test_foo_vkey_does_not_verify_under_another_name() -> None:
    verifier = NoteVerifier.from_vkey(FOO_VKEY)
    renamed = FOO_NOTE.replace(f"{DASH} example.com/foo ", f"{DASH} example.com/bar ")
    with pytest.raises(IntegrityError, match="trusted key"):
        verify_note(renamed.encode(), [verifier])
    wrong_id = FOO_VKEY.replace("530d903a", "530d903b")
    with pytest.raises(FormatError, match="key ID"):
        NoteVerifier.from_vkey(wrong_id)


def test_quasimodo_note_parses() -> None:
    note = Note.parse(QUASIMODO_NOTE.encode())
    assert note.text.endswith("ed \u00e8 subito sera.\n")
    assert "\n\n" in note.text  # the text keeps its own blank line
    (sig,) = note.signatures
    assert sig.name == "quasimodo.example/salvatore"
    raw = base64.b64decode(QUASIMODO_NOTE.rsplit(" ", 1)[1])
    assert sig.key_id == int.from_bytes(raw[:4], "big")
    assert len(sig.signature) == 64
    with pytest.raises(IntegrityError):  # unknown key: no trusted signature
        verify_note(QUASIMODO_NOTE.encode(), [NoteVerifier.from_vkey(FOO_VKEY)])


def test_sofa_checkpoint_parses() -> None:
    signed = SignedCheckpoint.parse(SOFA_CHECKPOINT.encode())
    cp = signed.checkpoint
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    log_sig, cosig = signed.note.signatures
    assert len(log_sig.signature) == 64
    # A timestamped cosignature: 8-byte timestamp then a 64-byte signature.
    assert cosig.name == "witness.example.com/w1"
    assert len(cosig.signature) == 72
    assert signed.to_bytes() == SOFA_CHECKPOINT.encode()


def test_sofa_checkpoint_refused_without_its_log_key() -> None:
    stranger = NoteSigner.from_seed("example.com/behind-the-sofa", bytes(32)).verifier
    with pytest.raises(IntegrityError, match="trusted key"):
        SignedCheckpoint.parse(SOFA_CHECKPOINT).verify([stranger], "example.com/behind-the-sofa")
