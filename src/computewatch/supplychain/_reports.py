"""Discrepancy reports over the directory (paper §6: custody must be continuous).

`find_discrepancies` is pure: give it chips and custody events (all of
them, or a superset the database preselected) and it returns what the
Verifier must look into:

* ``fabricated-never-registered``: a chip fabricated longer ago than the
  grace period and never registered to an owner (and not accounted for as
  lost or destroyed); the holder is named;
* ``in-transit-too-long``: a transfer not received within the allowed
  time; the sender, who answers for the chip until it is received, is named;
* ``owner-mismatch-at-inspection``: an inspector found the chip with
  someone other than the directory's holder, or found it although the
  directory says it is in transit, lost or destroyed, or found the seal broken;
* ``mass-loss-or-destruction``: one actor answers for at least the
  threshold number of chips lost or destroyed within the window (an
  investigation trigger, not a verdict);
* ``outside-licensed-region``: the chip's latest location check (given as
  ``locations``) did not prove it inside its licensed region: a bound beyond
  a radius, or evidence refused (see ``docs/location.md``).

Example:
    >>> from computewatch.supplychain import ReportPolicy, find_discrepancies
    >>> report = find_discrepancies([], [], ReportPolicy(), now_us=0)
    >>> report.clean
    True
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from computewatch._validate import positive, positive_int
from computewatch.supplychain._model import ChipEvent, ChipState, ChipStatus, EventKind

if TYPE_CHECKING:
    from collections.abc import Iterable

    from computewatch.supplychain._location import LocationCheck

__all__ = [
    "Discrepancy",
    "DiscrepancyKind",
    "DiscrepancyReport",
    "ReportPolicy",
    "find_discrepancies",
]

_US = 1_000_000
_DAY_S = 86_400.0


class DiscrepancyKind(enum.StrEnum):
    """What kind of gap in the chain of custody a discrepancy is."""

    NEVER_REGISTERED = "fabricated-never-registered"
    TRANSIT_TOO_LONG = "in-transit-too-long"
    OWNER_MISMATCH = "owner-mismatch-at-inspection"
    MASS_LOSS = "mass-loss-or-destruction"
    OUTSIDE_REGION = "outside-licensed-region"


@dataclass(frozen=True, slots=True)
class ReportPolicy:
    """Thresholds of the discrepancy report (all configurable by the Verifier).

    Attributes:
        never_registered_after_s: Grace period between fabrication and owner registration.
        max_transit_s: Longest a transfer may stay unreceived.
        mass_loss_count: Chips lost or destroyed under one actor that trigger an investigation.
        mass_loss_window_s: The window over which they are counted.
    """

    never_registered_after_s: float = 180 * _DAY_S
    max_transit_s: float = 30 * _DAY_S
    mass_loss_count: int = 10
    mass_loss_window_s: float = 365 * _DAY_S

    def __post_init__(self) -> None:
        """Check the thresholds (`ParameterError` naming the bad one)."""
        positive("never_registered_after_s", self.never_registered_after_s)
        positive("max_transit_s", self.max_transit_s)
        positive_int("mass_loss_count", self.mass_loss_count)
        positive("mass_loss_window_s", self.mass_loss_window_s)

    def to_json(self) -> dict[str, Any]:
        """Return the policy as JSON values."""
        return {
            "never_registered_after_s": self.never_registered_after_s,
            "max_transit_s": self.max_transit_s,
            "mass_loss_count": self.mass_loss_count,
            "mass_loss_window_s": self.mass_loss_window_s,
        }


@dataclass(frozen=True, slots=True)
class Discrepancy:
    """One finding.

    Attributes:
        kind: Which kind.
        serials: The chips concerned.
        responsible: The actor who answers for them.
        since_us: When the condition began (fabrication, transfer, inspection, window start).
        message: One line for people.
        log_indices: The log entries that show it.
    """

    kind: DiscrepancyKind
    serials: tuple[str, ...]
    responsible: str | None
    since_us: int
    message: str
    log_indices: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return the finding as JSON values."""
        return {
            "kind": self.kind.value,
            "serials": list(self.serials),
            "responsible": self.responsible,
            "since_us": self.since_us,
            "message": self.message,
            "log_indices": list(self.log_indices),
        }


@dataclass(frozen=True, slots=True)
class DiscrepancyReport:
    """The findings at one time under one policy; true when there is something to look into.

    Attributes:
        now_us: The time of the report.
        policy: The thresholds used.
        items: The findings, by kind then time.
        truncated: Kinds whose list was cut at the caller's limit.
    """

    now_us: int
    policy: ReportPolicy
    items: tuple[Discrepancy, ...]
    truncated: tuple[DiscrepancyKind, ...] = field(default=())

    @property
    def clean(self) -> bool:
        """Whether nothing was found."""
        return not self.items

    def __bool__(self) -> bool:
        """True when there are findings."""
        return bool(self.items)

    def by_kind(self, kind: DiscrepancyKind) -> list[Discrepancy]:
        """The findings of one kind."""
        return [d for d in self.items if d.kind is kind]

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON values."""
        return {
            "now_us": self.now_us,
            "policy": self.policy.to_json(),
            "clean": self.clean,
            "items": [d.to_json() for d in self.items],
            "truncated": [k.value for k in self.truncated],
        }


def _days(us: int) -> str:
    return f"{us / _US / _DAY_S:.1f} days"


def find_discrepancies(
    chips: Iterable[ChipState],
    events: Iterable[ChipEvent],
    policy: ReportPolicy,
    now_us: int,
    *,
    locations: Iterable[LocationCheck] = (),
) -> DiscrepancyReport:
    """Find the gaps in the chain of custody at time ``now_us``.

    Args:
        chips: The directory's chips (or a superset of the candidates).
        events: Its custody events (or a superset of the inspections,
            losses and destructions that matter).
        policy: The thresholds.
        now_us: The report's time, microseconds since the epoch.
        locations: Location checks (e.g. `Directory.location_checks`); each
            chip's latest one at or before ``now_us`` counts.

    Returns:
        The report; findings in a stable order (kind, then time, then serial).
    """
    items: list[Discrepancy] = []
    grace = round(policy.never_registered_after_s * _US)
    transit = round(policy.max_transit_s * _US)
    holders: dict[str, str] = {}
    for chip in chips:
        holders[chip.serial] = chip.holder
        age = now_us - chip.fabricated_us
        if (
            not chip.ever_registered
            and chip.status in {ChipStatus.HELD, ChipStatus.IN_TRANSIT}
            and age > grace
        ):
            items.append(
                Discrepancy(
                    DiscrepancyKind.NEVER_REGISTERED,
                    (chip.serial,),
                    chip.holder,
                    chip.fabricated_us,
                    f"chip S/N {chip.serial}: fabricated {_days(age)} ago by {chip.fab} and never "
                    f"registered to an owner (grace {_days(grace)}); held by {chip.holder}",
                    (chip.last_index,),
                )
            )
        waited = now_us - chip.status_since_us
        if chip.status is ChipStatus.IN_TRANSIT and waited > transit:
            items.append(
                Discrepancy(
                    DiscrepancyKind.TRANSIT_TOO_LONG,
                    (chip.serial,),
                    chip.holder,
                    chip.status_since_us,
                    f"chip S/N {chip.serial}: in transit from {chip.holder} to {chip.pending_to} "
                    "for "
                    f"{_days(waited)} (allowed {_days(transit)}); {chip.holder} answers for it",
                    (chip.last_index,),
                )
            )
    window_start = now_us - round(policy.mass_loss_window_s * _US)
    losses: dict[str, list[ChipEvent]] = {}
    for event in events:
        if event.kind is EventKind.INSPECTED and event.flagged:
            d = event.details
            what = (
                f"found with {event.counterparty}, directory holder {d.get('expected_holder')} "
                f"(status {d.get('status')})"
                if d.get("mismatch", True)
                else "seal broken"
            )
            items.append(
                Discrepancy(
                    DiscrepancyKind.OWNER_MISMATCH,
                    (event.serial,),
                    d.get("expected_holder"),
                    event.time_us,
                    f"chip S/N {event.serial}: inspection by {event.actor} at log index "
                    f"{event.log_index}: {what}",
                    (event.log_index,),
                )
            )
        elif event.kind in {EventKind.LOST, EventKind.DESTROYED} and event.time_us >= window_start:
            losses.setdefault(event.actor, []).append(event)
    for actor, lost in losses.items():
        if len(lost) >= policy.mass_loss_count:
            lost.sort(key=lambda e: (e.log_index, e.serial))
            n_lost = sum(e.kind is EventKind.LOST for e in lost)
            items.append(
                Discrepancy(
                    DiscrepancyKind.MASS_LOSS,
                    tuple(e.serial for e in lost),
                    actor,
                    window_start,
                    f"{actor}: {len(lost)} chips lost ({n_lost}) or destroyed "
                    f"({len(lost) - n_lost}) within {_days(now_us - window_start)} "
                    f"(threshold {policy.mass_loss_count}): investigate",
                    tuple(sorted({e.log_index for e in lost})),
                )
            )
    items.extend(_location_findings(locations, holders, now_us))
    order = list(DiscrepancyKind)
    items.sort(key=lambda d: (order.index(d.kind), d.since_us, d.serials))
    return DiscrepancyReport(now_us, policy, tuple(items))


def _location_findings(
    locations: Iterable[LocationCheck], holders: dict[str, str], now_us: int
) -> list[Discrepancy]:
    """A finding for every chip whose latest location check did not prove it inside."""
    latest: dict[str, LocationCheck] = {}
    for check in locations:
        seen = latest.get(check.serial)
        if check.time_us <= now_us and (seen is None or seen.time_us <= check.time_us):
            latest[check.serial] = check
    return [
        Discrepancy(
            DiscrepancyKind.OUTSIDE_REGION,
            (serial,),
            holders.get(serial),
            check.time_us,
            check.summary + ("" if check.log_index is None else f" (log index {check.log_index})"),
            () if check.log_index is None else (check.log_index,),
        )
        for serial, check in sorted(latest.items())
        if not check.inside
    ]
