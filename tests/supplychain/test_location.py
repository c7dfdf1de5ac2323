"""Location checks: bounds, regions, refused evidence, the check log and its findings."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import json
from typing import TYPE_CHECKING

import numpy as np
import pytest

from computewatch.chip import Chip, LocationAnswerer, sign_firmware
from computewatch.crypto import Envelope, MerkleLog, SigningKey, sign_envelope
from computewatch.errors import FormatError, IntegrityError, ParameterError, VerificationFailed
from computewatch.inspection import DirectoryRecord, inspect_chip
from computewatch.supplychain import (
    MEASUREMENT_TYPE,
    Directory,
    DiscrepancyKind,
    Landmark,
    LicensedRegion,
    LocationLog,
    LocationStatus,
    ReplayError,
    ReportPolicy,
    UnknownEntity,
    check_location,
    find_discrepancies,
    great_circle_km,
    rtt_bound_km,
    schedule_checks,
    verify_location,
)
from tests.supplychain.location_world import NOW_US, PLACES, make_answerer, make_world
from tests.supplychain.world import World as SupplyWorld

if TYPE_CHECKING:
    from pathlib import Path

INSIDE = {"lm-fra": 1_500, "lm-ams": 9_000, "lm-par": 10_000}


@pytest.fixture
def chip(tmp_path: Path) -> LocationAnswerer:
    return make_answerer(tmp_path, "CW-LOC-A")


def test_bound_is_100_km_per_ms_of_round_trip_and_distances_are_great_circles() -> None:
    assert rtt_bound_km(1_000) == 100.0
    assert rtt_bound_km(0) == 0.0
    assert rtt_bound_km(1_000, 149.896229) == pytest.approx(149.896229)
    with pytest.raises(ParameterError, match="round trip"):
        rtt_bound_km(-1)
    fra, par = PLACES["lm-fra"], PLACES["lm-par"]
    assert great_circle_km(*fra, *par) == pytest.approx(479, abs=3)  # Frankfurt-Paris


def test_inside_when_every_landmark_bounds_the_chip_within_its_radius(
    chip: LocationAnswerer,
) -> None:
    world = make_world()
    envs = world.measure(chip.answer, "CW-LOC-A", INSIDE)
    check = check_location(
        "CW-LOC-A", chip.public_key, world.region, world.landmarks, envs, now_us=NOW_US
    )
    assert check.inside, check.summary
    assert check.status is LocationStatus.INSIDE
    assert [r.bound_km for r in check.results] == [150.0, 900.0, 1000.0]
    assert verify_location(
        "CW-LOC-A", chip.public_key, world.region, world.landmarks, envs, now_us=NOW_US
    )


def test_the_smallest_round_trip_counts_and_one_long_one_flags(chip: LocationAnswerer) -> None:
    world = make_world()
    envs = world.measure(chip.answer, "CW-LOC-A", INSIDE)
    envs += world.measure(chip.answer, "CW-LOC-A", {"lm-fra": 90_000})  # a slow probe
    check = check_location(
        "CW-LOC-A", chip.public_key, world.region, world.landmarks, envs, now_us=NOW_US
    )
    assert check.inside
    far = world.measure(chip.answer, "CW-LOC-A", INSIDE | {"lm-fra": 4_100})
    check = check_location(
        "CW-LOC-A", chip.public_key, world.region, world.landmarks, far, now_us=NOW_US
    )
    assert check.status is LocationStatus.OUTSIDE
    assert "lm-fra: <= 410 km of 400 km allowed" in check.summary
    with pytest.raises(VerificationFailed, match="outside"):
        verify_location(
            "CW-LOC-A", chip.public_key, world.region, world.landmarks, far, now_us=NOW_US
        )


def test_a_landmark_without_measurement_leaves_the_check_unproven(chip: LocationAnswerer) -> None:
    world = make_world()
    envs = world.measure(chip.answer, "CW-LOC-A", {"lm-fra": 1_000, "lm-ams": 1_000})
    check = check_location(
        "CW-LOC-A", chip.public_key, world.region, world.landmarks, envs, now_us=NOW_US
    )
    assert check.status is LocationStatus.UNPROVEN
    assert not check


def test_another_chips_answer_is_rejected(tmp_path: Path, chip: LocationAnswerer) -> None:
    world = make_world()
    decoy = make_answerer(tmp_path, "CW-LOC-B")
    envs = world.measure(decoy.answer, "CW-LOC-A", INSIDE)
    check = check_location(
        "CW-LOC-A", chip.public_key, world.region, world.landmarks, envs, now_us=NOW_US
    )
    assert check.status is LocationStatus.REJECTED
    assert "not signed by chip CW-LOC-A's registered key" in check.summary


def test_replayed_answers_and_measurements_are_rejected(chip: LocationAnswerer) -> None:
    world = make_world()
    old = world.measure(chip.answer, "CW-LOC-A", INSIDE)
    seen: set[str] = set()
    args = ("CW-LOC-A", chip.public_key, world.region, world.landmarks)
    assert check_location(*args, old, now_us=NOW_US, seen_nonces=seen).inside
    again = check_location(*args, old, now_us=NOW_US + 1, seen_nonces=seen)
    assert again.status is LocationStatus.REJECTED
    assert "used by an earlier check" in again.summary
    stale = check_location(*args, old, now_us=NOW_US + 3_600_000_000)
    assert stale.status is LocationStatus.REJECTED
    assert "outside the check window" in stale.summary
    # an old answer to a new nonce: the landmark itself refuses it
    answers = {json.loads(e.payload)["landmark"]: json.loads(e.payload)["answer"] for e in old}
    with pytest.raises(ReplayError, match="unknown or answered"):
        world.measure(lambda lm, _n: Envelope.from_json(answers[lm]), "CW-LOC-A", INSIDE)
    # and a measurement pairing a new nonce with an old answer is refused by the check
    doc = json.loads(old[0].payload) | {"nonce": "ab" * 16}
    paired = sign_envelope(MEASUREMENT_TYPE, json.dumps(doc).encode(), [world.keys["lm-fra"]])
    check = check_location(*args, [paired, *old[1:]], now_us=NOW_US)
    assert check.status is LocationStatus.REJECTED
    assert "replayed?" in check.summary


def test_tampered_or_unsigned_measurements_are_rejected(chip: LocationAnswerer) -> None:
    world = make_world()
    envs = world.measure(chip.answer, "CW-LOC-A", INSIDE)
    doc = json.loads(envs[0].payload)
    doc["rtt_us"] = 10  # the Prover shortens the round trip
    tampered = Envelope(envs[0].payload_type, json.dumps(doc).encode(), envs[0].signatures)
    rogue = SigningKey.from_seed(b"r" * 32)
    self_signed = sign_envelope(MEASUREMENT_TYPE, json.dumps(doc).encode(), [rogue])
    # a landmark signing a measurement in another landmark's name
    cross = sign_envelope(MEASUREMENT_TYPE, json.dumps(doc).encode(), [world.keys["lm-ams"]])
    for bad in (tampered, self_signed, cross):
        check = check_location(
            "CW-LOC-A",
            chip.public_key,
            world.region,
            world.landmarks,
            [bad, *envs[1:]],
            now_us=NOW_US,
        )
        assert check.status is LocationStatus.REJECTED, check.summary
    of_other = world.measure(chip.answer, "CW-LOC-Z", INSIDE)
    check = check_location(
        "CW-LOC-A", chip.public_key, world.region, world.landmarks, of_other, now_us=NOW_US
    )
    assert check.status is LocationStatus.REJECTED


def test_work_is_bounded_and_regions_are_validated(chip: LocationAnswerer) -> None:
    world = make_world()
    with pytest.raises(FormatError, match="at most 256"):
        check_location(
            "CW-LOC-A", chip.public_key, world.region, world.landmarks, [b"{}"] * 257, now_us=0
        )
    with pytest.raises(FormatError, match="licensed region"):
        LicensedRegion.from_json({"id": "x", "within": []})
    with pytest.raises(FormatError, match="licensed region"):
        LicensedRegion.from_json({"id": "x", "within": [{"landmark": "a", "radius_km": -1}]})
    with pytest.raises(FormatError, match="licensed region"):
        LicensedRegion.from_json([1])
    region = LicensedRegion.from_json(world.region.to_json())
    assert region == world.region
    assert Landmark.from_json(world.landmarks[0].to_json()) == world.landmarks[0]
    with pytest.raises(FormatError, match="lat"):
        Landmark.from_json(world.landmarks[0].to_json() | {"lat": 91})


def test_checks_are_logged_signed_and_tampering_is_detected(chip: LocationAnswerer) -> None:
    world = make_world()
    checker = SigningKey.from_seed(b"c" * 32)
    log = LocationLog(MerkleLog.in_memory(), checker.verifying_key, checker)
    inside = check_location(
        "CW-LOC-A",
        chip.public_key,
        world.region,
        world.landmarks,
        world.measure(chip.answer, "CW-LOC-A", INSIDE),
        now_us=NOW_US,
    )
    recorded = log.record(inside)
    assert recorded.log_index == 0
    assert log.checks() == [inside]
    assert log.checks()[0].log_index == 0
    store = MerkleLog.in_memory()
    store.append(sign_envelope("application/x", b"{}", [checker]).to_json())
    with pytest.raises(IntegrityError, match="location log entry 0"):
        LocationLog(store, checker.verifying_key).checks()
    with pytest.raises(FormatError, match="signing key"):
        LocationLog(store, checker.verifying_key).record(inside)


def test_a_chip_outside_its_region_is_a_discrepancy(chip: LocationAnswerer) -> None:
    world = make_world()
    registrar = SigningKey.from_seed(bytes(32))
    d = Directory("example/log", "registrar", registrar.verifying_key)
    people = SupplyWorld("example/log", registrar, clock=lambda: NOW_US / 1e6)
    with pytest.raises(UnknownEntity, match="not in the directory"):
        d.license_region("CW-LOC-A", world.region)
    d.submit(people.register("fab-1", "fab"), now_us=NOW_US)
    d.submit(people.fabricate("fab-1", ["CW-LOC-A"]), now_us=NOW_US)
    far = check_location(
        "CW-LOC-A",
        chip.public_key,
        world.region,
        world.landmarks,
        world.measure(chip.answer, "CW-LOC-A", INSIDE | {"lm-par": 90_000}),
        now_us=NOW_US,
    )
    with pytest.raises(UnknownEntity, match="no licensed region"):
        d.record_location(far)
    d.license_region("CW-LOC-A", world.region)
    assert d.licensed_region("CW-LOC-A") == world.region
    d.record_location(far)
    with pytest.raises(FormatError, match="licensed region is"):
        d.record_location(dataclasses.replace(far, region_id="elsewhere"))
    got = find_discrepancies(
        d.chips, d.events(), ReportPolicy(), NOW_US + 1, locations=d.location_checks()
    )
    [item] = got.by_kind(DiscrepancyKind.OUTSIDE_REGION)
    assert item.serials == ("CW-LOC-A",)
    assert item.responsible == "fab-1"
    assert "lm-par: <= 9000 km of 1300 km allowed" in item.message
    # a later check that proves the chip inside clears it
    back = check_location(
        "CW-LOC-A",
        chip.public_key,
        world.region,
        world.landmarks,
        world.measure(chip.answer, "CW-LOC-A", INSIDE, time_us=NOW_US + 10),
        now_us=NOW_US + 10,
    )
    d.record_location(back)
    assert d.location_checks("CW-LOC-A") == [far, back]
    later = find_discrepancies(
        d.chips, d.events(), ReportPolicy(), NOW_US + 20, locations=d.location_checks()
    )
    assert not later.by_kind(DiscrepancyKind.OUTSIDE_REGION)


def test_an_inspection_reports_a_chip_outside_its_region(tmp_path: Path) -> None:
    maker = SigningKey.from_seed(b"m" * 32)
    with Chip.provision(tmp_path / "c", "CW-LOC-I", maker.verifying_key) as c:
        c.boot(sign_firmware(name="fw", version=1, code=b"fw", chipmaker=maker))
        key = c.public_key
    world = make_world()
    with LocationAnswerer.open(tmp_path / "c") as answerer:
        checks = {
            name: check_location(
                "CW-LOC-I",
                key,
                world.region,
                world.landmarks,
                world.measure(answerer.answer, "CW-LOC-I", rtts),
                now_us=NOW_US,
            )
            for name, rtts in (("in", INSIDE), ("out", INSIDE | {"lm-ams": 50_000}))
        }
    record = DirectoryRecord("CW-LOC-I", "lab-a", key)
    args = {"expected_owner": "lab-a", "nonce": bytes(16), "reports": []}
    found = inspect_chip(tmp_path / "c", record, **args, location=checks["out"])  # type: ignore[arg-type]
    assert [f.kind for f in found.findings] == ["outside-licensed-region"]
    assert "lm-ams: <= 5000 km of 1200 km allowed" in found.findings[0].detail
    assert inspect_chip(tmp_path / "c", record, **args, location=checks["in"]).passed  # type: ignore[arg-type]


def test_checks_are_scheduled_as_a_poisson_process() -> None:
    times = schedule_checks(np.random.default_rng(3), 3600.0, 0.0, 1000 * 3600.0)
    assert 900 < len(times) < 1100
    gaps = np.diff([0.0, *times])
    assert gaps.min() >= 0
    assert 0.5 < float(np.std(gaps) / np.mean(gaps)) < 1.5
    with pytest.raises(FormatError, match="schedule"):
        schedule_checks(np.random.default_rng(3), 1.0, 0.0, 1e9)


@pytest.mark.parametrize(
    "name",
    [
        "computewatch.chip._location",
        "computewatch.supplychain._location",
        "computewatch.supplychain._location_geo",
        "computewatch.supplychain._location_sim",
    ],
)
def test_location_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
