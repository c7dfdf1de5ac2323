"""Places: landmarks, licensed regions and the distance bound a round trip gives.

Light in fibre travels at about 2/3 c, 200 km per millisecond one way, so a
round trip of ``t`` ms proves the answerer is at most ``t * 100`` km away
(`rtt_bound_km`). Queues, routes and processing only add time: a bound is
never too small, only too large. A licensed region is a set of
constraints "within R km of landmark L"; a chip is proven inside when every
constraint's bound is at most its R.

Example:
    >>> from computewatch.supplychain import LicensedRegion, RegionConstraint, rtt_bound_km
    >>> rtt_bound_km(2_000)  # 2 ms round trip
    200.0
    >>> region = LicensedRegion("eu-west", (RegionConstraint("lm-fra", 400.0),))
    >>> region.landmarks
    ('lm-fra',)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from computewatch._validate import positive, text
from computewatch.chip import check_landmark_id
from computewatch.crypto import VerifyingKey
from computewatch.errors import FormatError, ParameterError

__all__ = [
    "EARTH_RADIUS_KM",
    "FIBRE_KM_PER_MS_RTT",
    "VACUUM_KM_PER_MS_RTT",
    "Landmark",
    "LicensedRegion",
    "RegionConstraint",
    "great_circle_km",
    "rtt_bound_km",
]

#: Mean Earth radius (IUGG), km.
EARTH_RADIUS_KM = 6371.0088
#: Distance per millisecond of round trip at 2/3 c (light in fibre): 100 km.
FIBRE_KM_PER_MS_RTT = 100.0
#: Distance per millisecond of round trip at c (free-space links: microwave, laser).
VACUUM_KM_PER_MS_RTT = 299.792458 / 2
_MAX_CONSTRAINTS = 32
_MAX_REGION_ID = 64


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in km between two points given in degrees."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def rtt_bound_km(rtt_us: int, km_per_ms: float = FIBRE_KM_PER_MS_RTT) -> float:
    """The farthest an answerer can be after a round trip of ``rtt_us`` microseconds."""
    value: object = rtt_us  # from the wire: check whatever the annotation says
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        msg = f"round trip: expected microseconds >= 0, got {rtt_us!r:.40}"
        raise ParameterError(msg)
    return rtt_us / 1000.0 * positive("km_per_ms", km_per_ms)


def _coordinate(name: str, value: object, limit: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{name}: expected degrees, got {value!r:.40}"
        raise FormatError(msg)
    out = float(value)
    if not -limit <= out <= limit:
        msg = f"{name}: expected -{limit:g}..{limit:g} degrees, got {value!r}"
        raise FormatError(msg)
    return out


@dataclass(frozen=True, slots=True)
class Landmark:
    """A Verifier server at a known place whose measurements are signed by ``key``.

    Attributes:
        landmark_id: Its id (what challenges and answers name).
        lat: Latitude, degrees.
        lon: Longitude, degrees.
        key: The key its measurements are signed with (a trust root).
        address: Where its UDP service listens (``host:port``; informative).
    """

    landmark_id: str
    lat: float
    lon: float
    key: VerifyingKey
    address: str = ""

    def __post_init__(self) -> None:
        """Check the id and coordinates (`FormatError`)."""
        check_landmark_id(self.landmark_id)
        _coordinate(f"landmark {self.landmark_id} lat", self.lat, 90)
        _coordinate(f"landmark {self.landmark_id} lon", self.lon, 180)

    def distance_km(self, lat: float, lon: float) -> float:
        """Great-circle distance from this landmark to a point."""
        return great_circle_km(self.lat, self.lon, lat, lon)

    def to_json(self) -> dict[str, Any]:
        """As JSON values (the key as PEM text)."""
        return {
            "id": self.landmark_id,
            "lat": self.lat,
            "lon": self.lon,
            "key": self.key.to_pem().decode(),
            "address": self.address,
        }

    @classmethod
    def from_json(cls, doc: object) -> Landmark:
        """Parse `to_json`'s form (`FormatError` naming the bad field)."""
        if not isinstance(doc, dict):
            msg = f"landmark: expected an object, got {type(doc).__name__}"
            raise FormatError(msg)
        try:
            key = VerifyingKey.from_pem(str(doc["key"]).encode())
            return cls(
                check_landmark_id(doc["id"]),
                _coordinate("landmark lat", doc["lat"], 90),
                _coordinate("landmark lon", doc["lon"], 180),
                key,
                str(doc.get("address", ""))[:200],
            )
        except (KeyError, ParameterError) as e:
            msg = f"landmark {doc.get('id')!r:.70}: missing or bad field ({e})"
            raise FormatError(msg) from e


@dataclass(frozen=True, slots=True)
class RegionConstraint:
    """One constraint: the chip is within ``radius_km`` of landmark ``landmark``."""

    landmark: str
    radius_km: float

    def __post_init__(self) -> None:
        """Check the id and the radius."""
        check_landmark_id(self.landmark)
        positive(f"radius of landmark {self.landmark}", self.radius_km)


@dataclass(frozen=True, slots=True)
class LicensedRegion:
    """Where a chip is licensed to be: every constraint must be proven.

    Attributes:
        region_id: A name for people and records.
        constraints: One per landmark (1 to 32, distinct landmarks).
    """

    region_id: str
    constraints: tuple[RegionConstraint, ...]

    def __post_init__(self) -> None:
        """Check the id and that the constraints are 1-32 distinct landmarks."""
        text("region id", self.region_id, max_len=_MAX_REGION_ID)
        if not 1 <= len(self.constraints) <= _MAX_CONSTRAINTS:
            msg = (
                f"region {self.region_id}: expected 1-{_MAX_CONSTRAINTS} constraints, "
                f"got {len(self.constraints)} (an empty region would prove nothing)"
            )
            raise ParameterError(msg)
        if len(set(self.landmarks)) != len(self.constraints):
            msg = f"region {self.region_id}: a landmark appears twice"
            raise ParameterError(msg)

    @property
    def landmarks(self) -> tuple[str, ...]:
        """The landmark ids, in constraint order."""
        return tuple(c.landmark for c in self.constraints)

    def radius(self, landmark: str) -> float:
        """The radius allowed around ``landmark``."""
        return next(c.radius_km for c in self.constraints if c.landmark == landmark)

    def to_json(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "id": self.region_id,
            "within": [
                {"landmark": c.landmark, "radius_km": c.radius_km} for c in self.constraints
            ],
        }

    @classmethod
    def from_json(cls, doc: object) -> LicensedRegion:
        """Parse `to_json`'s form (`FormatError` naming the bad field)."""
        if not isinstance(doc, dict) or not isinstance(doc.get("within"), list):
            msg = "licensed region: expected an object with a 'within' list"
            raise FormatError(msg)
        within = doc["within"][: _MAX_CONSTRAINTS + 1]
        try:
            return cls(
                str(doc.get("id", ""))[: _MAX_REGION_ID + 1],
                tuple(RegionConstraint(c["landmark"], c["radius_km"]) for c in within),
            )
        except (TypeError, KeyError, ParameterError) as e:
            msg = f"licensed region: {e}"
            raise FormatError(msg) from e
