"""Location checks without a network: the real protocol over a latency model.

`LatencyModel` draws round trips from published figures (see
``docs/location.md`` for the sources): light in fibre at 2/3 c; a route
inflation over the great-circle distance of at least 1.3 and 2.1 in the
median (Bozkurt et al. 2018); about 0.9 ms of round trip inside one
datacenter zone (Painter 2024, Azure same-zone); exponential queueing
jitter per probe; the chip's signing time. `simulate_check` runs the real
code path, a `LandmarkCore` whose clock advances by the modelled round
trip, the chip's `LocationAnswerer`, and `check_location`, for a chip at a
given place. `run_campaign` measures the share of diverted chips flagged
and of honest chips falsely flagged, with exact one-sided 95 % bounds.

Example:
    >>> import numpy as np
    >>> from computewatch.supplychain import LatencyModel
    >>> LatencyModel().rtt_ms(0.0, np.random.default_rng(0)) > 0.9
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch._validate import non_negative, positive
from computewatch.crypto import SigningKey
from computewatch.errors import ParameterError
from computewatch.supplychain._location import LocationCheck, LocationPolicy, check_location
from computewatch.supplychain._location_geo import (
    EARTH_RADIUS_KM,
    Landmark,
    LicensedRegion,
    RegionConstraint,
)
from computewatch.supplychain._location_landmark import LandmarkCore

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np

    from computewatch.chip import LocationAnswerer
    from computewatch.crypto import Envelope, VerifyingKey

__all__ = [
    "OPTIMAL_FIBRE",
    "LatencyModel",
    "Site",
    "calibrate_radius",
    "destination",
    "one_sided_rate",
    "run_campaign",
    "simulate_check",
]

#: Light in fibre, one way, at 2/3 c (km per ms).
FIBRE_ONE_WAY_KM_PER_MS = 299.792458 * 2 / 3


@dataclass(frozen=True, slots=True)
class LatencyModel:
    """Round trips between a landmark and a chip ``d`` km apart.

    ``rtt = 2 d rho / v + base + jitter + processing`` with ``rho`` the
    route inflation of the path (``floor + LogNormal``, median
    ``inflation_median``), drawn once per path, and ``jitter`` exponential
    per probe.

    Attributes:
        fibre_km_per_ms: One-way speed of light in fibre.
        inflation_floor: Smallest route inflation of a real path.
        inflation_median: Median route inflation.
        inflation_sigma: Log-spread of the inflation above its floor.
        base_ms: Round trip of the two end hosts' stacks and local network.
        jitter_mean_ms: Mean queueing delay per probe.
        processing_ms: The chip's signing time.
    """

    fibre_km_per_ms: float = FIBRE_ONE_WAY_KM_PER_MS
    inflation_floor: float = 1.3
    inflation_median: float = 2.1
    inflation_sigma: float = 0.35
    base_ms: float = 0.9
    jitter_mean_ms: float = 0.5
    processing_ms: float = 0.07

    def __post_init__(self) -> None:
        """Check the values (`ParameterError`)."""
        positive("fibre_km_per_ms", self.fibre_km_per_ms)
        positive("inflation_floor", self.inflation_floor)
        if self.inflation_median <= self.inflation_floor:
            msg = "inflation_median: expected more than inflation_floor"
            raise ParameterError(msg)
        non_negative("inflation_sigma", self.inflation_sigma)
        non_negative("base_ms", self.base_ms)
        non_negative("jitter_mean_ms", self.jitter_mean_ms)
        non_negative("processing_ms", self.processing_ms)

    def inflation(self, rng: np.random.Generator, size: int | None = None) -> Any:
        """Draw route inflation factors."""
        excess = self.inflation_median - self.inflation_floor
        return self.inflation_floor + excess * rng.lognormal(0.0, self.inflation_sigma, size)

    def rtt_ms(
        self, distance_km: float, rng: np.random.Generator, *, inflation: float | None = None
    ) -> float:
        """One probe's round trip in ms (``inflation`` fixed: the same path again)."""
        rho = float(self.inflation(rng)) if inflation is None else inflation
        jitter = float(rng.exponential(self.jitter_mean_ms)) if self.jitter_mean_ms else 0.0
        return (
            2 * distance_km * rho / self.fibre_km_per_ms
            + self.base_ms
            + jitter
            + (self.processing_ms)
        )

    def to_json(self) -> dict[str, Any]:
        """As JSON values."""
        return dataclasses.asdict(self)


#: The strongest Prover the fibre bound allows: a straight fibre, no queues, instant signing.
OPTIMAL_FIBRE = LatencyModel(
    inflation_floor=1.0,
    inflation_median=1.0 + 1e-12,
    inflation_sigma=0.0,
    base_ms=0.0,
    jitter_mean_ms=0.0,
    processing_ms=0.0,
)


def destination(lat: float, lon: float, bearing_deg: float, km: float) -> tuple[float, float]:
    """The point ``km`` from (lat, lon) along ``bearing_deg`` (great circle)."""
    p1, l1, b = math.radians(lat), math.radians(lon), math.radians(bearing_deg)
    d = km / EARTH_RADIUS_KM
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(
        math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180


def one_sided_rate(k: int, n: int, confidence: float = 0.95) -> dict[str, Any]:
    """``k`` of ``n`` with exact one-sided Clopper-Pearson bounds at ``confidence``."""
    alpha = 1 - confidence
    from scipy.stats import beta  # noqa: PLC0415 - scipy.stats is slow to import; only here

    lower = 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))
    upper = 1.0 if k == n else float(beta.ppf(1 - alpha, k + 1, n - k))
    return {
        "count": k,
        "trials": n,
        "rate": k / n if n else None,
        "lower95": lower,
        "upper95": upper,
    }


@dataclass(frozen=True, slots=True)
class Site:
    """A licensed data-center site: honest chips are within ``radius_km`` of its centre."""

    name: str
    lat: float
    lon: float
    radius_km: float


def calibrate_radius(
    distance_km: float,
    model: LatencyModel,
    *,
    probes: int = 3,
    false_flag: float = 1e-4,
    draws: int = 200_000,
    seed: int = 20,
    km_per_ms: float = 100.0,
) -> float:
    """The radius an honest chip ``distance_km`` away exceeds with chance ``false_flag``.

    The check keeps the smallest of ``probes`` round trips; the radius is
    that bound's ``1 - false_flag`` quantile under ``model`` (drawn with its
    own seed, apart from the campaign's).
    """
    import numpy as np  # noqa: PLC0415 - keep `import computewatch.supplychain` light

    rng = np.random.default_rng(seed)
    rho = model.inflation(rng, draws)
    jitter = rng.exponential(model.jitter_mean_ms, (draws, probes)).min(axis=1)
    rtt = 2 * distance_km * rho / model.fibre_km_per_ms + model.base_ms + jitter
    return float(np.quantile((rtt + model.processing_ms) * km_per_ms, 1 - false_flag))


def simulate_check(
    answer: Callable[[str, bytes], Envelope],
    serial: str,
    chip_key: VerifyingKey,
    *,
    place: tuple[float, float],
    region: LicensedRegion,
    landmarks: Sequence[tuple[Landmark, SigningKey]],
    model: LatencyModel,
    rng: np.random.Generator,
    probes: int = 3,
    now_us: int = 1_800_000_000_000_000,
    policy: LocationPolicy | None = None,
) -> LocationCheck:
    """Run the protocol for a chip at ``place`` with modelled round trips; check it."""
    measurements = []
    for landmark, key in landmarks:
        clock = [0]
        core = LandmarkCore(
            landmark.landmark_id,
            key,
            clock_ns=lambda c=clock: c[0],  # type: ignore[misc]
            wall_us=lambda: now_us,
            random_bytes=rng.bytes,
        )
        distance = landmark.distance_km(*place)
        rho = float(model.inflation(rng))
        for _ in range(probes):
            data = core.challenge(serial, ("sim", 1))
            nonce = bytes.fromhex(json.loads(data)["nonce"])
            env = answer(landmark.landmark_id, nonce)
            clock[0] += round(model.rtt_ms(distance, rng, inflation=rho) * 1e6)
            measurements.append(core.measure(env.to_json().decode(), ("sim", 1), clock[0]))
    known = [lm for lm, _ in landmarks]
    return check_location(
        serial, chip_key, region, known, measurements, now_us=now_us, policy=policy
    )


def _landmarks(site: Site) -> list[tuple[Landmark, SigningKey]]:
    """Three landmarks: one at the site, two a few hundred km away."""
    spots = [("lm-site", 0.0, 5.0), ("lm-north", 10.0, 350.0), ("lm-west", 250.0, 480.0)]
    out = []
    for i, (name, bearing, km) in enumerate(spots):
        key = SigningKey.from_seed(bytes([i + 1]) * 31 + b"L")
        lat, lon = destination(site.lat, site.lon, bearing, km)
        out.append((Landmark(name, lat, lon, key.verifying_key), key))
    return out


def run_campaign(
    answerer: LocationAnswerer,
    *,
    trials: int = 300,
    site: Site | None = None,
    model: LatencyModel | None = None,
    seed: int = 0,
    probes: int = 3,
) -> dict[str, Any]:
    """Flag rates of honest chips at the site and of chips diverted beyond the bound.

    Honest chips are uniform in the site's disk. Diverted chips are placed
    beyond a random landmark's radius (up to 3000 km further), once with
    internet paths drawn from ``model`` and once with `OPTIMAL_FIBRE` (a
    straight fibre, no queueing).
    """
    site = site or Site("frankfurt", 50.1109, 8.6821, 50.0)
    model = model or LatencyModel()
    landmarks = _landmarks(site)
    radii = {
        lm.landmark_id: round(
            calibrate_radius(
                lm.distance_km(site.lat, site.lon) + site.radius_km, model, probes=probes
            ),
            1,
        )
        for lm, _ in landmarks
    }
    region = LicensedRegion(
        f"site-{site.name}", tuple(RegionConstraint(k, v) for k, v in radii.items())
    )
    import numpy as np  # noqa: PLC0415 - keep `import computewatch.supplychain` light

    rng = np.random.default_rng(seed)
    serial, key = str(answerer.serial), answerer.public_key

    def honest_place() -> tuple[float, float]:
        r = site.radius_km * math.sqrt(rng.uniform())
        return destination(site.lat, site.lon, rng.uniform(0, 360), r)

    def diverted_place() -> tuple[float, float]:
        lm, _ = landmarks[int(rng.integers(len(landmarks)))]
        beyond = radii[lm.landmark_id] + rng.uniform(1.0, 3000.0)
        return destination(lm.lat, lm.lon, rng.uniform(0, 360), beyond)

    def flags(place: Callable[[], tuple[float, float]], m: LatencyModel) -> tuple[int, list[Any]]:
        flagged, missed = 0, []
        for _ in range(trials):
            at = place()
            check = simulate_check(
                answerer.answer,
                serial,
                key,
                place=at,
                region=region,
                landmarks=landmarks,
                model=m,
                rng=rng,
                probes=probes,
            )
            flagged += not check.inside
            if place is diverted_place and check.inside:
                missed.append({"place": at, "summary": check.summary})
        return flagged, missed

    honest, _ = flags(honest_place, model)
    diverted, missed = flags(diverted_place, model)
    diverted_opt, missed_opt = flags(diverted_place, OPTIMAL_FIBRE)
    return {
        "site": dataclasses.asdict(site),
        "landmarks": [
            {
                "id": lm.landmark_id,
                "lat": lm.lat,
                "lon": lm.lon,
                "km_from_site": lm.distance_km(site.lat, site.lon),
            }
            for lm, _ in landmarks
        ],
        "region": region.to_json(),
        "model": model.to_json(),
        "probes": probes,
        "seed": seed,
        "honest_false_flags": one_sided_rate(honest, trials),
        "diverted_flagged": one_sided_rate(diverted, trials) | {"missed": missed[:5]},
        "diverted_optimal_fibre_flagged": one_sided_rate(diverted_opt, trials)
        | {"missed": missed_opt[:5]},
    }
