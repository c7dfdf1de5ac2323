"""Licensed regions and location checks as registry requests (docs/location.md).

Two request kinds put location into the registry's transparency log, so a
licence and every check are covered by its receipts and checkpoints and an
auditor's `Directory.replay` re-applies them:

* ``license-region`` (the registrar): ``{"serials": [...], "region":
  {"id": ..., "within": [{"landmark": ..., "radius_km": ...}, ...]}}``
  licenses chips to a region (replacing an earlier licence);
* ``location-check`` (a verifier): ``{"check": {...}}``, the result of
  `check_location` (`LocationCheck.to_json` without ``log_index``) as the
  Verifier's checker signed it. The registry does not re-run the check (it
  holds no measurements); it refuses a check that is not about the chip's
  licensed region, whose results are not exactly the region's constraints
  (another landmark, another radius), whose outcome does not follow from its
  own results, or that is later than the request.

Every byte of a body is hostile: the parsers here are strict (known fields
only, typed, bounded) and raise `FormatError` naming the field.

Example:
    >>> doc = {"id": "eu-west", "within": [{"landmark": "lm-fra", "radius_km": 400}]}
    >>> parse_region(doc).constraints[0].radius_km
    400.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from computewatch._validate import text
from computewatch.errors import FormatError, ParameterError
from computewatch.supplychain._effects import Effects
from computewatch.supplychain._location import (
    LandmarkResult,
    LocationCheck,
    LocationStatus,
    location_status,
)
from computewatch.supplychain._location_geo import LicensedRegion, RegionConstraint
from computewatch.supplychain._model import (
    ChipEvent,
    CustodyViolation,
    EventKind,
    Rule,
    UnknownEntity,
    check_serial,
)

if TYPE_CHECKING:
    from computewatch.supplychain._effects import StateView
    from computewatch.supplychain._model import Actor
    from computewatch.supplychain._requests import Request

__all__ = ["location_effects", "parse_check", "parse_region"]

_MAX_CONSTRAINTS = 32
_MAX_PROBLEMS = 300
_MAX_PROBLEM_TEXT = 300
_MAX_US = (1 << 63) - 1
_MAX_NUMBER = 1e9
_CHECK_FIELDS = frozenset({"serial", "region", "time_us", "status", "results"})
_RESULT_FIELDS = frozenset(
    {"landmark", "radius_km", "probes", "min_rtt_us", "bound_km", "problems"}
)


def _fields(doc: object, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        msg = f"{where}: expected an object, got {type(doc).__name__}"
        raise FormatError(msg)
    if set(doc) != allowed:
        msg = f"{where}: expected the fields {sorted(allowed)}, got {sorted(map(str, doc))[:10]}"
        raise FormatError(msg)
    return doc


def _int(value: object, where: str, *, none: bool = False) -> int | None:
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_US:
        msg = f"{where}: expected an integer 0..2**63-1, got {value!r:.40}"
        raise FormatError(msg)
    return value


def _number(value: object, where: str, *, none: bool = False) -> float | None:
    if value is None and none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value < _MAX_NUMBER
    ):
        msg = f"{where}: expected a number 0..1e9, got {value!r:.40}"
        raise FormatError(msg)
    return float(value)


def parse_region(doc: object, where: str = "region") -> LicensedRegion:
    """Parse a licensed region from hostile JSON (`FormatError` naming the bad field)."""
    region = _fields(doc, frozenset({"id", "within"}), where)
    within = region["within"]
    if not isinstance(within, list) or not 1 <= len(within) <= _MAX_CONSTRAINTS:
        msg = f"{where}.within: expected a list of 1-{_MAX_CONSTRAINTS} constraints"
        raise FormatError(msg)
    try:
        constraints = []
        for i, c in enumerate(within):
            got = _fields(c, frozenset({"landmark", "radius_km"}), f"{where}.within[{i}]")
            radius = _number(got["radius_km"], f"{where}.within[{i}].radius_km")
            constraints.append(RegionConstraint(got["landmark"], radius or 0.0))
        return LicensedRegion(text(f"{where}.id", region["id"], max_len=64), tuple(constraints))
    except ParameterError as e:
        msg = f"{where}: {e.message}"
        raise FormatError(msg) from e


def _result(doc: object, where: str) -> LandmarkResult:
    got = _fields(doc, _RESULT_FIELDS, where)
    problems = got["problems"]
    if not isinstance(problems, list) or len(problems) > _MAX_PROBLEMS:
        msg = f"{where}.problems: expected a list of at most {_MAX_PROBLEMS} lines"
        raise FormatError(msg)
    for p in problems:
        if not isinstance(p, str) or len(p) > _MAX_PROBLEM_TEXT or not p.isprintable():
            msg = f"{where}.problems: expected printable lines of at most {_MAX_PROBLEM_TEXT} chars"
            raise FormatError(msg)
    try:
        landmark = text(f"{where}.landmark", got["landmark"], max_len=64)
    except ParameterError as e:
        raise FormatError(e.message) from e
    return LandmarkResult(
        landmark,
        _number(got["radius_km"], f"{where}.radius_km") or 0.0,
        _int(got["probes"], f"{where}.probes") or 0,
        _int(got["min_rtt_us"], f"{where}.min_rtt_us", none=True),
        _number(got["bound_km"], f"{where}.bound_km", none=True),
        tuple(problems),
    )


def parse_check(doc: object, where: str = "check") -> LocationCheck:
    """Parse a location check from hostile JSON (`FormatError` naming the bad field).

    The outcome must be the one its results give (`location_status`): a
    check claiming ``inside`` with a bound beyond a radius is refused.
    """
    got = _fields(doc, _CHECK_FIELDS, where)
    results = got["results"]
    if not isinstance(results, list) or not 1 <= len(results) <= _MAX_CONSTRAINTS:
        msg = f"{where}.results: expected a list of 1-{_MAX_CONSTRAINTS} landmark results"
        raise FormatError(msg)
    parsed = tuple(_result(r, f"{where}.results[{i}]") for i, r in enumerate(results))
    try:
        status = LocationStatus(got["status"])
        region_id = text(f"{where}.region", got["region"], max_len=64)
    except (ValueError, TypeError) as e:
        msg = f"{where}: bad status or region ({str(e)[:120]})"
        raise FormatError(msg) from e
    expected = location_status(parsed)
    if status is not expected:
        msg = (
            f"{where}.status: its results give {expected.value!r}, the check says {status.value!r}"
        )
        raise FormatError(msg)
    return LocationCheck(
        check_serial(got["serial"], f"{where}.serial"),
        region_id,
        _int(got["time_us"], f"{where}.time_us") or 0,
        status,
        parsed,
    )


def check_body(kind: str, body: dict[str, Any]) -> None:
    """Check the shape of a ``license-region`` or ``location-check`` body (`FormatError`)."""
    if kind == "license-region":
        allowed = {"serials", "region"}
        if set(body) - allowed or not isinstance(body.get("serials"), list):
            msg = f"license-region request body: expected the fields {sorted(allowed)}"
            raise FormatError(msg)
        parse_region(body.get("region"), "license-region request body region")
    else:
        if set(body) != {"check"}:
            msg = "location-check request body: expected exactly the field 'check'"
            raise FormatError(msg)
        parse_check(body["check"], "location-check request body check")


def location_effects(
    view: StateView, request: Request, digest: bytes, index: int, actor: Actor
) -> Effects:
    """The effects of a (signed, fresh, role-checked) ``license-region`` or ``location-check``.

    Raises:
        UnknownEntity: A chip is not in the directory, or has no licensed region to check.
        CustodyViolation: The check is against another region, other
            landmarks or radii, or later than the request.
    """
    t = request.time_us
    if request.kind.value == "license-region":
        region = parse_region(request.body["region"])
        events = []
        for serial in request.serials:
            if view.chip(check_serial(serial)) is None:
                msg = (
                    f"license-region request by {request.actor}: "
                    f"chip S/N {serial} is not in the directory"
                )
                raise UnknownEntity(msg)
            events.append(
                ChipEvent(
                    serial,
                    index,
                    EventKind.LICENSED,
                    request.actor,
                    None,
                    t,
                    flagged=False,
                    details={"region": region.to_json()},
                )
            )
        regions = tuple((s, region) for s in request.serials)
        return Effects(request, digest, index, (actor,), (), tuple(events), regions=regions)
    check = parse_check(request.body["check"])
    where = f"location-check of chip S/N {check.serial} by {request.actor}"
    if view.chip(check.serial) is None:
        msg = f"{where}: the chip is not in the directory"
        raise UnknownEntity(msg)
    licensed = view.licensed_region(check.serial)
    if licensed is None:
        msg = f"{where}: the chip has no licensed region to check against"
        raise UnknownEntity(msg)
    region = licensed
    if check.region_id != region.region_id:
        what = f"expected its licensed region {region.region_id!r}, got {check.region_id!r}"
        raise CustodyViolation(Rule.LICENSED_REGION, f"{where}: {what}")
    want = [(c.landmark, c.radius_km) for c in region.constraints]
    have = [(r.landmark, r.radius_km) for r in check.results]
    if have != want:
        what = f"expected the region's constraints {want}, got {have}"[:400]
        raise CustodyViolation(Rule.LICENSED_REGION, f"{where}: {what}")
    if check.time_us > t:
        what = f"the check's time {check.time_us} us is after the request's {t} us"
        raise CustodyViolation(Rule.IN_ORDER, f"{where}: {what}")
    logged = LocationCheck(
        check.serial, check.region_id, check.time_us, check.status, check.results, index
    )
    event = ChipEvent(
        check.serial,
        index,
        EventKind.LOCATION_CHECKED,
        request.actor,
        None,
        t,
        flagged=not check.inside,
        details={"status": check.status.value, "region": check.region_id},
    )
    return Effects(request, digest, index, (actor,), (), (event,), locations=(logged,))
