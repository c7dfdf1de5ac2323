"""The facts that rules are written over, and their CEL form.

The verification layer computes the facts of one verified training run
inside the trusted cluster and hands them to `evaluate`. Every rule
expression sees exactly these top-level names (paper §2.1's kinds of
facts); a name outside them is refused when the rule file is loaded.

=============  ==========================================================
name           CEL type and meaning
=============  ==========================================================
`run`          `{id: string, chips: int, steps: int}`
`training`     `{flops: double, chip_hours: double}`: training compute
`data`         `{<property>: {estimate, lower, upper: double,
               sampled, flagged: int}}`: data properties estimated from a
               random sample (`estimate_property`)
`hyper`        `{<key>: double | string | bool}`: the run's configuration
               scalars plus derived ones such as `rl_fraction`; integers
               are doubles
`benchmarks`   `{<name>: double}`: scores of the final model
`declared`     `{reported: bool, approvals: list<string>}`: what the
               Prover declared (the run was reported; ids of the approval
               rules it holds an approval for)
`verified`     `bool`: transcript verification passed
=============  ==========================================================

Numbers are typed by the schema, not by how they were written: a
`training.flops` of `5` is the double `5.0`, so `training.flops > 1e11`
never fails for want of a decimal point.

Example::

    >>> from computewatch.rules import Facts, RunFacts, TrainingFacts
    >>> facts = Facts(RunFacts("r1", chips=4, steps=300), TrainingFacts(5e10, 0.1))
    >>> facts.to_dict()["training"]
    {'flops': 50000000000.0, 'chip_hours': 0.1}
    >>> Facts.from_dict(facts.to_dict()) == facts
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from celpy import celtypes

from computewatch._validate import int_in_range, non_negative, text
from computewatch.errors import FormatError, ParameterError
from computewatch.rules._estimate import PropertyEstimate

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "DATA_FIELDS",
    "FIXED_FIELDS",
    "NAMESPACES",
    "DeclaredFacts",
    "Facts",
    "HyperValue",
    "RunFacts",
    "TrainingFacts",
]

#: The top-level names a rule expression may use.
NAMESPACES = ("benchmarks", "data", "declared", "hyper", "run", "training", "verified")
#: The fields of the fixed-shape namespaces.
FIXED_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "run": ("chips", "id", "steps"),
        "training": ("chip_hours", "flops"),
        "declared": ("approvals", "reported"),
    }
)
#: The fields of every `data.<property>`.
DATA_FIELDS = ("estimate", "flagged", "lower", "sampled", "upper")

_MAX_KEY = 128
_MAX_ID = 200
_MAX_STR = 1024
_MAX_INT = 2**63 - 1

#: A hyperparameter fact.
HyperValue = float | str | bool


def _finite(where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        msg = f"{where}: expected a finite number, got {value!r}"
        raise ParameterError(msg)
    return float(value)


@dataclass(frozen=True, slots=True)
class RunFacts:
    """Which run: its id, the chips it ran on, the optimizer steps it took."""

    id: str
    chips: int
    steps: int

    def __post_init__(self) -> None:
        """Check the id is printable text and the counts are whole numbers."""
        text("facts run.id", self.id, max_len=_MAX_ID)
        int_in_range("facts run.chips", self.chips, 0, _MAX_INT)
        int_in_range("facts run.steps", self.steps, 0, _MAX_INT)


@dataclass(frozen=True, slots=True)
class TrainingFacts:
    """Training compute: total FLOPs and chip-hours (paper §2.1)."""

    flops: float
    chip_hours: float

    def __post_init__(self) -> None:
        """Check both are finite and >= 0; store them as floats."""
        object.__setattr__(self, "flops", non_negative("facts training.flops", self.flops))
        object.__setattr__(
            self, "chip_hours", non_negative("facts training.chip_hours", self.chip_hours)
        )


@dataclass(frozen=True, slots=True)
class DeclaredFacts:
    """What the Prover declared: the run was reported; approvals it holds."""

    reported: bool = False
    approvals: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        """Check `reported` is a bool and `approvals` a sequence of rule ids."""
        reported: object = self.reported
        approvals: object = self.approvals
        if not isinstance(reported, bool):
            msg = f"facts declared.reported: expected a bool, got {reported!r}"
            raise ParameterError(msg)
        if not isinstance(approvals, tuple | list):
            msg = f"facts declared.approvals: expected a list of rule ids, got {approvals!r:.80}"
            raise ParameterError(msg)
        for i, a in enumerate(approvals):
            text(f"facts declared.approvals[{i}]", a, max_len=_MAX_KEY)
        object.__setattr__(self, "approvals", tuple(approvals))


@dataclass(frozen=True)
class Facts:
    """Everything the rules may look at about one verified training run.

    `data`, `hyper` and `benchmarks` are read-only mappings once built. The
    object is not hashable (it holds mappings).
    """

    run: RunFacts
    training: TrainingFacts
    data: Mapping[str, PropertyEstimate] = field(default_factory=dict)
    hyper: Mapping[str, HyperValue] = field(default_factory=dict)
    benchmarks: Mapping[str, float] = field(default_factory=dict)
    declared: DeclaredFacts = field(default_factory=DeclaredFacts)
    verified: bool = False

    __hash__ = None  # type: ignore[assignment]  # it holds mappings: not hashable

    def __post_init__(self) -> None:
        """Check every part's type and freeze the mappings."""
        for name, kind in (
            ("run", RunFacts),
            ("training", TrainingFacts),
            ("declared", DeclaredFacts),
        ):
            if not isinstance(getattr(self, name), kind):
                msg = f"facts {name}: expected a {kind.__name__}, got {getattr(self, name)!r:.80}"
                raise ParameterError(msg)
        verified: object = self.verified
        if not isinstance(verified, bool):
            msg = f"facts verified: expected a bool, got {verified!r}"
            raise ParameterError(msg)
        data = _keyed("data", self.data)
        for key, value in data.items():
            if not isinstance(value, PropertyEstimate):
                msg = f"facts data.{key}: expected a PropertyEstimate, got {value!r:.80}"
                raise ParameterError(msg)
        hyper = {
            key: _hyper_value(key, value) for key, value in _keyed("hyper", self.hyper).items()
        }
        benchmarks = _keyed("benchmarks", self.benchmarks)
        for key, value in benchmarks.items():
            benchmarks[key] = _finite(f"facts benchmarks.{key}", value)
        object.__setattr__(self, "data", MappingProxyType(data))
        object.__setattr__(self, "hyper", MappingProxyType(hyper))
        object.__setattr__(self, "benchmarks", MappingProxyType(benchmarks))

    @classmethod
    def from_dict(cls, doc: object, *, where: str = "facts") -> Facts:
        """Build facts from JSON-shaped data (the inverse of `to_dict`).

        `run` and `training` are required; the rest default to empty maps,
        `declared` to nothing declared and `verified` to false (fail closed).

        Raises:
            FormatError: an unknown or missing key, or a value of the wrong type,
                named as `<where> field '<path>'`.
        """
        top = _object(where, doc, required=("run", "training"), optional=NAMESPACES)
        run = _object(f"{where} field 'run'", top["run"], required=FIXED_FIELDS["run"])
        training = _object(
            f"{where} field 'training'", top["training"], required=FIXED_FIELDS["training"]
        )
        declared = _object(
            f"{where} field 'declared'", top.get("declared", {}), optional=FIXED_FIELDS["declared"]
        )
        data: dict[str, PropertyEstimate] = {}
        for key, value in _object(
            f"{where} field 'data'", top.get("data", {}), open_keys=True
        ).items():
            fields = _object(f"{where} field 'data.{key}'", value, required=DATA_FIELDS)
            try:
                data[key] = PropertyEstimate(**fields)
            except ParameterError as e:
                msg = f"{where} field 'data.{key}': {e.message.split(': ', 1)[-1]}"
                raise FormatError(msg) from e
        try:
            return cls(
                run=RunFacts(**run),
                training=TrainingFacts(**training),
                data=data,
                hyper=_object(f"{where} field 'hyper'", top.get("hyper", {}), open_keys=True),
                benchmarks=_object(
                    f"{where} field 'benchmarks'", top.get("benchmarks", {}), open_keys=True
                ),
                declared=DeclaredFacts(
                    reported=declared.get("reported", False),
                    approvals=declared.get("approvals", ()),
                ),
                verified=top.get("verified", False),
            )
        except ParameterError as e:
            # "facts run.chips: expected ..." -> "<where> field 'run.chips': expected ..."
            path, _, rest = e.message.removeprefix("facts ").partition(": ")
            msg = f"{where} field '{path}': {rest}"
            raise FormatError(msg) from e

    def to_dict(self) -> dict[str, Any]:
        """The facts as JSON-ready data."""
        return {
            "run": {"id": self.run.id, "chips": self.run.chips, "steps": self.run.steps},
            "training": {"flops": self.training.flops, "chip_hours": self.training.chip_hours},
            "data": {k: v.to_dict() for k, v in self.data.items()},
            "hyper": dict(self.hyper),
            "benchmarks": dict(self.benchmarks),
            "declared": {
                "reported": self.declared.reported,
                "approvals": list(self.declared.approvals),
            },
            "verified": self.verified,
        }

    def to_cel(self) -> dict[str, celtypes.Value]:
        """The facts as CEL values, typed by the schema (the rules' activation)."""
        s = celtypes.StringType
        d = celtypes.DoubleType
        i = celtypes.IntType
        b = celtypes.BoolType
        return {
            "run": celtypes.MapType(
                {
                    s("id"): s(self.run.id),
                    s("chips"): i(self.run.chips),
                    s("steps"): i(self.run.steps),
                }
            ),
            "training": celtypes.MapType(
                {
                    s("flops"): d(self.training.flops),
                    s("chip_hours"): d(self.training.chip_hours),
                }
            ),
            "data": celtypes.MapType(
                {
                    s(k): celtypes.MapType(
                        {
                            s("estimate"): d(v.estimate),
                            s("lower"): d(v.lower),
                            s("upper"): d(v.upper),
                            s("sampled"): i(v.sampled),
                            s("flagged"): i(v.flagged),
                        }
                    )
                    for k, v in self.data.items()
                }
            ),
            "hyper": celtypes.MapType({s(k): _hyper_cel(v) for k, v in self.hyper.items()}),
            "benchmarks": celtypes.MapType({s(k): d(v) for k, v in self.benchmarks.items()}),
            "declared": celtypes.MapType(
                {
                    s("reported"): b(self.declared.reported),
                    s("approvals"): celtypes.ListType([s(a) for a in self.declared.approvals]),
                }
            ),
            "verified": b(self.verified),
        }

    def has(self, path: Sequence[str]) -> bool:
        """Whether the fact at `path` (e.g. `("data", "exploit_code")`) exists."""
        node: object = self.to_dict()
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True


def _hyper_value(key: str, value: object) -> HyperValue:
    """A checked hyperparameter: a bool, printable text, or a finite float."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > _MAX_STR or not value.isprintable():
            msg = (
                f"facts hyper.{key}: expected printable text of at most {_MAX_STR} "
                f"characters, got {value!r:.80}"
            )
            raise ParameterError(msg)
        return value
    return _finite(f"facts hyper.{key}", value)


def _hyper_cel(value: HyperValue) -> celtypes.Value:
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    return celtypes.DoubleType(value)


def _keyed(name: str, value: object) -> dict[str, Any]:
    """A copy of the mapping `value`, checking its keys are short printable text."""
    if not hasattr(value, "items") or not hasattr(value, "keys"):
        msg = f"facts {name}: expected a mapping, got {value!r:.80}"
        raise ParameterError(msg)
    out: dict[str, Any] = dict(value.items())
    for key in out:
        text(f"facts {name} key", key, max_len=_MAX_KEY)
    return out


def _object(
    where: str,
    value: object,
    *,
    required: Sequence[str] = (),
    optional: Sequence[str] = (),
    open_keys: bool = False,
) -> dict[str, Any]:
    """Check `value` is a JSON object with string keys, all `required` and no others.

    Keys in `optional` may appear too; with `open_keys`, any key may.
    """
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        msg = f"{where}: expected an object, got {type(value).__name__}"
        raise FormatError(msg)
    if not open_keys:
        allowed = sorted({*required, *optional})
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            msg = f"{where}: unknown key {unknown[0]!r}; expected one of {', '.join(allowed)}"
            raise FormatError(msg)
    missing = [k for k in required if k not in value]
    if missing:
        msg = f"{where}: missing key {missing[0]!r}"
        raise FormatError(msg)
    return dict(value)
