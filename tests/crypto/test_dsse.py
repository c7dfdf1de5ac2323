"""Behaviour of DSSE envelopes: signing, verification, parsing and tampering."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from computewatch.crypto import (
    MAX_ENVELOPE_BYTES,
    Envelope,
    EnvelopeSignature,
    KeyID,
    SigningKey,
    VerifiedPayload,
    VerifyingKey,
    sign_envelope,
    verify_envelope,
)
from computewatch.crypto._dsse import MAX_SIGNATURES
from computewatch.crypto.hazmat import pae, sign_pae, verify_pae
from computewatch.errors import FormatError, IntegrityError, ParameterError

TYPE = "application/vnd.computewatch.test+json"
PAYLOAD = b'{"kind":"snapshot","seq":17}'
KEYS = [SigningKey.from_seed(bytes([i]) * 32) for i in range(1, 4)]
TRUSTED: dict[KeyID, VerifyingKey] = {k.key_id: k.verifying_key for k in KEYS}


def signed(*keys: SigningKey) -> Envelope:
    return sign_envelope(TYPE, PAYLOAD, list(keys))


def test_round_trip() -> None:
    envelope = signed(KEYS[0])
    verified = verify_envelope(envelope, TRUSTED)
    assert verified == VerifiedPayload(TYPE, PAYLOAD, (KEYS[0].key_id,))
    assert verify_envelope(envelope.to_json(), TRUSTED) == verified
    assert verify_envelope(envelope.to_json().decode(), TRUSTED, payload_type=TYPE) == verified


def test_signature_is_over_pae() -> None:
    envelope = signed(KEYS[0])
    (signature,) = envelope.signatures
    assert signature.keyid == KEYS[0].key_id
    KEYS[0].verifying_key.verify(signature.sig, pae(TYPE, PAYLOAD))
    assert sign_pae(KEYS[0], TYPE, PAYLOAD) == signature.sig
    verify_pae(KEYS[0].verifying_key, signature.sig, TYPE, PAYLOAD)
    with pytest.raises(IntegrityError):
        verify_pae(KEYS[0].verifying_key, signature.sig, TYPE + "x", PAYLOAD)


def test_wire_form() -> None:
    envelope = signed(KEYS[0])
    doc = json.loads(envelope.to_json())
    assert list(doc) == ["payload", "payloadType", "signatures"]
    assert base64.b64decode(doc["payload"], validate=True) == PAYLOAD
    assert doc["signatures"] == [
        {"keyid": KEYS[0].key_id, "sig": base64.b64encode(envelope.signatures[0].sig).decode()}
    ]
    assert b" " not in envelope.to_json()


def test_threshold() -> None:
    two = signed(KEYS[0], KEYS[1])
    verified = verify_envelope(two, TRUSTED, threshold=2)
    assert verified.key_ids == (KEYS[0].key_id, KEYS[1].key_id)
    with pytest.raises(IntegrityError, match="envelope signed by 2/3 required keys"):
        verify_envelope(two, TRUSTED, threshold=3)


def test_duplicate_signatures_count_once() -> None:
    one = signed(KEYS[0])
    doubled = Envelope(TYPE, PAYLOAD, one.signatures * 2)
    with pytest.raises(IntegrityError, match="signed by 1/2 required keys"):
        verify_envelope(doubled, TRUSTED, threshold=2)
    # Two trusted ids for one public key are still one key.
    aliased = {KeyID("a"): KEYS[0].verifying_key, KeyID("b"): KEYS[0].verifying_key}
    with pytest.raises(ParameterError, match="threshold <= 1 distinct"):
        verify_envelope(doubled, aliased, threshold=2)


def test_unknown_and_empty_key_ids_are_skipped() -> None:
    stranger = SigningKey.from_seed(bytes([9]) * 32)
    envelope = signed(stranger)
    with pytest.raises(IntegrityError) as info:
        verify_envelope(envelope, TRUSTED)
    assert info.value.message.startswith(
        f"envelope signed by 0/1 required keys (key ids seen: {stranger.key_id!r}"
    )
    # A valid signature by a trusted key, but without its key id, does not count.
    sig = envelope_sig = signed(KEYS[0]).signatures[0].sig
    anonymous = Envelope(TYPE, PAYLOAD, (EnvelopeSignature("", envelope_sig),))
    with pytest.raises(IntegrityError, match="key ids seen: ''"):
        verify_envelope(anonymous, TRUSTED)
    # Labelled with another trusted key's id: checked against that key, fails.
    mislabelled = Envelope(TYPE, PAYLOAD, (EnvelopeSignature(KEYS[1].key_id, sig),))
    with pytest.raises(
        IntegrityError, match=f"bad signatures from trusted key ids: '{KEYS[1].key_id}'"
    ):
        verify_envelope(mislabelled, TRUSTED)


def test_no_signatures() -> None:
    with pytest.raises(IntegrityError, match=r"signed by 0/1 required keys \(key ids seen: none"):
        verify_envelope(Envelope(TYPE, PAYLOAD, ()), TRUSTED)


def test_error_lists_at_most_a_few_key_ids() -> None:
    noise = tuple(EnvelopeSignature("x" * 500, b"") for _ in range(20))
    with pytest.raises(IntegrityError) as info:
        verify_envelope(Envelope(TYPE, PAYLOAD, noise), TRUSTED)
    assert "… 12 more" in info.value.message
    assert len(info.value.message) < 1200


def test_expected_payload_type() -> None:
    envelope = signed(KEYS[0])
    with pytest.raises(IntegrityError, match="envelope payload type: expected 'other', got"):
        verify_envelope(envelope, TRUSTED, payload_type="other")


@pytest.mark.parametrize("threshold", [0, -1, 4, True])
def test_bad_thresholds(threshold: int) -> None:
    with pytest.raises(ParameterError, match="envelope threshold"):
        verify_envelope(signed(KEYS[0]), TRUSTED, threshold=threshold)


def test_empty_trust_is_an_error() -> None:
    with pytest.raises(ParameterError, match="threshold <= 0 distinct trusted keys"):
        verify_envelope(signed(KEYS[0]), {})


def test_sign_envelope_parameters() -> None:
    with pytest.raises(ParameterError, match="expected at least 1, got 0"):
        sign_envelope(TYPE, PAYLOAD, [])
    with pytest.raises(ParameterError, match="expected distinct keys"):
        sign_envelope(TYPE, PAYLOAD, [KEYS[0], KEYS[0]])
    with pytest.raises(FormatError, match="lone surrogate"):
        sign_envelope("\ud800", PAYLOAD, [KEYS[0]])


def test_envelope_constructor_normalises() -> None:
    envelope = Envelope(TYPE, bytearray(b"x"), [EnvelopeSignature("k", bytearray(b"s"))])  # type: ignore[arg-type]
    assert envelope.payload == b"x"
    assert isinstance(envelope.signatures, tuple)
    assert envelope.signatures[0].sig == b"s"
    hash(envelope)
    with pytest.raises(FormatError, match="lone surrogate"):
        Envelope("\udc00", b"", ())


signatures = st.lists(
    st.builds(EnvelopeSignature, st.text(max_size=20), st.binary(max_size=80)), max_size=3
)
envelopes = st.builds(
    Envelope, st.text(max_size=40), st.binary(max_size=200), signatures.map(tuple)
)


@given(envelopes)
def test_json_round_trip(envelope: Envelope) -> None:
    wire = envelope.to_json()
    assert Envelope.from_json(wire) == envelope
    assert Envelope.from_json(wire.decode("ascii")) == envelope
    assert Envelope.from_json(wire).to_json() == wire


def _doc(**overrides: Any) -> str:
    doc = json.loads(signed(KEYS[0]).to_json())
    doc.update(overrides)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("wire", "fragment"),
    [
        ("not json", "expected UTF-8 JSON"),
        ("[]", "expected a JSON object, got list"),
        (b"\xff{}", "expected UTF-8 JSON"),
        ('{"payload": "", "payloadType": "t"}', "'signatures': expected a list, got nothing"),
        ('{"payloadType": "t", "signatures": []}', "'payload': expected a str, got nothing"),
        ('{"payload": "", "signatures": []}', "'payloadType': expected a str"),
        (_doc(payload=5), "'payload': expected a str, got int"),
        (_doc(payloadType=None), "'payloadType': expected a str, got NoneType"),
        (_doc(signatures={}), "'signatures': expected a list, got dict"),
        (_doc(signatures=["x"]), "'signatures\\[0\\]': expected an object, got str"),
        (_doc(signatures=[{"keyid": "k"}]), "'signatures\\[0\\].sig': expected a str, got nothing"),
        (_doc(signatures=[{"sig": "", "keyid": 1}]), "'signatures\\[0\\].keyid': expected a str"),
        (_doc(signatures=[{"sig": "@@@@"}]), "'signatures\\[0\\].sig': expected base64"),
        (_doc(payload="aGVsbG8gd29ybGQ"), None),  # unpadded is accepted
        (_doc(payload="aGVsbG8gd29ybGR="), "non-canonical"),  # stray padding bits
        (_doc(payload="a+b_"), "non-canonical"),  # mixed alphabets
        (_doc(payload="aGVsbG8gd29ybA="), "partial padding"),  # one of two "=" cut
        (_doc(payload="aGVsbG8=gd29y"), "expected base64"),
        (_doc(payload="aGVsbG8gd29ybGQ=="), "expected base64"),
        (_doc(payload="é"), "expected base64"),
        (
            '{"payload": "", "payload": "", "payloadType": "", "signatures": []}',
            "duplicate JSON key",
        ),
        ('{"payload": "", "payloadType": "", "signatures": [], "x": NaN}', "constant NaN"),
        ('{"payload": "", "payloadType": "\\ud800", "signatures": []}', "lone surrogate"),
        ("[" * 100_000 + "]" * 100_000, "expected UTF-8 JSON"),
    ],
)
def test_from_json_rejects(wire: str | bytes, fragment: str | None) -> None:
    if fragment is None:
        assert Envelope.from_json(wire).payload == b"hello world"
        return
    with pytest.raises(FormatError, match=fragment):
        Envelope.from_json(wire)


def test_from_json_accepts_url_safe_base64_and_ignores_unknown_fields() -> None:
    sig = b"\xfb\xff\xfe" * 3
    wire = json.dumps(
        {
            "payload": base64.urlsafe_b64encode(b"\xfb\xff").decode().rstrip("="),
            "payloadType": "t",
            "signatures": [{"sig": base64.urlsafe_b64encode(sig).decode(), "extra": 1}],
            "future": {"field": True},
        }
    )
    envelope = Envelope.from_json(wire)
    assert envelope == Envelope("t", b"\xfb\xff", (EnvelopeSignature("", sig),))


def test_size_limits() -> None:
    with pytest.raises(FormatError, match=f"expected at most {MAX_ENVELOPE_BYTES} bytes"):
        Envelope.from_json(b" " * (MAX_ENVELOPE_BYTES + 1))
    too_many = [{"sig": ""}] * (MAX_SIGNATURES + 1)
    with pytest.raises(FormatError, match=f"'signatures': expected at most {MAX_SIGNATURES}"):
        Envelope.from_json(json.dumps({"payload": "", "payloadType": "", "signatures": too_many}))


def _outcome(wire: bytes, threshold: int = 1) -> type[Exception] | None:
    try:
        verify_envelope(wire, TRUSTED, threshold)
    except (IntegrityError, FormatError) as e:
        return type(e)
    return None


def test_every_single_bit_flip_is_caught() -> None:
    """Flip each bit of the serialized envelope: tampered or malformed, never accepted."""
    wire = signed(KEYS[0], KEYS[1]).to_json()
    assert _outcome(wire, threshold=2) is None
    seen: set[type[Exception] | None] = set()
    for position in range(len(wire)):
        for bit in range(8):
            tampered = bytearray(wire)
            tampered[position] ^= 1 << bit
            outcome = _outcome(bytes(tampered), threshold=2)
            assert outcome is not None, f"accepted a flip of bit {bit} at byte {position}"
            seen.add(outcome)
    assert seen == {IntegrityError, FormatError}


@pytest.mark.parametrize("field", ["payload", "sig", "payloadType"])
def test_flips_of_signed_content_are_integrity_errors(field: str) -> None:
    envelope = signed(KEYS[0])
    original = envelope.signatures[0]
    target = {"payload": envelope.payload, "sig": original.sig, "payloadType": TYPE.encode()}[field]
    for bit in range(len(target) * 8):
        flipped = bytearray(target)
        flipped[bit // 8] ^= 1 << (bit % 8)
        if field == "payload":
            tampered = Envelope(TYPE, bytes(flipped), envelope.signatures)
        elif field == "sig":
            tampered = Envelope(TYPE, PAYLOAD, (EnvelopeSignature(original.keyid, bytes(flipped)),))
        else:
            try:
                text = flipped.decode("utf-8")
            except UnicodeDecodeError:
                continue
            tampered = Envelope(text, PAYLOAD, envelope.signatures)
        with pytest.raises(IntegrityError, match="signed by 0/1 required keys"):
            verify_envelope(tampered.to_json(), TRUSTED)


WIRE = signed(KEYS[0]).to_json()


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_corruption_is_caught(data: st.DataObject) -> None:
    wire = bytearray(WIRE)
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(wire) - 1))
        wire[position] = (wire[position] + data.draw(st.integers(1, 255))) % 256
    if data.draw(st.booleans()):
        del wire[data.draw(st.integers(0, len(wire) - 1))]
    assume(bytes(wire) != WIRE)  # two changes of one byte can cancel out
    outcome = _outcome(bytes(wire))
    assert outcome in {IntegrityError, FormatError}
