"""Reading a Prover's transcript as adversarial input (paper §5.2).

`TranscriptReader.open` checks structure and sizes, that the code copy
hashes to the manifest's code hash, and that the whole folder recomputes to
the commitment in the Prover's report; afterwards every part it hands out
(checkpoints, point hashes, ω copies) is either covered by that commitment
or checked against a digest from it when read. Nothing is unpickled: tensors
come through safetensors, documents through a size-capped JSON parser. Bad
files raise `FormatError`, mismatched ones `IntegrityError`, naming the file
and the field.

Example::

    >>> reader = TranscriptReader.open("runs/run-1", "runs/run-1/report.json")  # doctest: +SKIP
    >>> reader.run_id, reader.steps  # doctest: +SKIP
    ('run-1', 300)
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch.crypto import Digest
from computewatch.datacenter import (
    REPORT_FORMAT,
    DataSchedule,
    Determinism,
    FlatLayout,
    Manifest,
    MetricsRecord,
    ProverReport,
    Reduction,
    StepRecord,
    TrainingProgram,
    TranscriptPaths,
    compute_commitment,
    load_checkpoint,
    load_program,
    read_lines_checked,
)
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    import torch

    from computewatch.datacenter import Checkpoint

__all__ = ["MAX_DOCUMENT_BYTES", "SnapshotClaim", "TranscriptReader"]

#: Largest JSON document (manifest, report) the reader parses.
MAX_DOCUMENT_BYTES = 64 << 20
#: Largest ω copy the reader opens.
MAX_SNAPSHOT_BYTES = 1 << 40
#: Largest transcript file of any kind (checkpoints included).
MAX_FILE_BYTES = 1 << 40
#: Most files a transcript folder may hold.
MAX_FILES = 1 << 20


def check_tree(root: Path) -> None:
    """Refuse a transcript folder holding anything but bounded regular files.

    A symbolic link (say, a checkpoint linked to ``/dev/zero``), a FIFO or a
    device would make a later read hang or read forever; it is refused here,
    from `lstat`, before any file is opened.

    Raises:
        FormatError: naming the offending file.
    """
    if root.is_symlink() or not root.is_dir():
        msg = f"transcript {root}: expected a folder (not a link), got something else"
        raise FormatError(msg)
    count = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in [*dirs, *files]:
            count += 1
            path = Path(folder) / name
            info = path.lstat()
            rel = path.relative_to(root)
            if count > MAX_FILES:
                msg = f"transcript {root.name}: more than {MAX_FILES} files"
                raise FormatError(msg)
            if stat.S_ISDIR(info.st_mode):
                continue
            if not stat.S_ISREG(info.st_mode):
                kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
                msg = f"transcript file {rel}: expected a regular file, got {kind}"
                raise FormatError(msg)
            if info.st_size > MAX_FILE_BYTES:
                msg = f"transcript file {rel}: larger than {MAX_FILE_BYTES} bytes"
                raise FormatError(msg)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    from computewatch.verification._store import read_bounded  # noqa: PLC0415

    data = read_bounded(path, MAX_DOCUMENT_BYTES, f"{what} {path.name}")
    try:
        doc = json.loads(data)
    except ValueError as e:
        msg = f"{what} {path.name}: not JSON ({e})"
        raise FormatError(msg) from e
    if not isinstance(doc, dict):
        msg = f"{what} {path.name}: expected a JSON object"
        raise FormatError(msg)
    return doc


def _parse_files(
    paths: TranscriptPaths, report: str | Path | dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bounded reads and typed parses of every JSON file, before anything is hashed."""
    check_tree(paths.root)
    if not isinstance(report, dict) and Path(report).is_symlink():
        msg = f"report {Path(report).name}: expected a regular file, got a symbolic link"
        raise FormatError(msg)
    rep = report if isinstance(report, dict) else _read_json(Path(report), "report")
    typed = ProverReport.from_dict(rep, "report.json")
    if typed.format != REPORT_FORMAT:
        msg = f"report.json: field 'format': expected {REPORT_FORMAT!r}, got {typed.format!r}"
        raise FormatError(msg)
    manifest = _read_json(paths.manifest, "manifest")
    Manifest.from_dict(manifest, "manifest.json")
    for i, line in enumerate(read_lines_checked(paths.steps)):
        StepRecord.from_dict(line, f"data/steps.jsonl line {i + 1}")
    for i, line in enumerate(read_lines_checked(paths.metrics)):
        MetricsRecord.from_dict(line, f"metrics.jsonl line {i + 1}")
    return rep, manifest


@dataclass(frozen=True, slots=True)
class SnapshotClaim:
    """The Prover's claim about one chip-logged snapshot.

    Attributes:
        serial: the chip.
        seq: the log entry.
        step: optimizer steps completed when ω was taken.
        h: ``Hash(ω)`` as claimed.
        start: first index of the chip's slice of the flat weights.
        stop: one past its last index.
    """

    serial: str
    seq: int
    step: int
    h: Digest
    start: int
    stop: int


class TranscriptReader:
    """A verified view of one transcript folder and its Prover report."""

    def __init__(
        self, paths: TranscriptPaths, manifest: dict[str, Any], report: dict[str, Any]
    ) -> None:
        """Use `open`."""
        self.paths = paths
        self.manifest = manifest
        self.report = report

    @classmethod
    def open(cls, run_dir: str | Path, report: str | Path | dict[str, Any]) -> TranscriptReader:
        """Open and check a transcript against a Prover report.

        Raises:
            FormatError: a file is missing, oversized or malformed.
            IntegrityError: the folder does not recompute to the report's
                commitment, or the report contradicts the folder.
        """
        paths = TranscriptPaths(run_dir)
        rep, manifest = _parse_files(paths, report)
        if manifest.get("run_id") != rep["run_id"]:
            got = manifest.get("run_id")
            msg = f"report run_id {rep['run_id']!r} does not match the manifest's {got!r}"
            raise IntegrityError(msg)
        root, parts, claims = compute_commitment(paths.root)
        if str(root) != rep["commitment"]:
            msg = (
                f"transcript {paths.root.name}: recomputes to commitment {root.hex[:12]}…, "
                f"the report says {rep['commitment'][7:19]}…"
            )
            raise IntegrityError(msg)
        if parts["code"] != rep["code_hash"] or parts["data"] != rep["data_root"]:
            msg = "report: code_hash or data_root differs from the committed transcript"
            raise IntegrityError(msg)
        committed = {k.split("/", 1)[1]: v for k, v in parts.items() if k.startswith("checkpoint/")}
        reported = {f"{c['step']:08d}": c["digest"] for c in rep["checkpoints"]}
        if committed != reported:
            msg = "report: checkpoint list differs from the committed transcript"
            raise IntegrityError(msg)
        if len(claims) != len(rep["snapshots"]) or any(
            {k: a.to_dict()[k] for k in ("serial", "seq", "step", "h", "slice")}
            != {k: b.get(k) for k in ("serial", "seq", "step", "h", "slice")}
            for a, b in zip(claims, rep["snapshots"], strict=True)
        ):
            msg = "report: snapshot claims differ from the committed chip files"
            raise IntegrityError(msg)
        reader = cls(paths, manifest, rep)
        reader.validate()
        return reader

    def validate(self) -> None:
        """Parse every derived view now, so a malformed field fails `open`, not a check."""
        _ = (self.layout, self.schedule, self.determinism, self.chip_slices, self.claims)
        _ = self.chip_ranges
        if self.steps != len(self.step_records):
            msg = (
                f"data/steps.jsonl: {len(self.step_records)} lines, the manifest's schedule "
                f"has {self.steps} steps"
            )
            raise FormatError(msg)
        for step, rec in enumerate(self.step_records):
            if len(rec["points"]) != len(self.schedule.indices(step)):
                msg = f"data/steps.jsonl line {step + 1}: field 'points': not the batch size"
                raise FormatError(msg)
        for name, (_, b) in self.chip_slices.items():
            if b > self.layout.numel:
                msg = f"manifest.json: field 'sharding.chips': slice of {name} beyond numel"
                raise FormatError(msg)

    # -- M -----------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run's id."""
        return str(self.manifest["run_id"])

    @cached_property
    def layout(self) -> FlatLayout:
        """The flat weight layout."""
        layout = FlatLayout.from_json(self.manifest.get("layout"))
        if layout.numel != self.manifest.get("numel"):
            msg = f"manifest: numel {self.manifest.get('numel')} != layout total {layout.numel}"
            raise FormatError(msg)
        return layout

    @cached_property
    def schedule(self) -> DataSchedule:
        """The committed data schedule."""
        try:
            return DataSchedule.from_json(self.manifest["data"])
        except (KeyError, TypeError) as e:
            msg = f"manifest: field 'data' malformed ({e})"
            raise FormatError(msg) from e

    @cached_property
    def determinism(self) -> Determinism:
        """The determinism settings of the run."""
        try:
            return Determinism.from_json(self.manifest["determinism"])
        except (KeyError, TypeError) as e:
            msg = f"manifest: field 'determinism' malformed ({e})"
            raise FormatError(msg) from e

    @property
    def config(self) -> dict[str, Any]:
        """The run's configuration (stays inside the trusted cluster)."""
        return dict(self.manifest["config"])

    @property
    def steps(self) -> int:
        """Optimizer steps of the run."""
        return self.schedule.steps

    @property
    def world_size(self) -> int:
        """Chips in the run."""
        return int(self.manifest["sharding"]["world_size"])

    @property
    def reduction(self) -> Reduction | None:
        """The run's fixed gradient reduction order; None for transcripts before ADR 0033."""
        sharding = self.manifest["sharding"]
        return Reduction.from_json(sharding["reduction"]) if "reduction" in sharding else None

    @property
    def micro_batches(self) -> int:
        """The parts a replay cuts each global batch into: chips x accumulation (ADR 0032)."""
        return self.world_size * int(self.manifest["sharding"].get("accumulation", 1))

    @cached_property
    def chip_slices(self) -> dict[str, tuple[int, int]]:
        """Serial -> the chip's slice of the flat weights, from the manifest."""
        out = {}
        for chip in self.manifest["sharding"]["chips"]:
            a, b = chip["slice"]
            out[str(chip["serial"])] = (int(a), int(b))
        return out

    @cached_property
    def chip_ranges(self) -> dict[str, tuple[tuple[int, int], ...]]:
        """Serial -> the flat ranges the chip's ω is made of, in ω's order.

        One range (its slice) for the flat ZeRO-1 sharding; for FSDP2 one per
        parameter, from the manifest's shard map (ADR 0039).
        """
        from computewatch.datacenter import FSDP2_KIND, parse_shard_map, piece_range  # noqa: PLC0415

        sharding = self.manifest["sharding"]
        if sharding.get("kind") != FSDP2_KIND:
            return {s: ((a, b),) for s, (a, b) in self.chip_slices.items()}
        pieces = parse_shard_map(sharding["chips"], self.layout)
        out: dict[str, tuple[tuple[int, int], ...]] = {}
        for chip, mine in zip(sharding["chips"], pieces, strict=True):
            ranges = tuple(piece_range(self.layout, p) for p in mine)
            n = sum(b - a for a, b in ranges)
            if tuple(chip["slice"]) != (0, n):
                serial = str(chip["serial"])[:40]
                msg = f"manifest.json: field 'sharding.chips': slice of {serial} is not [0, {n}]"
                raise FormatError(msg)
            out[str(chip["serial"])] = ranges
        return out

    @cached_property
    def replay_slices(self) -> list[tuple[int, int]] | None:
        """The pieces a one-process replay steps separately, in flat order (FSDP2), or None."""
        from computewatch.datacenter import (  # noqa: PLC0415
            FSDP2_KIND,
            flat_order,
            parse_shard_map,
            piece_range,
        )

        sharding = self.manifest["sharding"]
        if sharding.get("kind") != FSDP2_KIND:
            return None
        pieces = parse_shard_map(sharding["chips"], self.layout)
        return [piece_range(self.layout, p) for _, p in flat_order(pieces)]

    @property
    def commit_slices(self) -> list[tuple[int, int]]:
        """The slices the per-step commitment digests, in its order (ADR 0034, ADR 0039)."""
        from computewatch.datacenter import shard_range  # noqa: PLC0415

        if self.replay_slices is not None:
            return self.replay_slices
        return [shard_range(r, self.world_size, self.layout.numel) for r in range(self.world_size)]

    def omega_of(self, flat: torch.Tensor, serial: str) -> torch.Tensor:
        """Chip `serial`'s ω cut out of full flat weights (its ranges, concatenated)."""
        import torch  # noqa: PLC0415

        ranges = self.chip_ranges[serial]
        if len(ranges) == 1:
            a, b = ranges[0]
            return flat[a:b]
        return torch.cat([flat[a:b] for a, b in ranges])

    @cached_property
    def program(self) -> TrainingProgram:
        """The training program, loaded from the transcript's committed copy."""
        program, digest = load_program(self.paths.program)
        if (
            str(digest) != self.manifest["program"]["code_hash"]
        ):  # pragma: no cover - open() checked
            msg = "code/program.py changed since the transcript was opened"
            raise IntegrityError(msg)
        return program

    # -- D -----------------------------------------------------------------

    @cached_property
    def step_records(self) -> list[dict[str, Any]]:
        """Per-step data records (point hashes, batch root)."""
        return read_lines_checked(self.paths.steps)

    def points(self, step: int) -> list[Digest]:
        """The committed point hashes of step `step`."""
        return [Digest.parse("sha256:" + h) for h in self.step_records[step]["points"]]

    @cached_property
    def metrics(self) -> list[dict[str, Any]]:
        """Per-step metrics as the Prover recorded them (unverified claims)."""
        return read_lines_checked(self.paths.metrics)

    # -- W -----------------------------------------------------------------

    @cached_property
    def checkpoint_steps(self) -> list[int]:
        """Steps with a checkpoint, ascending."""
        return sorted(int(c["step"]) for c in self.report["checkpoints"])

    def checkpoint(self, step: int) -> Checkpoint:
        """Load the checkpoint after `step` steps, checked against its committed digest."""
        digests = {int(c["step"]): c["digest"] for c in self.report["checkpoints"]}
        if step not in digests:
            msg = f"no checkpoint at step {step}"
            raise FormatError(msg)
        ckpt = load_checkpoint(self.paths.checkpoint(step), expected=Digest.parse(digests[step]))
        if ckpt.step != step or ckpt.weights.numel() != self.layout.numel:
            msg = (
                f"checkpoint step {step}: its header says step {ckpt.step}, "
                f"{ckpt.weights.numel()} weights"
            )
            raise IntegrityError(msg)
        return ckpt

    # -- snapshots ---------------------------------------------------------

    @cached_property
    def claims(self) -> list[SnapshotClaim]:
        """The report's snapshot claims."""
        out = []
        for i, c in enumerate(self.report["snapshots"]):
            try:
                a, b = c["slice"]
                out.append(
                    SnapshotClaim(
                        serial=str(c["serial"]),
                        seq=int(c["seq"]),
                        step=int(c["step"]),
                        h=Digest.parse(c["h"]),
                        start=int(a),
                        stop=int(b),
                    )
                )
            except (KeyError, TypeError, ValueError, FormatError) as e:
                msg = f"report snapshots[{i}]: malformed ({e})"
                raise FormatError(msg) from e
        return out

    def omega(self, serial: str, seq: int) -> torch.Tensor:
        """The ω copy the chip's firmware wrote for log entry `seq`."""
        from safetensors import SafetensorError  # noqa: PLC0415
        from safetensors.torch import load_file  # noqa: PLC0415

        path = self.paths.snapshots / f"{serial}-{seq:08d}.safetensors"
        try:
            if path.stat().st_size > MAX_SNAPSHOT_BYTES:
                msg = f"snapshot {path.name}: larger than {MAX_SNAPSHOT_BYTES} bytes"
                raise FormatError(msg)
            tensors = load_file(str(path))
        except (OSError, SafetensorError) as e:
            msg = f"snapshot {path.name}: cannot be read ({e})"
            raise FormatError(msg) from e
        if set(tensors) != {"omega"} or tensors["omega"].ndim != 1:
            msg = f"snapshot {path.name}: expected one flat tensor 'omega'"
            raise FormatError(msg)
        return tensors["omega"]
