"""An attack on the registry's location records: the Prover writes its own verdict.

``location-forged-check``: the Verifier's checker found the Prover's chip
outside its licensed region and logged that with the registry. The Prover
then submits a ``location-check`` request that says the chip is back
inside, in one of three ways (by trial): signed with its own (owner) key,
the checker's outside record edited to ``inside`` after signing, or signed
by a key the registry has never registered under the checker's name. The
defence is the registry's rules (`check_request` over a real `Directory`,
the same rules the SQL registry runs): the request is refused, and the
discrepancy report still names the chip. As a control, each trial also
submits the checker's honest ``inside`` check of a second chip, which must
be accepted and must not be named.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from computewatch.attacks._harness import Attempt, Detection
from computewatch.chip import LocationAnswerer, LogState, genesis_hash, provision_secure_element
from computewatch.crypto import Envelope, SigningKey, canonical_json, sign_envelope
from computewatch.errors import ComputeWatchError
from computewatch.supplychain import (
    Directory,
    DiscrepancyKind,
    Landmark,
    LandmarkCore,
    LicensedRegion,
    RegionConstraint,
    ReportPolicy,
    RequestKind,
    check_location,
    find_discrepancies,
    make_request,
    payload_type,
    sign_request,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy as np

    from computewatch.attacks._harness import HonestRun, Scale
    from computewatch.crypto import VerifyingKey
    from computewatch.supplychain import LocationCheck
    from computewatch.verification import VerificationPolicy

__all__ = ["LocationForgedCheck"]

_ORIGIN = "computewatch.example/attack-registry"
_T0 = 1_800_000_000_000_000
_WAYS = ("owner-signed", "edited-after-signing", "unregistered-key")


def _key(name: str, trial: int) -> SigningKey:
    return SigningKey.from_seed(hashlib.sha256(f"cw-attack/{name}/{trial}".encode()).digest())


def _measured(
    workdir: Path, serial: str, lm_key: SigningKey, rtt_us: int
) -> tuple[LocationCheck, VerifyingKey]:
    """A real check: the chip's secure element answers, the landmark signs the round trip."""
    se = provision_secure_element(f"file:{workdir / serial}", serial)
    with LocationAnswerer(se, LogState(0, genesis_hash(serial))) as chip:
        clock = [0]
        core = LandmarkCore("lm-site", lm_key, clock_ns=lambda: clock[0], wall_us=lambda: _T0)
        envs = []
        for _ in range(3):
            nonce = bytes.fromhex(json.loads(core.challenge(serial, ("h", 1)))["nonce"])
            answer = chip.answer("lm-site", nonce)
            clock[0] += rtt_us * 1000
            envs.append(core.measure(answer.to_json().decode(), ("h", 1), clock[0]))
        landmark = Landmark("lm-site", 50.11, 8.68, lm_key.verifying_key)
        region = LicensedRegion("site", (RegionConstraint("lm-site", 1000.0),))
        check = check_location(serial, chip.public_key, region, [landmark], envs, now_us=_T0 + 1)
        return check, chip.public_key


class _World:
    def __init__(self, trial: int) -> None:
        self.trial = trial
        self.keys = {n: _key(n, trial) for n in ("registrar", "fab", "owner", "checker")}
        self.directory = Directory(_ORIGIN, "registrar", self.keys["registrar"].verifying_key)
        self.counter = 0

    def request(self, kind: str, actor: str, body: dict[str, Any], *extra: str) -> bytes:
        self.counter += 1
        req = make_request(
            kind, registry=_ORIGIN, actor=actor, counter=self.counter, time_us=_T0 + 10, body=body
        )
        signers = [self.keys[actor], *(self.keys[e] for e in extra)]
        return sign_request(req, signers).to_json()

    def register(self, actor: str, role: str) -> bytes:
        body = {"id": actor, "role": role, "key": self.keys[actor].verifying_key.raw.hex()}
        return self.request("register-actor", "registrar", body, actor)


def _check_body(check: LocationCheck, **change: Any) -> dict[str, Any]:
    doc = {k: v for k, v in check.to_json().items() if k != "log_index"}
    return {"check": doc | change}


def _edited(data: bytes) -> bytes:
    """The checker's signed request with the outcome turned to inside after signing."""
    env = Envelope.from_json(data)
    doc = json.loads(env.payload)
    doc["body"]["check"]["status"] = "inside"
    for r in doc["body"]["check"]["results"]:
        r["bound_km"] = 1.0
    return Envelope(env.payload_type, canonical_json(doc), env.signatures).to_json()


class LocationForgedCheck:
    """The Prover submits an ``inside`` location check for its diverted chip."""

    name = "location-forged-check"
    threat = "location: the Prover writes its own location check into the registry"
    expected = ("refused",)
    needs_base = False

    def create(
        self, workdir: Path, trial: int, bases: Sequence[HonestRun], scale: Scale | None = None
    ) -> Attempt:
        """Measure the two chips (really signed), ready for the registry."""
        del bases, scale
        lm_key = _key("landmark", trial)
        diverted = _measured(workdir, f"CW-FORGE-OUT-{trial}", lm_key, 40_000)
        honest = _measured(workdir, f"CW-FORGE-IN-{trial}", lm_key, 2_000)
        return Attempt(data={"trial": trial, "diverted": diverted, "honest": honest})

    def detect(
        self, attempt: Attempt, policy: VerificationPolicy, rng: np.random.Generator
    ) -> Detection:
        """Submit the forgery to the registry's rules; read the discrepancy report."""
        del policy, rng
        w = _World(attempt.data["trial"])
        (out_check, out_key), (in_check, in_key) = attempt.data["diverted"], attempt.data["honest"]
        chips = [
            {"serial": c.serial, "key": k.raw.hex(), "model": "cw-test"}
            for c, k in ((out_check, out_key), (in_check, in_key))
        ]
        region = {"id": "site", "within": [{"landmark": "lm-site", "radius_km": 1000.0}]}
        for data in (
            w.register("fab", "fab"),
            w.register("owner", "owner"),
            w.register("checker", "verifier"),
            w.request("fabricate", "fab", {"chips": chips}),
            w.request(
                "license-region",
                "registrar",
                {"serials": [c["serial"] for c in chips], "region": region},
            ),
            w.request("location-check", "checker", _check_body(out_check)),
            w.request("location-check", "checker", _check_body(in_check)),
        ):
            w.directory.submit(data)
        way = _WAYS[attempt.data["trial"] % len(_WAYS)]
        inside = _check_body(
            out_check, status="inside", results=_check_body(in_check)["check"]["results"]
        )
        if way == "owner-signed":
            forged = w.request("location-check", "owner", inside)
        elif way == "edited-after-signing":
            forged = _edited(w.request("location-check", "checker", _check_body(out_check)))
        else:
            w.counter += 1
            payload = make_request(
                "location-check", registry=_ORIGIN, actor="checker", counter=w.counter,
                time_us=_T0 + 10, body=inside,
            ).to_payload()  # fmt: skip
            forged = sign_envelope(
                payload_type(RequestKind.LOCATION_CHECK), payload, [_key("stranger", w.trial)]
            ).to_json()
        try:
            w.directory.submit(forged)
        except ComputeWatchError as e:
            refused = f"{type(e).__name__}: {e.message}"[:200]
        else:
            refused = ""
        d = w.directory
        report = find_discrepancies(
            d.chips, d.events(), ReportPolicy(), _T0 + 100, locations=d.location_checks()
        )
        named = [s for f in report.by_kind(DiscrepancyKind.OUTSIDE_REGION) for s in f.serials]
        caught = bool(refused) and named == [out_check.serial]
        return Detection(
            caught,
            ("refused",) if caught else (),
            detail=f"{way}: {refused or 'accepted'}; report names {named}",
        )
