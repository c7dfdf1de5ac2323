"""A small world for location tests: landmarks with keys, a licensed region, chips."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from computewatch.chip import LocationAnswerer, LogState, genesis_hash, provision_secure_element
from computewatch.crypto import SigningKey
from computewatch.supplychain import Landmark, LandmarkCore, LicensedRegion, RegionConstraint

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from computewatch.crypto import Envelope

NOW_US = 1_800_000_000_000_000
#: Frankfurt, Amsterdam, Paris.
PLACES = {"lm-fra": (50.1109, 8.6821), "lm-ams": (52.3676, 4.9041), "lm-par": (48.8566, 2.3522)}


@dataclass
class World:
    keys: dict[str, SigningKey]
    landmarks: list[Landmark]
    region: LicensedRegion

    def measure(
        self,
        answer: Callable[[str, bytes], Envelope],
        serial: str,
        rtt_us: dict[str, int],
        *,
        time_us: int = NOW_US,
    ) -> list[Envelope]:
        """One measurement per landmark named in ``rtt_us``, at that round trip."""
        out = []
        for lm, rtt in rtt_us.items():
            clock = [0]
            core = LandmarkCore(lm, self.keys[lm], clock_ns=_reader(clock), wall_us=lambda: time_us)
            nonce = bytes.fromhex(json.loads(core.challenge(serial, ("h", 1)))["nonce"])
            env = answer(lm, nonce)
            clock[0] += rtt * 1000
            out.append(core.measure(env.to_json().decode(), ("h", 1), clock[0]))
        return out


def _reader(cell: list[int]) -> Callable[[], int]:
    return lambda: cell[0]


def make_world(radii: dict[str, float] | None = None) -> World:
    radii = radii or {"lm-fra": 400.0, "lm-ams": 1200.0, "lm-par": 1300.0}
    keys = {lm: SigningKey.from_seed(lm.encode().ljust(32, b"k")) for lm in PLACES}
    landmarks = [Landmark(lm, *PLACES[lm], keys[lm].verifying_key) for lm in PLACES]
    region = LicensedRegion(
        "eu-frankfurt", tuple(RegionConstraint(lm, r) for lm, r in radii.items())
    )
    return World(keys, landmarks, region)


def make_answerer(folder: Path, serial: str) -> LocationAnswerer:
    se = provision_secure_element(f"file:{folder / serial}", serial)
    return LocationAnswerer(se, LogState(0, genesis_hash(serial)))
