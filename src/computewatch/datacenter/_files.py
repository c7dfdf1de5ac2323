"""The transcript's JSON files as frozen types, each with one validating parser.

A Prover's manifest, report, per-step records, metrics records and
snapshot claims are hostile input. Each type here has a ``from_dict`` that
checks every field's type and range and raises `FormatError` naming the
file and the field (``report.json: field 'snapshots[2].seq': expected int,
got str``), and a ``to_dict`` that writes it back (the shape of
python-tuf's ``Metadata.from_dict``/``to_dict``). Unknown fields are kept
in ``extra`` so hashing the received bytes is unaffected.

Example::

    >>> rec = MetricsRecord.from_dict(
    ...     {"step": 0, "loss": 2.5, "lr": 0.1, "update_norm": 0.2, "grad_norm": 1.0,
    ...      "time": 10.0, "seconds": 0.5}, "metrics.jsonl line 1")
    >>> rec.loss
    2.5
    >>> MetricsRecord.from_dict({"step": "0"}, "metrics.jsonl line 1")
    Traceback (most recent call last):
    ...
    computewatch.errors.FormatError: metrics.jsonl line 1: field 'step': expected int, got str
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from computewatch.errors import FormatError

__all__ = [
    "CheckpointRef",
    "ClaimRecord",
    "Manifest",
    "MetricsRecord",
    "ProverReport",
    "StepRecord",
]

_HEX = frozenset("0123456789abcdef")


class _Doc:
    """Field readers over one JSON object, naming `where` in every error."""

    def __init__(self, doc: object, where: str, prefix: str = "") -> None:
        if not isinstance(doc, dict):
            name = f"field {prefix!r}" if prefix else "document"
            msg = f"{where}: {name}: expected a JSON object, got {type(doc).__name__}"
            raise FormatError(msg)
        self.doc: dict[str, Any] = doc
        self.where = where
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, expected: str, value: object) -> FormatError:
        got = type(value).__name__ if not isinstance(value, int | float) else repr(value)
        if isinstance(value, bool):
            got = "bool"
        return FormatError(
            f"{self.where}: field {self._name(key)!r}: expected {expected}, got {got}"
        )

    def get(self, key: str) -> Any:
        if key not in self.doc:
            msg = f"{self.where}: field {self._name(key)!r}: missing"
            raise FormatError(msg)
        return self.doc[key]

    def text(self, key: str) -> str:
        value = self.get(key)
        if not isinstance(value, str):
            raise self.fail(key, "str", value)
        return value

    def digest(self, key: str) -> str:
        value = self.text(key)
        algo, _, hexpart = value.partition(":")
        if algo not in {"sha256", "blake3"} or len(hexpart) != 64 or not set(hexpart) <= _HEX:  # noqa: PLR2004
            raise self.fail(key, "a digest 'sha256:<64 hex>'", value[:40])
        return value

    def integer(self, key: str, low: int = 0, high: int = 2**63 - 1) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, "int", value)
        if not low <= value <= high:
            raise self.fail(key, f"an int in [{low}, {high}]", value)
        return value

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.fail(key, "bool", value)
        return value

    def number(self, key: str) -> float:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "a number", value)
        if not math.isfinite(value):
            raise self.fail(key, "a finite number", value)
        return float(value)

    def array(self, key: str) -> list[Any]:
        value = self.get(key)
        if not isinstance(value, list):
            raise self.fail(key, "a list", value)
        return value

    def obj(self, key: str) -> _Doc:
        return _Doc(self.get(key), self.where, self._name(key))

    def span(self, key: str) -> tuple[int, int]:
        value = self.get(key)
        if (
            not isinstance(value, list)
            or len(value) != 2  # noqa: PLR2004
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
            or not 0 <= value[0] <= value[1]
        ):
            raise self.fail(key, "[start, stop] with 0 <= start <= stop", value)
        return int(value[0]), int(value[1])

    def items(self, key: str) -> list[_Doc]:
        return [
            _Doc(v, self.where, f"{self._name(key)}[{i}]") for i, v in enumerate(self.array(key))
        ]


@dataclass(frozen=True, slots=True)
class CheckpointRef:
    """A committed checkpoint: its step and file digest."""

    step: int
    digest: str


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """A snapshot claim as the report states it."""

    serial: str
    seq: int
    step: int
    h: str
    slice: tuple[int, int]
    run_id: str

    @classmethod
    def parse(cls, d: _Doc) -> ClaimRecord:
        """From one claim object."""
        return cls(
            serial=d.text("serial"),
            seq=d.integer("seq"),
            step=d.integer("step"),
            h=d.digest("h"),
            slice=d.span("slice"),
            run_id=d.text("run_id"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "serial": self.serial,
            "seq": self.seq,
            "step": self.step,
            "h": self.h,
            "slice": list(self.slice),
            "run_id": self.run_id,
        }


@dataclass(frozen=True, slots=True)
class ProverReport:
    """The Prover's report (`report.json`)."""

    format: str
    run_id: str
    commitment: str
    precommitment: str
    code_hash: str
    data_root: str
    checkpoints: tuple[CheckpointRef, ...]
    snapshots: tuple[ClaimRecord, ...]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, doc: object, where: str = "report.json") -> ProverReport:
        """Validate every field the Verifier reads.

        Raises:
            FormatError: naming the file and the field.
        """
        d = _Doc(doc, where)
        known = {"format", "run_id", "commitment", "precommitment", "code_hash", "data_root"}
        known |= {"checkpoints", "snapshots"}
        for key in ("manifest_digest",):
            if key in d.doc:
                d.digest(key)
        for key in ("steps", "world_size"):
            if key in d.doc:
                d.integer(key)
        if "batch_roots" in d.doc:
            for i, root in enumerate(d.array("batch_roots")):
                if not isinstance(root, str):
                    key = f"batch_roots[{i}]"
                    raise d.fail(key, "a digest string", root)
        return cls(
            format=d.text("format"),
            run_id=d.text("run_id"),
            commitment=d.digest("commitment"),
            precommitment=d.digest("precommitment"),
            code_hash=d.digest("code_hash"),
            data_root=d.digest("data_root"),
            checkpoints=tuple(
                CheckpointRef(c.integer("step"), c.digest("digest")) for c in d.items("checkpoints")
            ),
            snapshots=tuple(ClaimRecord.parse(c) for c in d.items("snapshots")),
            extra={k: v for k, v in d.doc.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            **self.extra,
            "format": self.format,
            "run_id": self.run_id,
            "commitment": self.commitment,
            "precommitment": self.precommitment,
            "code_hash": self.code_hash,
            "data_root": self.data_root,
            "checkpoints": [{"step": c.step, "digest": c.digest} for c in self.checkpoints],
            "snapshots": [c.to_dict() for c in self.snapshots],
        }


@dataclass(frozen=True, slots=True)
class Manifest:
    """The transcript's metadata `M` (`manifest.json`), every field the Verifier reads."""

    run_id: str
    code_hash: str
    config: dict[str, Any]
    layout: list[Any]
    numel: int
    init: dict[str, Any]
    data: dict[str, Any]
    determinism: dict[str, Any]
    world_size: int
    chips: tuple[tuple[str, tuple[int, int]], ...]
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, doc: object, where: str = "manifest.json") -> Manifest:
        """Validate the manifest (types and ranges; the schedule and layout by their parsers).

        Raises:
            FormatError: naming the file and the field.
        """
        from computewatch.datacenter._data import DataSchedule  # noqa: PLC0415
        from computewatch.datacenter._determinism import Determinism  # noqa: PLC0415
        from computewatch.datacenter._layout import FlatLayout  # noqa: PLC0415

        d = _Doc(doc, where)
        program, init, sharding = d.obj("program"), d.obj("init"), d.obj("sharding")
        d.obj("config")
        d.text("format")
        d.digest("layout_digest")
        d.integer("checkpoint_every", 1)
        program.text("name")
        program.text("file")
        sharding.text("kind")
        for c in sharding.items("chips"):
            c.integer("rank")
        det, data = d.obj("determinism"), d.obj("data")
        det.integer("seed")
        det.integer("threads", 1, 4096)
        det.boolean("deterministic_algorithms")
        det.boolean("tf32")
        det.text("torch_version")
        for key in ("dataset_size", "batch_size", "steps"):
            data.integer(key, 1)
        data.integer("seed")
        for item in d.items("layout"):
            item.text("name")
            item.integer("offset")
            for i, dim in enumerate(item.array("shape")):
                if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
                    key = f"shape[{i}]"
                    raise item.fail(key, "an int >= 0", dim)
        init.text("scheme")
        init.text("seed")
        if "std" in init.doc:
            init.number("std")
        numel = d.integer("numel", 1)
        world = sharding.integer("world_size", 1, 1 << 20)
        chips = tuple((c.text("serial"), c.span("slice")) for c in sharding.items("chips"))
        for sub, parser in (("layout", FlatLayout.from_json), ("data", DataSchedule.from_json)):
            try:
                parser(d.get(sub))
            except (FormatError, KeyError, TypeError, ValueError, AttributeError) as e:
                text = e.message if isinstance(e, FormatError) else f"{type(e).__name__}: {e}"
                msg = f"{where}: field {sub!r}: {text}"
                raise FormatError(msg) from e
        try:
            Determinism.from_json(d.obj("determinism").doc)
        except (FormatError, KeyError, TypeError, ValueError) as e:
            msg = f"{where}: field 'determinism': {getattr(e, 'message', repr(e))}"
            raise FormatError(msg) from e
        return cls(
            run_id=d.text("run_id"),
            code_hash=program.digest("code_hash"),
            config=d.obj("config").doc,
            layout=d.array("layout"),
            numel=numel,
            init=init.doc,
            data=d.obj("data").doc,
            determinism=d.obj("determinism").doc,
            world_size=world,
            chips=chips,
            raw=d.doc,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (as received)."""
        return dict(self.raw)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One line of `data/steps.jsonl`: the step's point hashes and batch root."""

    step: int
    points: tuple[str, ...]
    batch_root: str

    @classmethod
    def from_dict(cls, doc: object, where: str) -> StepRecord:
        """Validate one line."""
        d = _Doc(doc, where)
        points = d.array("points")
        for i, p in enumerate(points):
            if not isinstance(p, str) or len(p) != 64 or not set(p) <= _HEX:  # noqa: PLR2004
                key = f"points[{i}]"
                raise d.fail(key, "64 hex characters", p)
        return cls(step=d.integer("step"), points=tuple(points), batch_root=d.digest("batch_root"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"step": self.step, "points": list(self.points), "batch_root": self.batch_root}


@dataclass(frozen=True, slots=True)
class MetricsRecord:
    """One line of `metrics.jsonl` (the Prover's unverified claims about a step)."""

    step: int
    loss: float
    lr: float
    update_norm: float
    grad_norm: float
    time: float
    seconds: float

    @classmethod
    def from_dict(cls, doc: object, where: str) -> MetricsRecord:
        """Validate one line."""
        d = _Doc(doc, where)
        return cls(
            step=d.integer("step"),
            loss=d.number("loss"),
            lr=d.number("lr"),
            update_norm=d.number("update_norm"),
            grad_norm=d.number("grad_norm"),
            time=d.number("time"),
            seconds=d.number("seconds"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "step": self.step,
            "loss": self.loss,
            "lr": self.lr,
            "update_norm": self.update_norm,
            "grad_norm": self.grad_norm,
            "time": self.time,
            "seconds": self.seconds,
        }
