"""Licensed regions and location checks in the registry: logged, stored in SQL, served.

The in-memory `Directory`, the SQL `RegistryStore` (SQLite and PostgreSQL)
and a live `computewatch registry serve` process on 127.0.0.1 take the same
signed ``license-region`` and ``location-check`` requests, and their
discrepancy reports name the chip found outside its region, not the honest
one.
"""

from __future__ import annotations

import base64
import json
import re
import time
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from computewatch.attacks import SCALE, LocationForgedCheck, default_policy
from computewatch.chip import LocationAnswerer, LogState, genesis_hash, open_secure_element
from computewatch.crypto import (
    Envelope,
    SigningKey,
    canonical_json,
    sign_envelope,
    verify_receipt,
)
from computewatch.errors import FormatError, IntegrityError
from computewatch.supplychain import (
    CustodyViolation,
    Directory,
    DiscrepancyKind,
    LocationStatus,
    Registry,
    RegistryClient,
    RegistryStore,
    ReportPolicy,
    RequestKind,
    Rule,
    UnknownEntity,
    check_location,
    find_discrepancies,
    payload_type,
)
from tests.supplychain.location_world import NOW_US, make_answerer, make_world
from tests.supplychain.server import ORIGIN, RegistryKeys, registry_server
from tests.supplychain.world import World

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from computewatch.crypto import VerifyingKey
    from computewatch.supplychain import LocationCheck

HONEST, DIVERTED = "CW-LOC-IN", "CW-LOC-OUT"
#: Round trips (us): near Frankfurt, and from 6000+ km away.
NEAR = {"lm-fra": 1_000, "lm-ams": 6_000, "lm-par": 7_000}
FAR = {"lm-fra": 60_000, "lm-ams": 62_000, "lm-par": 63_000}
PG = pytest.param("postgresql", marks=pytest.mark.slow)


def _checks(
    tmp_path: Path, now_us: int
) -> tuple[dict[str, LocationCheck], dict[str, VerifyingKey]]:
    """Checks by real signatures: the honest chip inside, the diverted one outside, then back."""
    loc = make_world()
    checks, keys = {}, {}
    for name, serial, rtts, t in (
        (HONEST, HONEST, NEAR, now_us),
        (DIVERTED, DIVERTED, FAR, now_us),
        ("back", DIVERTED, NEAR, now_us + 1_000),
    ):
        opener = make_answerer if name != "back" else _reopen
        with opener(tmp_path / (DIVERTED if name == "back" else name), serial) as answerer:
            keys[serial] = answerer.public_key
            envs = loc.measure(answerer.answer, serial, rtts, time_us=t)
        checks[name] = check_location(
            serial, keys[serial], loc.region, loc.landmarks, envs, now_us=t + 1
        )
    return checks, keys


def _reopen(folder: Path, serial: str) -> LocationAnswerer:
    se = open_secure_element(f"file:{folder / serial}")
    return LocationAnswerer(se, LogState(0, genesis_hash(serial)))


def _check_body(check: LocationCheck) -> dict[str, Any]:
    return {"check": {k: v for k, v in check.to_json().items() if k != "log_index"}}


class Story:
    """The requests of the story: actors, two chips, a licence, the checks."""

    def __init__(self, registrar: SigningKey, tmp_path: Path, now_us: int = NOW_US) -> None:
        self.world = World(ORIGIN, registrar, clock=lambda: now_us / 1e6 + 10)
        self.checks, self.chip_keys = _checks(tmp_path, now_us)
        self.region = make_world().region
        self._counter = 10**9  # above the World's counters

    def setup(self) -> list[bytes]:
        w = self.world
        chips = [
            {"serial": s, "key": self.chip_keys[s].raw.hex(), "model": "cw-test"}
            for s in (HONEST, DIVERTED)
        ]
        return [
            w.register("fab-1", "fab"),
            w.register("insp-1", "verifier"),
            w.register("own-1", "owner"),
            w.request("fabricate", "fab-1", {"chips": chips}),
            self.license([HONEST, DIVERTED]),
        ]

    def license(self, serials: list[str], actor: str = "registrar") -> bytes:
        body = {"serials": serials, "region": self.region.to_json()}
        return self.world.request("license-region", actor, body)

    def check(self, name: str, actor: str = "insp-1", **change: Any) -> bytes:
        """A location-check request, signed however malformed ``change`` makes it."""
        body = _check_body(self.checks[name])
        body["check"].update(change)
        self._counter += 1
        payload = {
            "v": 1,
            "kind": "location-check",
            "registry": ORIGIN,
            "actor": actor,
            "counter": self._counter,
            "time_us": round(self.world.clock() * 1e6),
            "body": body,
        }
        ptype = payload_type(RequestKind.LOCATION_CHECK)
        signer = self.world.key(actor)
        return sign_envelope(ptype, canonical_json(payload), [signer]).to_json()


@pytest.fixture
def story(keys: RegistryKeys, tmp_path: Path) -> Story:
    return Story(keys.registrar, tmp_path)


def _report_serials(report: Any) -> list[tuple[str, ...]]:
    return [d.serials for d in report.by_kind(DiscrepancyKind.OUTSIDE_REGION)]


def test_the_directory_logs_licences_and_checks_and_its_replay_agrees(
    story: Story, keys: RegistryKeys
) -> None:
    d = Directory(ORIGIN, "registrar", keys.registrar.verifying_key)
    entries = [*story.setup(), story.check(HONEST), story.check(DIVERTED)]
    for data in entries:
        d.submit(data, now_us=NOW_US + 10_000_000)
    assert d.licensed_region(HONEST) == story.region
    assert [c.status for c in d.location_checks()] == [
        LocationStatus.INSIDE,
        LocationStatus.OUTSIDE,
    ]
    report = find_discrepancies(
        d.chips, d.events(), ReportPolicy(), NOW_US + 20, locations=d.location_checks()
    )
    assert _report_serials(report) == [(DIVERTED,)]
    assert report.by_kind(DiscrepancyKind.OUTSIDE_REGION)[0].log_indices == (6,)
    assert [e.kind.value for e in d.history(DIVERTED)][-2:] == ["licensed", "location-checked"]
    replayed = Directory.replay(entries, ORIGIN, "registrar", keys.registrar.verifying_key)
    assert replayed.location_checks() == d.location_checks()


def _refusals(story: Story) -> list[tuple[Callable[[], bytes], type[Exception], str]]:
    other = {"region": "elsewhere"}
    moved = json.loads(json.dumps(_check_body(story.checks[HONEST])["check"]["results"]))
    moved[0]["landmark"] = "lm-evil"
    wider = json.loads(json.dumps(moved))
    wider[0] |= {"landmark": "lm-fra", "radius_km": 9000.0}
    outside = _check_body(story.checks[DIVERTED])["check"]["results"]
    return [
        (lambda: story.check(HONEST, actor="own-1"), CustodyViolation, "role verifier"),
        (lambda: story.check(HONEST, actor="registrar"), CustodyViolation, "role verifier"),
        (lambda: story.check(HONEST, **other), CustodyViolation, "expected its licensed region"),
        (lambda: story.check(HONEST, results=moved), CustodyViolation, "region's constraints"),
        (lambda: story.check(HONEST, results=wider), CustodyViolation, "region's constraints"),
        (lambda: story.check(HONEST, results=outside), FormatError, "results give 'outside'"),
        (lambda: story.check(HONEST, time_us=NOW_US + 10**9), CustodyViolation, "after the"),
        (lambda: story.check(HONEST, serial="CW-NONE"), UnknownEntity, "not in the directory"),
        (lambda: story.check(HONEST, status="maybe"), FormatError, "bad status"),
        (lambda: story.check(HONEST, extra=1), FormatError, "expected the fields"),
        (lambda: story.check(HONEST, time_us="soon"), FormatError, "time_us"),
        (lambda: story.license([HONEST], actor="insp-1"), CustodyViolation, "role registrar"),
        (lambda: story.license(["CW-NONE"]), UnknownEntity, "not in the directory"),
    ]


def test_bad_checks_and_licences_are_refused_naming_why(story: Story, keys: RegistryKeys) -> None:
    d = Directory(ORIGIN, "registrar", keys.registrar.verifying_key)
    for data in story.setup():
        d.submit(data)
    for make, error, words in _refusals(story):
        with pytest.raises(error, match=words) as e:
            d.submit(make())
        if error is CustodyViolation and "role" in words:
            assert e.value.rule is Rule.ROLE  # type: ignore[attr-defined]
        if "licensed region" in words or "constraints" in words:
            assert e.value.rule is Rule.LICENSED_REGION  # type: ignore[attr-defined]
    # signed by a key the registry does not know, or tampered after signing
    stranger = story.world.request(
        "location-check",
        "insp-1",
        _check_body(story.checks[HONEST]),
        signers=[SigningKey.generate()],
    )
    with pytest.raises(IntegrityError, match="0/1 required keys"):
        d.submit(stranger)
    with pytest.raises(UnknownEntity, match="not registered"):
        d.submit(story.world.request("location-check", "insp-9", _check_body(story.checks[HONEST])))
    with pytest.raises(IntegrityError):
        d.submit(_tampered(story.check(DIVERTED)))
    assert d.location_checks() == []


def _tampered(data: bytes) -> bytes:
    """The diverted chip's check with 'outside' turned into 'inside' after signing."""
    env = Envelope.from_json(data)
    doc = json.loads(env.payload)
    doc["body"]["check"]["status"] = "inside"
    for r in doc["body"]["check"]["results"]:
        r["bound_km"] = 1.0
    payload = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return Envelope(env.payload_type, payload, env.signatures).to_json()


def test_a_check_without_a_licence_is_refused(story: Story, keys: RegistryKeys) -> None:
    d = Directory(ORIGIN, "registrar", keys.registrar.verifying_key)
    for data in story.setup()[:-1]:  # no licence
        d.submit(data)
    with pytest.raises(UnknownEntity, match="no licensed region"):
        d.submit(story.check(HONEST))


def _store(url: str, keys: RegistryKeys) -> RegistryStore:
    return RegistryStore.open(
        url, origin=ORIGIN, registrar_id="registrar", registrar_key=keys.registrar.verifying_key
    )


@pytest.fixture(params=["sqlite", PG])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def test_the_sql_store_keeps_them_and_reports_as_the_directory_does(
    story: Story, keys: RegistryKeys, any_db: str
) -> None:
    clock = lambda: NOW_US / 1e6 + 10  # noqa: E731
    entries = [*story.setup(), story.check(HONEST), story.check(DIVERTED)]
    with Registry(_store(any_db, keys), keys.log, clock=clock) as registry:
        for data in entries:
            ack = registry.write(data)
            verify_receipt(ack.receipt, [keys.log.verifier], ORIGIN, entry=data)
    policy = ReportPolicy()
    with Registry(_store(any_db, keys), keys.log, clock=clock) as reopened:  # restart: durable
        store = reopened.store
        assert store.licence(HONEST) == (story.region, 4)
        assert store.licensed_region("CW-NONE") is None
        assert [c.status for c in store.location_checks(DIVERTED)] == [LocationStatus.OUTSIDE]
        report = store.discrepancies(policy, NOW_US + 20)
        assert _report_serials(report) == [(DIVERTED,)]
        d = Directory.replay(entries, ORIGIN, "registrar", keys.registrar.verifying_key)
        memory = find_discrepancies(
            d.chips, d.events(), policy, NOW_US + 20, locations=d.location_checks()
        )
        assert report.items == memory.items
        assert store.location_checks(HONEST) == d.location_checks(HONEST)
    with Registry(_store(any_db, keys), keys.log, clock=clock) as registry:
        registry.write(story.check("back"))  # back inside: the latest check clears the chip
        assert not registry.store.discrepancies(policy, NOW_US + 5_000)
        assert _report_serials(registry.store.discrepancies(policy, NOW_US + 20)) == [(DIVERTED,)]


def test_a_store_from_before_location_gains_its_tables(keys: RegistryKeys, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _store(url, keys).close()
    from sqlalchemy import create_engine, text  # noqa: PLC0415

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE location_checks"))
        conn.execute(text("DROP TABLE licensed_regions"))
    engine.dispose()
    store = _store(url, keys)
    try:
        assert store.licence("CW-1") is None
        assert store.location_checks("CW-1") == []
    finally:
        store.close()


@pytest.fixture(params=["sqlite", PG])
def live_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'live.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def live_story(keys: RegistryKeys, tmp_path: Path) -> Story:
    story = Story(keys.registrar, tmp_path, time.time_ns() // 1000 - 60_000_000)
    story.world.clock = time.time  # the server checks freshness against its own clock
    return story


def test_live_server_logs_serves_and_reports_across_a_restart(
    live_story: Story, keys: RegistryKeys, live_url: str
) -> None:
    story = live_story
    with (
        registry_server(keys, live_url) as server,
        RegistryClient(server.url, keys.log.verifier) as client,
    ):
        for data in story.setup():
            client.submit(data)
        honest = client.submit(story.check(HONEST))
        outside = client.submit(story.check(DIVERTED))
        verify_receipt(outside.receipt, [keys.log.verifier], ORIGIN)
        report = client.discrepancies()
        assert _report_serials(report) == [(DIVERTED,)]
        assert report.by_kind(DiscrepancyKind.OUTSIDE_REGION)[0].log_indices == (outside.index,)
        assert honest.index < outside.index
        # refused over HTTP with a 4xx and a one-line reason, never a 500
        for data, status in (
            (_tampered(story.check(DIVERTED)), 401),
            (story.check(HONEST, actor="own-1"), 409),
            (story.check(HONEST, status="maybe"), 400),
            (b'{"payload":"' + base64.b64encode(b"{}") + b'"}', 400),
        ):
            r = httpx.post(f"{server.url}/v1/requests", content=data)
            assert r.status_code == status, r.text
            assert r.json()["error"]["message"]
    with (
        registry_server(keys, live_url) as server,
        RegistryClient(server.url, keys.log.verifier) as client,
    ):
        assert client.region(HONEST) == story.region
        assert [c.status for c in client.locations(DIVERTED)] == [LocationStatus.OUTSIDE]
        assert client.locations(DIVERTED)[0].log_index == outside.index
        assert _report_serials(client.discrepancies()) == [(DIVERTED,)]
        r = httpx.get(f"{server.url}/v1/chips/CW-NONE/region")
        assert r.status_code == 404
        assert "no licensed region" in r.json()["error"]["message"]
        assert httpx.get(f"{server.url}/v1/chips/CW-NONE/locations").json() == []


@pytest.mark.parametrize("trial", [0, 1, 2])
def test_the_prover_cannot_log_its_own_inside_check(tmp_path: Path, trial: int) -> None:
    attack = LocationForgedCheck()
    attempt = attack.create(tmp_path, trial, [])
    found = attack.detect(attempt, default_policy(SCALE), np.random.default_rng(0))
    assert found.detected, found.detail
    why = {0: "CustodyViolation: .*role verifier", 1: "IntegrityError", 2: "IntegrityError"}
    assert re.search(why[trial], found.detail), found.detail
