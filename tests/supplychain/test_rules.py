"""The custody rules and the directory derived from them (in memory, fast)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from computewatch.chip import LOG_ENTRY_PAYLOAD_TYPE
from computewatch.crypto import (
    Envelope,
    EnvelopeSignature,
    KeyID,
    SigningKey,
    VerifyingKey,
    canonical_json,
    sign_envelope,
)
from computewatch.errors import FormatError, IntegrityError
from computewatch.supplychain import (
    ChipStatus,
    CustodyViolation,
    Directory,
    EventKind,
    ReplayError,
    Role,
    Rule,
    UnknownEntity,
    cosign,
    make_request,
    sign_request,
)
from tests.supplychain.world import World, chip_entry

ORIGIN = "unit.test/log"
T0 = 1_700_000_000_000_000


@pytest.fixture
def world() -> World:
    return World(ORIGIN, SigningKey.from_seed(b"r" * 31 + b"!"), clock=lambda: T0 / 1e6)


@pytest.fixture
def d(world: World) -> Directory:
    directory = Directory(ORIGIN, "registrar", world.key("registrar").verifying_key)
    for actor, role in [
        ("fab-1", "fab"),
        ("pack-1", "packager"),
        ("ship-1", "carrier"),
        ("own-1", "owner"),
        ("own-2", "owner"),
        ("insp-1", "verifier"),
    ]:
        directory.submit(world.register(actor, role))
    directory.submit(world.fabricate("fab-1", ["CW-1", "CW-2", "CW-3"]))
    return directory


def ship(world: World, d: Directory, serials: list[str], sender: str, receiver: str) -> None:
    d.submit(world.custody("transfer", sender, serials, to=receiver))
    d.submit(world.custody("receive", receiver, serials))


def test_full_chain_builds_the_directory(world: World, d: Directory) -> None:
    ship(world, d, ["CW-1"], "fab-1", "pack-1")
    ship(world, d, ["CW-1"], "pack-1", "ship-1")
    ship(world, d, ["CW-1"], "ship-1", "own-1")
    d.submit(world.custody("register-owner", "own-1", ["CW-1"], site="dc-east"))
    chip = d.chip("CW-1")
    assert chip is not None
    assert (chip.status, chip.holder, chip.owner, chip.ever_registered) == (
        ChipStatus.HELD,
        "own-1",
        "own-1",
        True,
    )
    kinds = [e.kind for e in d.history("CW-1")]
    assert kinds == [EventKind.FABRICATED] + [EventKind.TRANSFERRED, EventKind.RECEIVED] * 3 + [
        EventKind.REGISTERED
    ]
    assert d.history("CW-1")[-1].details == {"site": "dc-east"}
    assert [e.log_index for e in d.history("CW-1")] == sorted(
        e.log_index for e in d.history("CW-1")
    )


def test_resale_moves_ownership(world: World, d: Directory) -> None:
    ship(world, d, ["CW-1"], "fab-1", "own-1")
    d.submit(world.custody("register-owner", "own-1", ["CW-1"]))
    d.submit(world.custody("resell", "own-1", ["CW-1"], to="own-2"))
    chip = d.chip("CW-1")
    assert chip is not None
    assert (chip.status, chip.owner, chip.pending_to) == (ChipStatus.IN_TRANSIT, None, "own-2")
    d.submit(world.custody("receive", "own-2", ["CW-1"]))
    d.submit(world.custody("register-owner", "own-2", ["CW-1"]))
    assert d.chip("CW-1").owner == "own-2"  # type: ignore[union-attr]


def test_transfer_by_non_holder_is_refused(world: World, d: Directory) -> None:
    with pytest.raises(CustodyViolation, match="expected the holder fab-1, got pack-1") as e:
        d.submit(world.custody("transfer", "pack-1", ["CW-1"], to="own-1"))
    assert e.value.rule is Rule.HOLDER_ONLY


def test_transfer_needs_both_signatures(world: World, d: Directory) -> None:
    one = world.request("transfer", "fab-1", {"serials": ["CW-1"], "to": "own-1"})
    with pytest.raises(IntegrityError, match=r"needs the signatures of fab-1 and own-1.*1/2"):
        d.submit(one)
    two = cosign(Envelope.from_json(one), world.key("own-1"))
    d.submit(two.to_json())
    assert d.chip("CW-1").status is ChipStatus.IN_TRANSIT  # type: ignore[union-attr]


def test_forged_and_unsigned_requests_are_refused(world: World, d: Directory) -> None:
    mallory = SigningKey.generate()
    forged = world.request("damage", "fab-1", {"serials": ["CW-1"]}, signers=[mallory])
    with pytest.raises(IntegrityError, match=r"signed by 0/1 required keys"):
        d.submit(forged)
    env = Envelope.from_json(world.custody("damage", "fab-1", ["CW-1"]))
    unsigned = Envelope(env.payload_type, env.payload, ())
    with pytest.raises(IntegrityError, match=r"0/1"):
        d.submit(unsigned.to_json())
    # a valid signature moved onto an edited payload
    edited = env.payload.replace(b"CW-1", b"CW-2")
    with pytest.raises(IntegrityError, match=r"0/1 required keys"):
        d.submit(Envelope(env.payload_type, edited, env.signatures).to_json())
    bad_sig = EnvelopeSignature(env.signatures[0].keyid, bytes(64))
    with pytest.raises(IntegrityError):
        d.submit(Envelope(env.payload_type, env.payload, (bad_sig,)).to_json())
    assert not d.chip("CW-1").damaged  # type: ignore[union-attr]


def test_replays_are_refused(world: World, d: Directory) -> None:
    data = world.custody("damage", "fab-1", ["CW-1"])
    index = d.submit(data)
    with pytest.raises(ReplayError, match=f"logged at index {index}"):
        d.submit(data)
    old = world.request("damage", "fab-1", {"serials": ["CW-2"]}, counter=1)
    with pytest.raises(ReplayError, match="expected a counter above"):
        d.submit(old)
    other = World("another.registry/log", world.key("registrar"))
    with pytest.raises(ReplayError, match=r"expected registry 'unit\.test/log'"):
        d.submit(
            other.request(
                "damage",
                "fab-1",
                {"serials": ["CW-2"]},
                counter=10**9,
                signers=[world.key("fab-1")],
            )
        )


def test_stale_request_is_refused(world: World, d: Directory) -> None:
    stale = world.request("damage", "fab-1", {"serials": ["CW-1"]}, time_us=T0 - 3_600_000_000)
    with pytest.raises(ReplayError, match="stale or future time"):
        d.submit(stale, now_us=T0)


def test_out_of_order_events_are_refused(world: World, d: Directory) -> None:
    with pytest.raises(
        CustodyViolation, match="expected the chip in transit to own-1, got it held"
    ) as e:
        d.submit(world.custody("receive", "own-1", ["CW-1"]))
    assert e.value.rule is Rule.IN_ORDER
    d.submit(world.custody("transfer", "fab-1", ["CW-1"], to="own-1"))
    with pytest.raises(CustodyViolation, match="expected it received first") as e:
        d.submit(world.custody("register-owner", "own-1", ["CW-1"]))
    assert e.value.rule is Rule.NOT_IN_TRANSIT
    with pytest.raises(CustodyViolation, match="in transit to own-1"):
        d.submit(world.custody("receive", "pack-1", ["CW-1"]))
    earlier = world.request("receive", "own-1", {"serials": ["CW-1"]}, time_us=T0 - 1)
    with pytest.raises(CustodyViolation, match="at or after the chip's last event") as e:
        d.submit(earlier)
    assert e.value.rule is Rule.IN_ORDER


def test_no_double_registration(world: World, d: Directory) -> None:
    with pytest.raises(CustodyViolation, match="already fabricated") as e:
        d.submit(
            world.request(
                "fabricate",
                "fab-1",
                {
                    "chips": [
                        {
                            "serial": "CW-1",
                            "key": SigningKey.generate().verifying_key.raw.hex(),
                            "model": "m",
                        }
                    ]
                },
            )
        )
    assert e.value.rule is Rule.NO_DOUBLE_REGISTRATION
    reused = world.chip_keys["CW-2"].verifying_key.raw.hex()
    with pytest.raises(
        CustodyViolation, match="identity key is already registered to chip S/N CW-2"
    ):
        d.submit(
            world.request(
                "fabricate", "fab-1", {"chips": [{"serial": "CW-9", "key": reused, "model": "m"}]}
            )
        )
    ship(world, d, ["CW-1"], "fab-1", "own-1")
    d.submit(world.custody("register-owner", "own-1", ["CW-1"]))
    with pytest.raises(CustodyViolation, match="already registered to owner own-1"):
        d.submit(world.custody("register-owner", "own-1", ["CW-1"]))
    with pytest.raises(CustodyViolation, match="already registered"):
        d.submit(world.register("fab-1", "fab"))


def test_nothing_after_destruction_or_loss(world: World, d: Directory) -> None:
    d.submit(world.custody("destroy", "fab-1", ["CW-1"]))
    with pytest.raises(CustodyViolation, match="destroyed at log index") as e:
        d.submit(world.custody("transfer", "fab-1", ["CW-1"], to="own-1"))
    assert e.value.rule is Rule.NOTHING_AFTER_DESTRUCTION
    with pytest.raises(CustodyViolation, match="the chip is destroyed"):
        d.submit(world.entry("CW-1", 0))
    d.submit(world.custody("lose", "fab-1", ["CW-2"]))
    with pytest.raises(CustodyViolation) as e:
        d.submit(world.custody("damage", "fab-1", ["CW-2"]))
    assert e.value.rule is Rule.NOTHING_AFTER_LOSS
    # an inspection is an observation and is recorded, flagged, whatever the status
    d.submit(world.custody("inspect", "insp-1", ["CW-1"], found_holder="own-2", seal_intact=True))
    assert d.history("CW-1")[-1].flagged


def test_roles_are_enforced(world: World, d: Directory) -> None:
    with pytest.raises(CustodyViolation, match="expected an actor of role fab") as e:
        d.submit(
            world.request(
                "fabricate",
                "own-1",
                {
                    "chips": [
                        {
                            "serial": "CW-8",
                            "key": SigningKey.generate().verifying_key.raw.hex(),
                            "model": "m",
                        }
                    ]
                },
            )
        )
    assert e.value.rule is Rule.ROLE
    with pytest.raises(CustodyViolation, match="may hold chips"):
        d.submit(world.custody("transfer", "fab-1", ["CW-1"], to="insp-1"))
    ship(world, d, ["CW-1"], "fab-1", "own-1")
    d.submit(world.custody("register-owner", "own-1", ["CW-1"]))
    with pytest.raises(CustodyViolation, match="is a resale"):
        d.submit(world.custody("transfer", "own-1", ["CW-1"], to="own-2"))
    with pytest.raises(CustodyViolation, match="registrar is set by the registry"):
        d.submit(world.register("root-2", "registrar"))


def test_unknown_actor_and_chip(world: World, d: Directory) -> None:
    with pytest.raises(UnknownEntity, match="'nobody' is not registered"):
        d.submit(world.custody("damage", "nobody", ["CW-1"]))
    with pytest.raises(UnknownEntity, match="CW-404 is not in the directory"):
        d.submit(world.custody("damage", "fab-1", ["CW-404"]))


def test_malformed_requests(world: World, d: Directory) -> None:
    with pytest.raises(FormatError, match="unexpected fields"):
        make_request(
            "damage",
            registry=ORIGIN,
            actor="fab-1",
            counter=1,
            time_us=1,
            body={"serials": ["CW-1"], "colour": "red"},
        )
    with pytest.raises(FormatError, match="listed twice"):
        make_request(
            "damage",
            registry=ORIGIN,
            actor="fab-1",
            counter=1,
            time_us=1,
            body={"serials": ["CW-1", "CW-1"]},
        )
    req = make_request(
        "damage",
        registry=ORIGIN,
        actor="fab-1",
        counter=10**6,
        time_us=T0,
        body={"serials": ["CW-1"]},
    )
    wire = json.loads(sign_request(req, [world.key("fab-1")]).to_json())
    spaced = json.dumps(wire, indent=1).encode()
    with pytest.raises(FormatError, match="canonical envelope"):
        d.submit(spaced)
    with pytest.raises(FormatError):
        d.submit(b"not json")


def test_lost_in_transit_is_the_senders(world: World, d: Directory) -> None:
    d.submit(world.custody("transfer", "fab-1", ["CW-1"], to="ship-1"))
    d.submit(world.custody("lose", "ship-1", ["CW-1"]))
    event = d.history("CW-1")[-1]
    assert (event.kind, event.actor, event.counterparty) == (EventKind.LOST, "fab-1", "ship-1")


def test_receipts_idempotent_forks_and_order(world: World, d: Directory) -> None:
    first = d.submit(world.entry("CW-1", 3))
    assert d.submit(world.entry("CW-1", 3)) == first  # a retry changes nothing
    with pytest.raises(ReplayError, match="out of order"):
        d.submit(world.entry("CW-1", 2))
    other = chip_entry(world.chip_keys["CW-1"], "CW-1", 3, time_us=5)
    with pytest.raises(IntegrityError, match="different entry"):
        d.submit(other)
    with pytest.raises(IntegrityError, match="directory's key"):
        d.submit(chip_entry(world.chip_keys["CW-2"], "CW-1", 4))
    with pytest.raises(UnknownEntity, match="never fabricated"):
        d.submit(chip_entry(SigningKey.generate(), "CW-404", 0))


def test_replay_rebuilds_the_same_directory(world: World) -> None:
    live = Directory(ORIGIN, "registrar", world.key("registrar").verifying_key)
    log: list[bytes] = []

    def put(data: bytes) -> None:
        if live.submit(data) == len(log):
            log.append(data)

    for actor, role in [("fab-1", "fab"), ("own-1", "owner"), ("insp-1", "verifier")]:
        put(world.register(actor, role))
    put(world.fabricate("fab-1", ["CW-1", "CW-2"]))
    put(world.custody("transfer", "fab-1", ["CW-1", "CW-2"], to="own-1"))
    put(world.custody("receive", "own-1", ["CW-1", "CW-2"]))
    put(world.custody("register-owner", "own-1", ["CW-1"]))
    put(world.entry("CW-1", 0))
    put(world.entry("CW-1", 0))  # a chip's retry: not a new entry
    put(world.custody("inspect", "insp-1", ["CW-2"], found_holder="own-1", seal_intact=True))
    assert len(log) == 9
    again = Directory.replay(log, ORIGIN, "registrar", world.key("registrar").verifying_key)
    assert again.chips == live.chips
    assert again.actors == live.actors
    assert again.events() == live.events()
    assert again.receipts("CW-1") == live.receipts("CW-1")


def test_replay_catches_a_logged_violation(world: World) -> None:
    reg = world.key("registrar").verifying_key
    bad = [world.register("fab-1", "fab"), world.custody("damage", "fab-1", ["CW-404"])]
    with pytest.raises(
        IntegrityError, match="registry log entry 1: the registry logged a refused request"
    ):
        Directory.replay(bad, ORIGIN, "registrar", reg)
    dup = [world.register("fab-1", "fab"), world.fabricate("fab-1", ["CW-1"])]
    entry = world.entry("CW-1", 0)
    with pytest.raises(IntegrityError, match="a duplicate of entry 2"):
        Directory.replay([*dup, entry, entry], ORIGIN, "registrar", reg)


def test_role_values_cover_the_issue() -> None:
    assert {r.value for r in Role} >= {"fab", "packager", "carrier", "owner", "verifier"}
    assert {k.value for k in EventKind} >= {
        "fabricated",
        "transferred",
        "received",
        "registered",
        "resold",
        "damaged",
        "destroyed",
        "lost",
    }


class _P256:
    """A P-256 signer, like a TPM secure element's identity key."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        raw = self._key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        self.public = VerifyingKey.from_raw(raw)

    @property
    def key_id(self) -> KeyID:
        return self.public.key_id

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message, ec.ECDSA(hashes.SHA256()))


def test_p256_chip_identity_keys(world: World, d: Directory) -> None:
    tpm = _P256()
    d.submit(world.request("fabricate", "fab-1", {"chips": [
        {"serial": "TPM-1", "key": tpm.public.raw.hex(), "model": "cw-tpm"}]}))  # fmt: skip
    doc = {"serial": "TPM-1", "seq": 0, "time_us": 1, "kind": "snapshot", "body": {}, "prev": "x"}
    entry = sign_envelope(LOG_ENTRY_PAYLOAD_TYPE, canonical_json(doc), [tpm]).to_json()
    index = d.submit(entry)
    assert d.receipts("TPM-1")[0].index == index
    forged = sign_envelope(LOG_ENTRY_PAYLOAD_TYPE, canonical_json({**doc, "seq": 1}), [_P256()])
    with pytest.raises(IntegrityError, match="directory's key"):
        d.submit(forged.to_json())
