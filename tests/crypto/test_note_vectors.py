"""Worked examples of the C2SP specifications (signed-note, tlog-checkpoint, tlog-cosignature).

The examples are restated from the specifications in
``tests/vectors/c2sp_examples.json`` by ``scripts/restate_vectors.py`` (whose
``--check`` tells a maintainer whether they still agree).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from computewatch.crypto._checkpoint import SignedCheckpoint
from computewatch.crypto._note import Note, NoteSigner, NoteVerifier, ed25519_key_id, verify_note
from computewatch.errors import FormatError, IntegrityError

_EXAMPLES = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "c2sp_examples.json").read_text("utf-8")
)["examples"]
DASH = "\u2014"

# signed-note.md, "Verifier keys / Example".
FOO_VKEY: str = _EXAMPLES["foo_vkey"]["text"]
FOO_NOTE: str = _EXAMPLES["foo_note"]["text"]
# signed-note.md, the opening example (no public key is published for it).
QUASIMODO_NOTE: str = _EXAMPLES["quasimodo_note"]["text"]
# tlog-cosignature.md: a checkpoint with a log signature and an Ed25519 cosignature.
SOFA_CHECKPOINT: str = _EXAMPLES["sofa_cosigned_checkpoint"]["text"]


def test_the_two_sofa_examples_agree() -> None:
    # tlog-checkpoint.md shows the same checkpoint with the log's signature only.
    assert SOFA_CHECKPOINT.startswith(_EXAMPLES["sofa_checkpoint"]["text"])
    assert FOO_VKEY.startswith("example.com/foo+530d903a+")


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
