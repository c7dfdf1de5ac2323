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

from dataclasses import dataclass, field
from typing import Any

from computewatch.crypto import canonical_json
from computewatch.datacenter._fields import HEX, Doc
from computewatch.errors import FormatError

__all__ = [
    "CheckpointRef",
    "ChipClaims",
    "ChipSnapshot",
    "ClaimRecord",
    "IndexRecord",
    "Manifest",
    "MetricsRecord",
    "ProverReport",
    "StepRecord",
    "encode",
]


@dataclass(frozen=True, slots=True)
class CheckpointRef:
    """A committed checkpoint: its step and file digest."""

    step: int
    digest: str


@dataclass(frozen=True, slots=True)
class IndexRecord:
    """One line of ``checkpoints/index.jsonl``: a checkpoint's step, file and digest.

    The file must be the step's own name under ``checkpoints/``: an index
    naming any other path (``/dev/zero``, ``../../secret``) would have the
    Verifier hash a file outside the transcript, or read forever.
    """

    step: int
    file: str
    digest: str

    @staticmethod
    def file_for(step: int) -> str:
        """The only file name a checkpoint of `step` may have."""
        return f"checkpoints/step-{step:08d}.safetensors"

    @classmethod
    def from_dict(cls, doc: object, where: str) -> IndexRecord:
        """Validate one line.

        Raises:
            FormatError: naming the file and the field.
        """
        d = Doc(doc, where)
        step, file = d.integer("step"), d.text("file")
        if file != cls.file_for(step):
            msg = f"{where}: field 'file': expected {cls.file_for(step)!r}, got {file[:60]!r}"
            raise FormatError(msg)
        return cls(step=step, file=file, digest=d.digest("digest"))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {"step": self.step, "file": self.file, "digest": self.digest}


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
    def parse(cls, d: Doc) -> ClaimRecord:
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
    """The Prover's report (`report.json`).

    ``manifest_digest``, ``batch_roots``, ``steps`` and ``world_size`` are
    optional (None: absent from the file); unknown fields stay in ``extra``.
    """

    format: str
    run_id: str
    commitment: str
    precommitment: str
    code_hash: str
    data_root: str
    checkpoints: tuple[CheckpointRef, ...]
    snapshots: tuple[ClaimRecord, ...]
    manifest_digest: str | None = None
    batch_roots: tuple[str, ...] | None = None
    steps: int | None = None
    world_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, doc: object, where: str = "report.json") -> ProverReport:
        """Validate every field the Verifier reads.

        Raises:
            FormatError: naming the file and the field.
        """
        d = Doc(doc, where)
        known = {"format", "run_id", "commitment", "precommitment", "code_hash", "data_root"}
        known |= {"checkpoints", "snapshots", *_REPORT_OPTIONAL}
        roots = None
        if "batch_roots" in d.doc:
            roots = tuple(d.array("batch_roots"))
            for i, root in enumerate(roots):
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
            manifest_digest=d.digest("manifest_digest") if "manifest_digest" in d.doc else None,
            batch_roots=roots,
            steps=d.integer("steps") if "steps" in d.doc else None,
            world_size=d.integer("world_size") if "world_size" in d.doc else None,
            extra={k: v for k, v in d.doc.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        optional: dict[str, Any] = {
            "manifest_digest": self.manifest_digest,
            "batch_roots": None if self.batch_roots is None else list(self.batch_roots),
            "steps": self.steps,
            "world_size": self.world_size,
        }
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
            **{k: v for k, v in optional.items() if v is not None},
        }


_REPORT_OPTIONAL = ("manifest_digest", "batch_roots", "steps", "world_size")


def _reduction(doc: object, batch_size: int, world: int, where: str = "manifest.json") -> Any:
    """``sharding.reduction``, checked (absent before ADR 0033: the legacy all-reduce order)."""
    from computewatch.datacenter._reduction import Reduction  # noqa: PLC0415

    try:
        Reduction.from_json(doc).check_fits(batch_size, world)
    except FormatError as e:
        msg = f"{where}: field 'sharding.reduction': {e.message}"
        raise FormatError(msg) from e
    return doc


def _accumulation(sharding: Doc, world: int, batch: int) -> int:
    """Micro-batches per chip and step (absent: 1).

    The replay cuts each global batch into world_size x accumulation equal
    parts, in order (ADR 0032), so their product must divide the batch.
    """
    if "accumulation" not in sharding.doc:
        return 1
    accumulation = sharding.integer("accumulation", 1, 1 << 12)
    if batch % (world * accumulation):
        key, expected = "accumulation", f"a divisor of batch_size {batch} / world_size {world}"
        raise sharding.fail(key, expected, accumulation)
    return accumulation


def _batch_order(sharding: Doc, world: int, batch: int, where: str) -> tuple[Any, int]:
    """``sharding.reduction`` or None, ``sharding.accumulation`` or 1 (not both: ADR 0033)."""
    accumulation = _accumulation(sharding, world, batch)
    if "reduction" not in sharding.doc:
        return None, accumulation
    if "accumulation" in sharding.doc:
        key, expected = "accumulation", "absent with sharding.reduction"
        raise sharding.fail(key, expected, accumulation)
    return _reduction(sharding.doc["reduction"], batch, world, where), accumulation


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
    reduction: dict[str, Any] | None = None
    accumulation: int = 1
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

        d = Doc(doc, where)
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
        reduction, accumulation = _batch_order(sharding, world, int(data.doc["batch_size"]), where)
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
            reduction=reduction,
            accumulation=accumulation,
            raw=d.doc,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (as received)."""
        return dict(self.raw)


@dataclass(frozen=True, slots=True)
class ChipSnapshot:
    """One snapshot a chip's log holds, as its chip file states it."""

    seq: int
    step: int
    h: str
    time_us: int
    file: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "seq": self.seq,
            "step": self.step,
            "h": self.h,
            "time_us": self.time_us,
            "file": self.file,
        }


@dataclass(frozen=True, slots=True)
class ChipClaims:
    """One chip's shard slice and snapshot claims (``chips/SERIAL.json``)."""

    serial: str
    rank: int
    slice: tuple[int, int]
    snapshots: tuple[ChipSnapshot, ...]

    @classmethod
    def from_dict(cls, doc: object, where: str) -> ChipClaims:
        """Validate one chip file.

        Raises:
            FormatError: naming the file and the field.
        """
        d = Doc(doc, where)
        return cls(
            serial=d.text("serial"),
            rank=d.integer("rank"),
            slice=d.span("slice"),
            snapshots=tuple(
                ChipSnapshot(
                    seq=s.integer("seq"),
                    step=s.integer("step"),
                    h=s.digest("h"),
                    time_us=s.integer("time_us"),
                    file=s.text("file"),
                )
                for s in d.items("snapshots")
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "serial": self.serial,
            "rank": self.rank,
            "slice": list(self.slice),
            "snapshots": [s.to_dict() for s in self.snapshots],
        }

    def claims(self, run_id: str) -> list[ClaimRecord]:
        """The report's claims this file makes for run `run_id`, in log order."""
        return [
            ClaimRecord(self.serial, s.seq, s.step, s.h, self.slice, run_id) for s in self.snapshots
        ]


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One line of `data/steps.jsonl`: the step's point hashes and batch root."""

    step: int
    points: tuple[str, ...]
    batch_root: str

    @classmethod
    def from_dict(cls, doc: object, where: str) -> StepRecord:
        """Validate one line."""
        d = Doc(doc, where)
        points = d.array("points")
        for i, p in enumerate(points):
            if not isinstance(p, str) or len(p) != 64 or not set(p) <= HEX:  # noqa: PLR2004
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
    #: the digest of the weights and optimizer state after the step (ADR 0034;
    #: absent in older transcripts)
    state: str | None = None

    @classmethod
    def from_dict(cls, doc: object, where: str) -> MetricsRecord:
        """Validate one line."""
        d = Doc(doc, where)
        state = d.digest("state") if "state" in d.doc else None
        return cls(
            step=d.integer("step"),
            loss=d.number("loss"),
            lr=d.number("lr"),
            update_norm=d.number("update_norm"),
            grad_norm=d.number("grad_norm"),
            time=d.number("time"),
            seconds=d.number("seconds"),
            state=state,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        doc: dict[str, Any] = {
            "step": self.step,
            "loss": self.loss,
            "lr": self.lr,
            "update_norm": self.update_norm,
            "grad_norm": self.grad_norm,
            "time": self.time,
            "seconds": self.seconds,
        }
        if self.state is not None:
            doc["state"] = self.state
        return doc


def encode(record: _Record) -> bytes:
    """The canonical-JSON bytes of `record` (what its ``from_dict`` reads back).

    >>> import json
    >>> rec = StepRecord(0, ("ab" * 32,), "sha256:" + "cd" * 32)
    >>> StepRecord.from_dict(json.loads(encode(rec)), "data/steps.jsonl line 1") == rec
    True
    """
    return canonical_json(record.to_dict())


_Record = (
    ChipClaims | ClaimRecord | IndexRecord | Manifest | MetricsRecord | ProverReport | StepRecord
)
