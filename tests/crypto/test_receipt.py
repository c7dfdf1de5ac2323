"""Offline receipts in the C2SP tlog-proof format: round trips, verification, tampering."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from computewatch.crypto._checkpoint import Checkpoint, SignedCheckpoint
from computewatch.crypto._log import MerkleLog
from computewatch.crypto._merkle import leaf_hash
from computewatch.crypto._note import Note, NoteSigner
from computewatch.crypto._receipt import RECEIPT_HEADER, Receipt, verify_receipt
from computewatch.errors import FormatError, IntegrityError

ORIGIN = "example.com/log"
LOG = NoteSigner.from_seed(ORIGIN, bytes(range(32)))
MALLORY = NoteSigner.from_seed(ORIGIN, bytes(range(2, 34)))  # same name, other key
WITNESS = NoteSigner.from_seed("witness.example/w1", bytes(range(1, 33)))
ENTRIES = [f"custody event {i}".encode() for i in range(13)]


@pytest.fixture(scope="module")
def log() -> MerkleLog:
    log = MerkleLog.in_memory()
    log.append_many(ENTRIES)
    return log


def test_round_trip_and_verify(log: MerkleLog) -> None:
    receipt = log.receipt(6, log.checkpoint(LOG))
    text = receipt.to_text()
    lines = text.split("\n")
    assert lines[0] == RECEIPT_HEADER
    assert lines[1] == "extra " + base64.b64encode(ENTRIES[6]).decode()
    assert lines[2] == "index 6"
    parsed = Receipt.from_text(text)
    assert parsed == receipt
    assert parsed.to_text() == text
    cp = verify_receipt(parsed, [LOG.verifier], ORIGIN)
    assert (cp.size, cp.root_hash) == (13, log.root())
    verify_receipt(parsed, [LOG.verifier], ORIGIN, entry=ENTRIES[6])
    verify_receipt(parsed, [LOG.verifier], ORIGIN, leaf=leaf_hash(ENTRIES[6]))


def test_receipt_without_entry(log: MerkleLog) -> None:
    receipt = log.receipt(0, log.checkpoint(LOG), include_entry=False)
    text = receipt.to_text()
    assert text.split("\n")[1] == "index 0"
    parsed = Receipt.from_text(text.encode())
    verify_receipt(parsed, [LOG.verifier], ORIGIN, entry=ENTRIES[0])
    with pytest.raises(FormatError, match="no entry given and none carried"):
        verify_receipt(parsed, [LOG.verifier], ORIGIN)
    with pytest.raises(IntegrityError, match="leaf 0 in tree of size 13"):
        verify_receipt(parsed, [LOG.verifier], ORIGIN, entry=ENTRIES[1])


def test_single_entry_log_has_empty_proof() -> None:
    one = MerkleLog.in_memory()
    one.append(b"only")
    receipt = one.receipt(0, one.checkpoint(LOG))
    assert receipt.proof == ()
    verify_receipt(Receipt.from_text(receipt.to_text()), [LOG.verifier], ORIGIN)


def test_entry_mismatch(log: MerkleLog) -> None:
    receipt = log.receipt(2, log.checkpoint(LOG))
    with pytest.raises(IntegrityError, match="other than the expected"):
        verify_receipt(receipt, [LOG.verifier], ORIGIN, entry=ENTRIES[3])
    with pytest.raises(IntegrityError, match="other than the expected"):
        verify_receipt(receipt, [LOG.verifier], ORIGIN, leaf=leaf_hash(ENTRIES[3]))
    with pytest.raises(FormatError, match="got both"):
        verify_receipt(receipt, [LOG.verifier], ORIGIN, entry=b"x", leaf=b"y" * 32)


def test_forged_checkpoint_signature_is_refused(log: MerkleLog) -> None:
    """A valid inclusion path under a checkpoint the log never signed."""
    honest = log.receipt(4, log.checkpoint(LOG))
    forged = SignedCheckpoint.sign(honest.checkpoint.checkpoint, [MALLORY])
    receipt = Receipt(4, honest.proof, forged, ENTRIES[4])
    with pytest.raises(IntegrityError, match="trusted key"):
        verify_receipt(Receipt.from_text(receipt.to_text()), [LOG.verifier], ORIGIN)
    # Claiming the log's key ID with someone else's signature.
    cp = honest.checkpoint.checkpoint
    sig = MALLORY.sign(cp.to_text().encode())
    spoofed = type(sig)(LOG.name, LOG.verifier.key_id, sig.signature)
    receipt = Receipt(4, honest.proof, SignedCheckpoint(cp, Note(cp.to_text(), (spoofed,))))
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_receipt(receipt, [LOG.verifier], ORIGIN)


def test_missing_checkpoint_signature_is_refused(log: MerkleLog) -> None:
    honest = log.receipt(4, log.checkpoint(LOG))
    text = honest.to_text()
    unsigned = text[: text.rindex("\n\n") + 1]  # drop the blank line and the signature
    with pytest.raises(IntegrityError, match="no signature lines"):
        verify_receipt(Receipt.from_text(unsigned), [LOG.verifier], ORIGIN)
    # Only a witness signed: no signature by the log.
    cosigned_only = SignedCheckpoint.sign(honest.checkpoint.checkpoint, [WITNESS])
    receipt = Receipt(4, honest.proof, cosigned_only, ENTRIES[4])
    with pytest.raises(IntegrityError, match="trusted key"):
        verify_receipt(receipt, [LOG.verifier], ORIGIN)


def test_signed_but_wrong_root_is_refused(log: MerkleLog) -> None:
    """The log's key signed a checkpoint, but not of the tree the proof is for."""
    cp = Checkpoint(ORIGIN, 13, leaf_hash(b"not the root"))
    receipt = Receipt(4, log.inclusion_proof(4), SignedCheckpoint.sign(cp, [LOG]), ENTRIES[4])
    with pytest.raises(IntegrityError, match="computed root"):
        verify_receipt(receipt, [LOG.verifier], ORIGIN)


def test_wrong_origin_and_bad_index(log: MerkleLog) -> None:
    other = NoteSigner.from_seed("example.com/other", bytes(32))
    receipt = log.receipt(1, log.checkpoint(other))
    with pytest.raises(IntegrityError, match="origin"):
        verify_receipt(receipt, [other.verifier], ORIGIN)
    good = log.receipt(1, log.checkpoint(LOG))
    past_end = Receipt(13, good.proof, good.checkpoint, ENTRIES[1])
    with pytest.raises(FormatError, match="expected leaf index < tree size"):
        verify_receipt(past_end, [LOG.verifier], ORIGIN)


def _receipt_text(log: MerkleLog) -> str:
    return log.receipt(5, log.checkpoint(LOG)).to_text()


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda t: t.replace(RECEIPT_HEADER, "c2sp.org/tlog-proof@v2"), "line 1"),
        (lambda t: t.replace("index 5", "index 05"), "line 3 \\(index\\)"),
        (lambda t: t.replace("index 5", "index -5"), "line 3 \\(index\\)"),
        (lambda t: t.replace("index 5", "idx 5"), "line 3: expected 'index"),
        (lambda t: t.replace("\nextra ", "\nextra !"), "line 2 \\(extra\\)"),
        (lambda t: t.replace("\n\n", "\n", 1), "line 8 \\(proof hash\\)"),
        (lambda t: t.replace("\n\n", "\n\u00a0\n", 1), "proof hash"),
        (lambda t: t.replace("index 5\n", "index 5\nAAAA\n"), "line 4 .*expected 32 bytes"),
        (lambda t: t.replace("\n\n", "\n\nbad checkpoint\n", 1), "receipt checkpoint"),
        (lambda t: t.replace("index 5", "index\t5"), "control character"),
        (lambda t: t.encode()[:-3] + b"\xff\n", "UTF-8"),
        (lambda t: "\n\n".join(t.split("\n\n")[:1]), "empty line"),
        (lambda t: t.replace("index 5\n", "index 5\n" + ("A" * 43 + "=\n") * 65), "at most 64"),
    ],
)
def test_malformed_receipts(log: MerkleLog, edit: object, match: str) -> None:
    text = edit(_receipt_text(log))  # type: ignore[operator]
    with pytest.raises(FormatError, match=match):
        Receipt.from_text(text)


def test_proof_of_wrong_length(log: MerkleLog) -> None:
    text = _receipt_text(log).replace("index 5\n", "index 5\n" + "A" * 43 + "=\n")
    receipt = Receipt.from_text(text)
    with pytest.raises(FormatError, match="expected 4 hashes, got 5"):
        verify_receipt(receipt, [LOG.verifier], ORIGIN)


def test_constructor_validates(log: MerkleLog) -> None:
    good = log.receipt(1, log.checkpoint(LOG))
    for args in [
        (-1, good.proof),
        (True, good.proof),
        (1, (b"short",)),
        (1, (b"x" * 32,) * 65),
    ]:
        with pytest.raises(FormatError):
            Receipt(args[0], args[1], good.checkpoint)
    with pytest.raises(FormatError, match="receipt entry"):
        Receipt(1, good.proof, good.checkpoint, "entry")  # type: ignore[arg-type]


def test_every_byte_flip_is_refused(log: MerkleLog) -> None:
    data = log.receipt(5, log.checkpoint(LOG)).to_text().encode()
    for pos in range(len(data)):
        for mask in (0x01, 0x80):
            bad = bytearray(data)
            bad[pos] ^= mask
            with pytest.raises((FormatError, IntegrityError)):
                verify_receipt(Receipt.from_text(bytes(bad)), [LOG.verifier], ORIGIN)
            with pytest.raises((FormatError, IntegrityError)):
                verify_receipt(
                    Receipt.from_text(bytes(bad)), [LOG.verifier], ORIGIN, entry=ENTRIES[5]
                )


@settings(max_examples=40, deadline=None)
@given(entries=st.lists(st.binary(max_size=40), min_size=1, max_size=40), data=st.data())
def test_round_trip_property(entries: list[bytes], data: st.DataObject) -> None:
    log = MerkleLog.in_memory()
    log.append_many(entries)
    size = data.draw(st.integers(1, len(entries)))
    index = data.draw(st.integers(0, size - 1))
    checkpoint = SignedCheckpoint.sign(Checkpoint(ORIGIN, size, log.root(size)), [LOG, WITNESS])
    receipt = log.receipt(index, checkpoint, include_entry=data.draw(st.booleans()))
    parsed = Receipt.from_text(receipt.to_text())
    assert parsed == receipt
    cp = verify_receipt(parsed, [LOG.verifier], ORIGIN, entry=entries[index])
    assert cp.size == size


def test_oversized_receipt() -> None:
    with pytest.raises(FormatError, match="at most"):
        Receipt.from_text(b"x" * (2 * 2**20 + 1))
