"""Location checks: are a chip's landmark measurements proof that it is in its region?

`check_location` takes the landmarks' signed measurements (gathered by the
chip's host with `measure_at`, so every byte of them is hostile) and the
chip's registered key, and returns a `LocationCheck`:

* ``inside``: for every constraint "within R of landmark L" of the region,
  a valid measurement by L whose smallest round trip bounds the distance
  to at most R;
* ``outside``: some landmark's best round trip allows more than its R (a
  diverted chip, or one whose answer was relayed or delayed);
* ``rejected``: a measurement is not signed by the landmark it names, or its
  answer is not signed by the chip's registered key (another chip answered),
  names another serial, landmark or nonce (a replayed old answer), is stale,
  or reuses a nonce of an earlier check;
* ``unproven``: a landmark of the region has no measurement at all.

Only ``inside`` is a pass (fail closed). `LocationLog` keeps the checks as
records signed by the checker in a Merkle log of their own, so the
directory's report and inspections can cite them by index.

Example:
    >>> from computewatch.supplychain import LocationPolicy
    >>> LocationPolicy().km_per_ms
    100.0
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from computewatch._validate import non_negative, positive, positive_int
from computewatch.chip import LOCATION_ANSWER_TYPE
from computewatch.crypto import Envelope, canonical_json, sign_envelope, verify_envelope
from computewatch.errors import ComputeWatchError, FormatError, IntegrityError, VerificationFailed
from computewatch.supplychain._location_geo import FIBRE_KM_PER_MS_RTT, rtt_bound_km
from computewatch.supplychain._location_landmark import MEASUREMENT_TYPE, MEASUREMENT_VERSION
from computewatch.supplychain._model import check_serial

if TYPE_CHECKING:
    from collections.abc import Iterable, MutableSet, Sequence

    import numpy as np

    from computewatch.crypto import MerkleLog, Signer, VerifyingKey
    from computewatch.supplychain._location_geo import Landmark, LicensedRegion

__all__ = [
    "CHECK_RECORD_TYPE",
    "LandmarkResult",
    "LocationCheck",
    "LocationLog",
    "LocationPolicy",
    "LocationStatus",
    "check_location",
    "location_status",
    "schedule_checks",
    "verify_location",
]

#: DSSE payload type of a logged location check.
CHECK_RECORD_TYPE = "application/vnd.computewatch.location-check+json"
_US = 1_000_000
_MAX_MEASUREMENTS = 256
_MAX_CHECKS = 100_000


class LocationStatus(enum.StrEnum):
    """The outcome of one location check (only INSIDE passes)."""

    INSIDE = "inside"
    OUTSIDE = "outside"
    REJECTED = "rejected"
    UNPROVEN = "unproven"


@dataclass(frozen=True, slots=True)
class LocationPolicy:
    """How measurements are judged.

    Attributes:
        km_per_ms: Distance per ms of round trip: 100 (light in fibre, the
            default) or 149.9 (free-space links, against a Prover who could
            build microwave or laser links to a landmark).
        min_probes: Valid measurements each landmark must have signed.
        max_age_s: Oldest measurement accepted, relative to the check time.
        max_skew_s: How far in the future a measurement may be (landmark clocks).
    """

    km_per_ms: float = FIBRE_KM_PER_MS_RTT
    min_probes: int = 1
    max_age_s: float = 900.0
    max_skew_s: float = 5.0

    def __post_init__(self) -> None:
        """Check the values (`ParameterError` naming the bad one)."""
        positive("km_per_ms", self.km_per_ms)
        positive_int("min_probes", self.min_probes)
        positive("max_age_s", self.max_age_s)
        non_negative("max_skew_s", self.max_skew_s)

    def to_json(self) -> dict[str, Any]:
        """As JSON values."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class LandmarkResult:
    """What one landmark's measurements prove.

    Attributes:
        landmark: The landmark id.
        radius_km: The region's radius around it.
        probes: Valid measurements.
        min_rtt_us: The smallest valid round trip (None without any).
        bound_km: The distance that round trip allows (None without any).
        problems: Why measurements were refused (one line each).
    """

    landmark: str
    radius_km: float
    probes: int = 0
    min_rtt_us: int | None = None
    bound_km: float | None = None
    problems: tuple[str, ...] = ()

    @property
    def proven(self) -> bool:
        """A valid bound within the radius, and nothing refused."""
        return self.bound_km is not None and self.bound_km <= self.radius_km and not self.problems

    def to_json(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "landmark": self.landmark,
            "radius_km": self.radius_km,
            "probes": self.probes,
            "min_rtt_us": self.min_rtt_us,
            "bound_km": self.bound_km,
            "problems": list(self.problems),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LandmarkResult:
        """Parse `to_json`'s form (trusted: from a verified record)."""
        return cls(
            str(doc["landmark"]),
            float(doc["radius_km"]),
            int(doc["probes"]),
            None if doc["min_rtt_us"] is None else int(doc["min_rtt_us"]),
            None if doc["bound_km"] is None else float(doc["bound_km"]),
            tuple(str(p) for p in doc["problems"]),
        )


@dataclass(frozen=True, slots=True)
class LocationCheck:
    """One location check of one chip against its licensed region; true when inside.

    Attributes:
        serial: The chip.
        region_id: Its licensed region.
        time_us: When the check ran.
        status: The outcome.
        results: One per constraint of the region.
        log_index: Its index in the `LocationLog`, once recorded.
    """

    serial: str
    region_id: str
    time_us: int
    status: LocationStatus
    results: tuple[LandmarkResult, ...]
    log_index: int | None = field(default=None, compare=False)

    @property
    def inside(self) -> bool:
        """Whether the chip was proven inside its region."""
        return self.status is LocationStatus.INSIDE

    def __bool__(self) -> bool:
        """True when inside."""
        return self.inside

    @property
    def summary(self) -> str:
        """One line for people."""
        parts = []
        for r in self.results:
            bound = "no bound" if r.bound_km is None else f"<= {r.bound_km:.0f} km"
            why = f" ({'; '.join(r.problems)})" if r.problems else ""
            parts.append(f"{r.landmark}: {bound} of {r.radius_km:.0f} km allowed{why}")
        return f"chip S/N {self.serial} {self.status.value} {self.region_id}: " + ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """As JSON values."""
        return {
            "serial": self.serial,
            "region": self.region_id,
            "time_us": self.time_us,
            "status": self.status.value,
            "results": [r.to_json() for r in self.results],
            "log_index": self.log_index,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any], log_index: int | None = None) -> LocationCheck:
        """Parse `to_json`'s form (trusted: from a verified record)."""
        return cls(
            str(doc["serial"]),
            str(doc["region"]),
            int(doc["time_us"]),
            LocationStatus(doc["status"]),
            tuple(LandmarkResult.from_json(r) for r in doc["results"]),
            log_index,
        )


def _payload(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        msg = f"{what}: payload is not JSON"
        raise FormatError(msg) from e
    if not isinstance(doc, dict):
        msg = f"{what}: payload is not an object"
        raise FormatError(msg)
    return doc


def _one(
    env: Envelope | bytes | str,
    *,
    serial: str,
    chip_key: VerifyingKey,
    landmarks: Mapping[str, Landmark],
    window: tuple[int, int],
    seen: MutableSet[str],
) -> tuple[str, int]:
    """Verify one measurement; return (landmark id, rtt_us) or raise with the problem."""
    keys = {lm.key.key_id: lm.key for lm in landmarks.values()}
    verified = verify_envelope(env, keys, payload_type=MEASUREMENT_TYPE)
    doc = _payload(verified.payload, "measurement")
    lm_id = str(doc.get("landmark"))
    landmark = landmarks.get(lm_id)
    if landmark is None or landmark.key.key_id not in verified.key_ids:
        msg = f"measurement names landmark {lm_id!r:.40} but is signed by another landmark"
        raise IntegrityError(msg)
    nonce, rtt = doc.get("nonce"), doc.get("rtt_us")
    if doc.get("type") != MEASUREMENT_VERSION or not isinstance(rtt, int) or rtt < 0:
        msg = f"measurement by {lm_id}: unknown version or bad round trip"
        raise FormatError(msg)
    if doc.get("serial") != serial:
        msg = f"measurement by {lm_id} is of chip {doc.get('serial')!r:.40}"
        raise IntegrityError(msg)
    t = doc.get("time_us")
    if not isinstance(t, int) or not window[0] <= t <= window[1]:
        msg = f"measurement by {lm_id} at {t!r:.20} us is outside the check window {window}"
        raise VerificationFailed(msg)
    try:
        answer = verify_envelope(
            str(doc.get("answer")), {chip_key.key_id: chip_key}, payload_type=LOCATION_ANSWER_TYPE
        )
    except IntegrityError as e:
        msg = f"answer to {lm_id} is not signed by chip {serial}'s registered key"
        raise IntegrityError(msg) from e
    got = _payload(answer.payload, "answer")
    if (got.get("serial"), got.get("landmark"), got.get("nonce")) != (serial, lm_id, nonce):
        msg = (
            f"answer to {lm_id} is for serial {got.get('serial')!r:.40}, landmark "
            f"{got.get('landmark')!r:.40}, nonce {str(got.get('nonce'))[:12]!r} (replayed?)"
        )
        raise IntegrityError(msg)
    if str(nonce) in seen:
        msg = f"measurement by {lm_id}: nonce {str(nonce)[:12]}… was used by an earlier check"
        raise VerificationFailed(msg)
    seen.add(str(nonce))
    return lm_id, rtt


def check_location(
    serial: str,
    chip_key: VerifyingKey,
    region: LicensedRegion,
    landmarks: Mapping[str, Landmark] | Iterable[Landmark],
    measurements: Sequence[Envelope | bytes | str],
    *,
    now_us: int,
    policy: LocationPolicy | None = None,
    seen_nonces: MutableSet[str] | None = None,
) -> LocationCheck:
    """Judge a chip's measurements against its licensed region (see the module docs).

    Args:
        serial: The chip checked.
        chip_key: Its identity key as the directory registered it.
        region: Its licensed region.
        landmarks: The trusted landmarks (their keys are trust roots).
        measurements: The landmarks' signed measurements, as received.
        now_us: The check time (microseconds since the epoch).
        policy: How to judge them.
        seen_nonces: Nonces of earlier checks (updated): a measurement reused
            across checks is refused.

    Raises:
        FormatError: More than 256 measurements (work is bounded up front).
    """
    check_serial(serial)
    policy = policy or LocationPolicy()
    if len(measurements) > _MAX_MEASUREMENTS:
        msg = (
            f"location check: expected at most {_MAX_MEASUREMENTS} measurements, "
            f"got {len(measurements)}"
        )
        raise FormatError(msg)
    known: dict[str, Landmark] = (
        dict(landmarks)
        if isinstance(landmarks, Mapping)
        else {lm.landmark_id: lm for lm in landmarks}
    )
    window = (now_us - round(policy.max_age_s * _US), now_us + round(policy.max_skew_s * _US))
    seen = seen_nonces if seen_nonces is not None else set()
    rtts: dict[str, list[int]] = {lm: [] for lm in region.landmarks}
    problems: dict[str, list[str]] = {lm: [] for lm in region.landmarks}
    stray: list[str] = []
    for i, env in enumerate(measurements):
        try:
            lm_id, rtt = _one(
                env, serial=serial, chip_key=chip_key, landmarks=known, window=window, seen=seen
            )
        except ComputeWatchError as e:
            text = f"measurement {i}: {' '.join(e.message.split())[:200]}"
            lm_guess = _claimed_landmark(env)
            problems.get(lm_guess, stray).append(text)
            continue
        if lm_id in rtts:  # a trusted landmark outside the region proves nothing here
            rtts[lm_id].append(rtt)
    results = []
    for c in region.constraints:
        got = rtts[c.landmark]
        found = problems[c.landmark] + stray
        if len(got) < policy.min_probes and not found:
            found = [f"{len(got)}/{policy.min_probes} measurements"] if got else []
        best = min(got) if got else None
        bound = None if best is None else rtt_bound_km(best, policy.km_per_ms)
        results.append(LandmarkResult(c.landmark, c.radius_km, len(got), best, bound, tuple(found)))
    return LocationCheck(serial, region.region_id, now_us, location_status(results), tuple(results))


def _claimed_landmark(env: Envelope | bytes | str) -> str:
    """The landmark an unverified measurement names (to file its problem under)."""
    try:
        e = env if isinstance(env, Envelope) else Envelope.from_json(env)
        return str(json.loads(e.payload).get("landmark"))
    except (ComputeWatchError, ValueError, AttributeError):
        return ""


def location_status(results: Sequence[LandmarkResult]) -> LocationStatus:
    """The outcome that landmark results give (problems first, then missing bounds)."""
    if any(r.problems for r in results):
        return LocationStatus.REJECTED
    if any(r.bound_km is None for r in results):
        return LocationStatus.UNPROVEN
    if all(r.proven for r in results):
        return LocationStatus.INSIDE
    return LocationStatus.OUTSIDE


def schedule_checks(
    rng: np.random.Generator, mean_interval_s: float, start_s: float, end_s: float
) -> list[float]:
    """Check times as a Poisson process: the Prover cannot tell when the next one comes.

    A check proves where the chip was when it answered; fixed times would let
    a Prover bring a diverted chip back for them. The times come from the
    Verifier's own generator (record its seed), at most 100,000 of them.

    Example:
        >>> import numpy as np
        >>> times = schedule_checks(np.random.default_rng(1), 3600.0, 0.0, 86_400.0)
        >>> 10 < len(times) < 40 and times == sorted(times)
        True
    """
    rate_span = (end_s - start_s) / positive("mean_interval_s", mean_interval_s)
    if not 0 <= rate_span <= _MAX_CHECKS / 2:
        msg = f"schedule: expected 0 <= (end - start) / mean interval <= {_MAX_CHECKS // 2}"
        raise FormatError(msg)
    out: list[float] = []
    t = start_s
    while len(out) < _MAX_CHECKS:
        t += float(rng.exponential(mean_interval_s))
        if t >= end_s:
            break
        out.append(t)
    return out


def verify_location(*args: Any, **kwargs: Any) -> LocationCheck:
    """`check_location`, raising `VerificationFailed` unless the chip is proven inside."""
    check = check_location(*args, **kwargs)
    if not check.inside:
        raise VerificationFailed(check.summary)
    return check


class LocationLog:
    """Location checks as checker-signed records in a Merkle log of their own."""

    def __init__(self, log: MerkleLog, key: VerifyingKey, signer: Signer | None = None) -> None:
        """Read (and, with ``signer``, append to) ``log``; records must verify under ``key``."""
        if signer is not None and signer.key_id != key.key_id:
            msg = "location log: the signer's key is not the log's key"
            raise FormatError(msg)
        self._log = log
        self._key = key
        self._signer = signer

    @property
    def size(self) -> int:
        """Records so far."""
        return self._log.size

    def record(self, check: LocationCheck) -> LocationCheck:
        """Append ``check`` signed by the checker; return it with its log index."""
        if self._signer is None:
            msg = "location log: opened without the checker's signing key"
            raise FormatError(msg)
        body = check.to_json() | {"log_index": None}
        env = sign_envelope(CHECK_RECORD_TYPE, canonical_json(body), [self._signer])
        index = self._log.append(env.to_json())
        return dataclasses.replace(check, log_index=index)

    def checks(self) -> list[LocationCheck]:
        """Every record, verified, in log order.

        Raises:
            IntegrityError: A record is not signed by the checker (naming its index).
        """
        out = []
        for i in range(self._log.size):
            try:
                verified = verify_envelope(
                    self._log.entry(i),
                    {self._key.key_id: self._key},
                    payload_type=CHECK_RECORD_TYPE,
                )
                out.append(LocationCheck.from_json(_payload(verified.payload, "record"), i))
            except (FormatError, KeyError, TypeError, ValueError) as e:
                msg = f"location log entry {i}: not a location check record ({e})"
                raise IntegrityError(msg) from e
            except IntegrityError as e:
                msg = f"location log entry {i}: {e.message}"
                raise IntegrityError(msg) from e
        return out
