"""The landmark UDP service on 127.0.0.1, the chip host's client, and the location attacks."""

from __future__ import annotations

import json
import socket
import time
from typing import TYPE_CHECKING

import numpy as np
import pytest

from computewatch.attacks import (
    ATTACKS,
    DelayingRelay,
    LocationDelayedAnswer,
    LocationOtherChipKey,
    LocationRelay,
    LocationReplayedAnswer,
)
from computewatch.errors import CheckUnavailable
from computewatch.supplychain import (
    LandmarkCore,
    LandmarkServer,
    LicensedRegion,
    LocationStatus,
    RegionConstraint,
    check_location,
    measure_at,
    parse_address,
)
from computewatch.verification import VerificationPolicy
from tests.supplychain.location_world import make_answerer, make_world

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from computewatch.chip import LocationAnswerer


@pytest.fixture
def server() -> Iterator[LandmarkServer]:
    world = make_world()
    with LandmarkServer(LandmarkCore("lm-fra", world.keys["lm-fra"], timeout_s=1.0)) as s:
        yield s


@pytest.fixture
def chip(tmp_path: Path) -> LocationAnswerer:
    return make_answerer(tmp_path, "CW-UDP-1")


def _exchange(address: tuple[str, int], data: bytes) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(data, address)
        try:
            return s.recv(9000)
        except TimeoutError:
            return None


def test_a_chip_near_the_landmark_is_measured_and_checked(
    server: LandmarkServer, chip: LocationAnswerer
) -> None:
    envs = measure_at(chip.answer, "CW-UDP-1", server.address, probes=3)
    assert len(envs) == 3
    rtts = [json.loads(e.payload)["rtt_us"] for e in envs]
    assert all(r >= 0 for r in rtts)
    world = make_world()
    region = LicensedRegion("loopback", (RegionConstraint("lm-fra", 40_000.0),))
    check = check_location(
        "CW-UDP-1",
        chip.public_key,
        region,
        world.landmarks,
        envs,
        now_us=time.time_ns() // 1000,
    )
    assert check.inside, check.summary
    assert check.results[0].min_rtt_us == min(rtts)


def test_relayed_distance_shows_in_the_round_trip(
    server: LandmarkServer, chip: LocationAnswerer
) -> None:
    with DelayingRelay(server.address, 0.02) as relay:  # 20 ms each way: >= 4000 km
        envs = measure_at(chip.answer, "CW-UDP-1", relay.address, probes=2)
    assert min(json.loads(e.payload)["rtt_us"] for e in envs) >= 40_000


def test_the_landmark_refuses_small_hellos_bad_datagrams_and_unknown_nonces(
    server: LandmarkServer,
) -> None:
    # a hello smaller than the challenge gets nothing (no amplification)
    assert _exchange(server.address, b'{"t":"hello","serial":"CW-1"}') is None
    # errors, too, are never larger than what asked for them
    assert _exchange(server.address, b"not json") is None
    reply = _exchange(server.address, b"not json" + b" " * 300)
    assert reply is not None
    assert json.loads(reply)["t"] == "error"
    answer = {"t": "answer", "answer": "{}", "pad": "0" * 300}
    reply = _exchange(server.address, json.dumps(answer).encode())
    assert reply is not None
    assert "error" in json.loads(reply)
    assert _exchange(server.address, b'{"t":"other"}') is None
    # a bad serial in a padded hello: an error, and the service keeps serving
    reply = _exchange(
        server.address, json.dumps({"t": "hello", "serial": "", "p": "0" * 600}).encode()
    )
    assert reply is not None
    assert "chip serial" in json.loads(reply)["error"]


def test_a_landmark_that_never_answers_is_unavailable(chip: LocationAnswerer) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        with pytest.raises(CheckUnavailable, match="no measurement"):
            measure_at(chip.answer, "CW-UDP-1", silent.getsockname(), probes=1, timeout_s=0.2)


def test_the_nonce_must_be_answered_from_where_it_was_sent(tmp_path: Path) -> None:
    world = make_world()
    core = LandmarkCore("lm-fra", world.keys["lm-fra"], clock_ns=lambda: 0)
    data = core.challenge("CW-1", ("10.0.0.1", 5))
    nonce = bytes.fromhex(json.loads(data)["nonce"])
    chip = make_answerer(tmp_path, "CW-1")
    answer = chip.answer("lm-fra", nonce).to_json().decode()
    reply = core.handle(json.dumps({"t": "answer", "answer": answer}).encode(), ("10.0.0.2", 5), 10)
    assert reply is not None
    assert "challenge sent to" in json.loads(reply)["error"]


def test_addresses_are_parsed() -> None:
    assert parse_address("127.0.0.1:80") == ("127.0.0.1", 80)
    assert parse_address("[::1]:80") == ("::1", 80)
    for bad in ("127.0.0.1", ":80", "h:99999", "h:x"):
        with pytest.raises(Exception, match="HOST:PORT"):
            parse_address(bad)


@pytest.mark.parametrize(
    ("attack", "statuses"),
    [
        (LocationRelay(), {"outside"}),
        (LocationDelayedAnswer(), {"outside", "unproven"}),
        (LocationReplayedAnswer(), {"rejected", "unproven"}),
        (LocationOtherChipKey(), {"rejected"}),
    ],
    ids=lambda a: getattr(a, "name", ""),
)
def test_each_location_attack_is_caught(tmp_path: Path, attack: object, statuses: set[str]) -> None:
    assert attack.name in {a.name for a in ATTACKS}  # type: ignore[attr-defined]
    attempt = attack.create(tmp_path, 0, [])  # type: ignore[attr-defined]
    result = attack.detect(attempt, VerificationPolicy(), np.random.default_rng(0))  # type: ignore[attr-defined]
    assert result.detected, result
    assert set(result.checks) <= statuses, result
    assert set(result.checks) & set(LocationStatus), result
