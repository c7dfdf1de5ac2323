"""tlog-policy parsing and quorum evaluation, and a client's accepted-checkpoint memory."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.crypto import c2sp_facts as spec

from computewatch.crypto import (
    Checkpoint,
    CosignatureKind,
    Cosigner,
    MerkleLog,
    NoteSignature,
    NoteSigner,
    Policy,
    QuorumNotMet,
    Receipt,
    RollbackError,
    SignedCheckpoint,
    TrustedCheckpoints,
    verify_receipt,
)
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from pathlib import Path

ORIGIN = "log.test/registry"
LOG = NoteSigner.from_seed(ORIGIN, bytes(range(32)))
W = {
    n: Cosigner.from_seed(f"{n.lower()}.test", CosignatureKind.ED25519, bytes([i + 1]) * 32)
    for i, n in enumerate(["X1", "X2", "X3", "Y1", "Y2", "Y3"])
}
W1_SEED = bytes([1]) * 32
ML = Cosigner.from_seed("ml.test", CosignatureKind.MLDSA44, bytes(range(1, 33)))


def _example() -> Policy:
    return Policy.parse(
        spec.POLICY_EXAMPLE.format(
            log=LOG.verifier.vkey, **{k.lower(): c.key.vkey for k, c in W.items()}
        )
    )


def _cosigned(
    names: list[str], size: int = 0, extra: tuple[Cosigner, ...] = ()
) -> SignedCheckpoint:
    log = MerkleLog.in_memory()
    log.append_many([bytes([i]) for i in range(size)])
    signed = log.checkpoint(LOG)
    cp = signed.checkpoint
    return signed.with_signatures(
        [W[n].cosign(cp, timestamp=1000) for n in names]
        + [c.cosign(cp, timestamp=1000) for c in extra]
    )


# --- parsing -------------------------------------------------------------------------


def test_spec_example_parses() -> None:
    policy = _example()
    assert [g.key for g in policy.logs] == [LOG.verifier]
    assert [w.name for w in policy.witnesses] == ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
    groups = {g.name: (g.threshold, g.members) for g in policy.groups}
    assert groups == {
        "X-witnesses": (2, ("X1", "X2", "X3")),
        "Y-witnesses": (1, ("Y1", "Y2", "Y3")),
        "X-and-Y": (2, ("X-witnesses", "Y-witnesses")),
    }
    assert policy.quorum == "X-and-Y"
    assert Policy.parse(policy.to_text()) == policy


@pytest.mark.parametrize(
    ("witnessed", "ok"),
    [
        ({"X1", "X2", "Y3"}, True),
        ({"X1", "X3", "Y1", "Y2"}, True),
        ({"X1", "X2"}, False),  # no Y
        ({"X1", "Y1", "Y2", "Y3"}, False),  # one X only
        (set(), False),
        ({"X1", "X2", "X3", "Y1", "Y2", "Y3"}, True),
    ],
)
def test_nested_quorum(witnessed: set[str], *, ok: bool) -> None:
    assert _example().satisfied(witnessed) is ok


def _w(name: str) -> str:
    return f"witness {name} {W[name].key.vkey}\n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "quorum"),
        (_w("X1") + "quorum X1\nquorum X1\n", "exactly one quorum"),
        (_w("X1") + "quorum X2\n", "not a witness or group"),
        ("quorum X1\n" + _w("X1"), "not a witness or group"),  # use before definition
        (_w("X1") + _w("X2").replace("X2", "X1", 1) + "quorum X1\n", "already defined"),
        (_w("X1") + f"witness X9 {W['X1'].key.vkey}\nquorum X1\n", "duplicate public key"),
        (
            f"log {LOG.verifier.vkey}\nlog {LOG.verifier.vkey}\nquorum none\n",
            "duplicate public key",
        ),
        # the same key under another name and key ID is still a duplicate
        (
            _w("X1")
            + f"witness X9 {Cosigner.from_seed('o', CosignatureKind.ED25519, W1_SEED).key.vkey}\n"
            + "quorum X1\n",
            "duplicate",
        ),
        (_w("X1") + "group g 0 X1\nquorum g\n", "1 <= k <= 1"),
        (_w("X1") + "group g 2 X1\nquorum g\n", "1 <= k <= 1"),
        (_w("X1") + "group g 01 X1\nquorum g\n", "threshold"),
        (_w("X1") + "group g most X1\nquorum g\n", "threshold"),
        (_w("X1") + "group g any\nquorum none\n", ">= 1 member"),
        (_w("X1") + "group g any X1 X1\nquorum g\n", "already listed"),
        (_w("X1") + _w("X2") + "group g any X1\ngroup h any X1 X2\nquorum h\n", "already listed"),
        (_w("X1") + "group g any none\nquorum none\n", "not a witness or group"),
        (_w("X1") + "group none any X1\nquorum none\n", "reserved"),
        (f"witness none {W['X1'].key.vkey}\nquorum none\n", "reserved"),
        (_w("X1") + "group g any g\nquorum g\n", "not a witness or group"),  # self-reference
        ("monitor m\nquorum none\n", "unknown keyword"),
        (f"witness X1 {LOG.verifier.vkey}\nquorum none\n", "0x04"),  # a log key as a witness
        (f"log {W['X1'].key.vkey}\nquorum none\n", "log key"),  # a witness key as a log
        (f"witness X1 {W['X1'].key.vkey} https://a https://b\nquorum none\n", "at most 4"),
        ("quorum none\r\n", "control character 0x0d"),
        ("quorum\x00 none\n", "control character 0x00"),
        ("quorum none extra\n", "quorum <name>"),
    ],
)
def test_bad_policies_are_refused(text: str, match: str) -> None:
    with pytest.raises(FormatError, match=match):
        Policy.parse(text)


def test_comments_tabs_urls_and_opaque_names() -> None:
    kelvin = "\u212a"
    text = (
        "# a comment\n"
        f"  \tlog\t{LOG.verifier.vkey} https://log.test/\n"
        "\n"
        f"witness K {W['X1'].key.vkey}\n"
        f"witness {kelvin} {W['X2'].key.vkey} https://w2.test/\n"
        f"group both all K {kelvin}  # not a comment: '#' only at a line's start\n"
    )
    with pytest.raises(FormatError, match="not a witness or group"):
        Policy.parse(text + "quorum both\n")  # '#', 'not', ... are taken as member names
    policy = Policy.parse(text.rsplit("  #", 1)[0] + "\nquorum both\n")
    assert policy.logs[0].url == "https://log.test/"
    assert [w.name for w in policy.witnesses] == ["K", kelvin]  # different names
    assert not policy.satisfied({"K"})
    assert policy.satisfied({"K", kelvin})


def test_limits() -> None:
    with pytest.raises(FormatError, match="at most"):
        Policy.parse(b"#" * (1 << 17))


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_raise_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        Policy.parse(data)


# --- evaluation ----------------------------------------------------------------------


def test_verify_counts_only_valid_known_cosignatures() -> None:
    policy = _example()
    stranger = Cosigner.generate("stranger.test")
    ok = policy.verify(_cosigned(["X1", "X3", "Y2"], 3, (stranger,)).to_bytes(), ORIGIN)
    assert ok.witnesses == {"X1", "X3", "Y2"}
    assert ok.checkpoint.size == 3
    with pytest.raises(QuorumNotMet, match="2/6"):
        policy.verify(_cosigned(["X1", "X2"], 3).to_bytes(), ORIGIN)


def test_a_known_witness_bad_cosignature_is_tampering() -> None:
    signed = _cosigned(["X1", "X2", "Y1"])
    lines = list(signed.note.signatures)
    bad = lines[1]
    lines[1] = NoteSignature(
        bad.name, bad.key_id, bad.signature[:-1] + bytes([bad.signature[-1] ^ 1])
    )
    forged = SignedCheckpoint(signed.checkpoint, type(signed.note)(signed.note.text, tuple(lines)))
    with pytest.raises(IntegrityError, match=r"X1|X2"):
        _example().verify(forged, ORIGIN)


def test_log_signature_and_origin_are_required() -> None:
    policy = _example()
    with pytest.raises(IntegrityError, match="no log"):
        policy.verify(_cosigned(["X1", "X2", "Y1"]), "other.test/log")
    stranger = NoteSigner.generate(ORIGIN)
    signed = SignedCheckpoint.sign(Checkpoint(ORIGIN, 0, MerkleLog.in_memory().root()), [stranger])
    with pytest.raises(IntegrityError, match="trusted key"):
        policy.verify(
            signed.with_signatures([W[n].cosign(signed.checkpoint, timestamp=1) for n in W]), ORIGIN
        )


def test_future_cosignatures_do_not_count_when_a_clock_is_given() -> None:
    text = f"log {LOG.verifier.vkey}\n{_w('X1')}quorum X1\n"
    policy = Policy.parse(text)
    signed = _cosigned(["X1"])  # stamped 1000
    assert policy.verify(signed, ORIGIN, now=1000).witnesses == {"X1"}
    with pytest.raises(QuorumNotMet):
        policy.verify(signed, ORIGIN, now=1000 - 301)


def test_mldsa_witness_in_a_policy() -> None:
    policy = Policy.parse(f"log {LOG.verifier.vkey}\nwitness M {ML.key.vkey}\nquorum M\n")
    assert policy.verify(_cosigned([], 2, (ML,)), ORIGIN).witnesses == {"M"}


def test_quorum_none_accepts_the_log_alone() -> None:
    assert Policy.for_logs([LOG.verifier]).verify(_cosigned([]), ORIGIN).witnesses == frozenset()


def test_receipt_under_a_policy_is_an_offline_bundle() -> None:
    log = MerkleLog.in_memory()
    log.append_many([b"a", b"b", b"c"])
    signed = log.checkpoint(LOG)
    cp = signed.checkpoint
    cosigned = signed.with_signatures([W[n].cosign(cp, timestamp=5) for n in ("X1", "X2", "Y3")])
    receipt = Receipt.from_text(Receipt(1, log.inclusion_proof(1), cosigned, b"b").to_text())
    assert verify_receipt(receipt, _example(), ORIGIN).size == 3
    thin = Receipt(1, log.inclusion_proof(1), signed, b"b")
    with pytest.raises(QuorumNotMet):
        verify_receipt(thin, _example(), ORIGIN)


# --- the client's memory -------------------------------------------------------------


def test_trusted_checkpoints_refuse_rollback_and_forks(tmp_path: Path) -> None:
    policy = Policy.for_logs([LOG.verifier])
    log = MerkleLog.in_memory()
    log.append_many([b"a", b"b", b"c"])
    at3 = log.checkpoint(LOG)
    log.append_many([b"d", b"e"])
    at5 = log.checkpoint(LOG)
    with TrustedCheckpoints.open(tmp_path / "state.db", policy) as trusted:
        trusted.accept(at3, ORIGIN)
        trusted.accept(at5, ORIGIN, log.consistency_proof)
        with pytest.raises(RollbackError):
            trusted.accept(at3, ORIGIN)
    fork = MerkleLog.in_memory()
    fork.append_many([b"a", b"b", b"c", b"D", b"e"])
    with TrustedCheckpoints.open(tmp_path / "state.db", policy) as trusted:  # it persisted
        assert trusted.latest(ORIGIN) == at5.checkpoint
        with pytest.raises(IntegrityError, match="split view"):
            trusted.accept(fork.checkpoint(LOG), ORIGIN)
        fork.append_many([b"f"])
        with pytest.raises(IntegrityError):
            trusted.accept(fork.checkpoint(LOG), ORIGIN, fork.consistency_proof)
        log.append_many([b"f"])
        with pytest.raises(FormatError, match="consistency proof"):
            trusted.accept(log.checkpoint(LOG), ORIGIN)
        assert trusted.latest(ORIGIN) == at5.checkpoint
