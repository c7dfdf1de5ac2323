"""Recording a run's transcript on every chip (paper §5, Appendix D).

`Recorder` is the step hook: after `begin` it is told about every optimizer
step (`record_step`) and does the Prover's bookkeeping: the data records
and metrics (chip 0 writes them for the whole run), the firmware's chance to
snapshot (every chip), and a checkpoint every `k` steps (collective; chip 0
writes). `finish` writes each chip's snapshot claims, the commitment and the
Prover report. Every file is built as its typed record (`_files.py`) and
written by that record's ``to_dict``, so what is written is what the
Verifier's parsers read. The canonical loop built from these pieces,
`train`, is `_run.py`.

The order before step 0 follows the paper: the manifest M and the data order
are committed (the *precommitment*), every chip logs that commitment, and
only then is W_0 drawn, from a seed derived from the precommitment, so no
spoof can target a W_0 or an ω that did not exist yet.

Example::

    >>> from computewatch.crypto import json_digest
    >>> pre = precommitment(manifest_digest({"run_id": "r1"}), json_digest(["batch roots"]))
    >>> str(pre).startswith("sha256:")
    True
"""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING, Any, Protocol

from computewatch.crypto import Digest, json_digest
from computewatch.datacenter._checkpoint import load_checkpoint, save_checkpoint
from computewatch.datacenter._commitment import compute_commitment, read_index, read_manifest
from computewatch.datacenter._data import DataSchedule, batch_root, data_root, point_hash
from computewatch.datacenter._files import (
    CheckpointRef,
    ChipClaims,
    ChipSnapshot,
    IndexRecord,
    Manifest,
    MetricsRecord,
    ProverReport,
    StepRecord,
    encode,
)
from computewatch.datacenter._layout import derive_init_seed, init_flat, shard_range
from computewatch.datacenter._transcript import (
    MANIFEST_FORMAT,
    REPORT_FORMAT,
    LineWriter,
    StorageError,
    TranscriptPaths,
    append_line,
    read_lines,
    rewrite_lines,
    write_json_atomic,
)
from computewatch.errors import FormatError, IntegrityError, ParameterError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import torch

    from computewatch.chip import Chip
    from computewatch.datacenter._determinism import Determinism
    from computewatch.datacenter._layout import FlatLayout
    from computewatch.datacenter._program import TrainingProgram
    from computewatch.datacenter._reduction import Reduction
    from computewatch.datacenter._run import InitFn, RunSpec
    from computewatch.datacenter._trainer import StepResult

__all__ = ["PRECOMMIT_DOMAIN", "Recorder", "TrainState", "manifest_digest", "precommitment"]

PRECOMMIT_DOMAIN = b"computewatch/precommitment/v1\x00"
_MANIFEST_DOMAIN = b"computewatch/manifest/v1\x00"


def manifest_digest(manifest: dict[str, Any]) -> Digest:
    """The digest of a manifest that the precommitment binds."""
    return json_digest(manifest, domain=_MANIFEST_DOMAIN)


def precommitment(manifest: Digest, data_order: Digest) -> Digest:
    """The commitment to M (its digest) and the data order that chips log before step 0."""
    return json_digest(
        {"manifest": str(manifest), "data_order": str(data_order)},
        domain=PRECOMMIT_DOMAIN,
    )


class TrainState(Protocol):
    """What the recorder reads of a chip's training: `Trainer`, or a lab's loop (`Monitor`).

    ``flat`` is the full flat weights, ``shard`` this chip's live slice
    ``flat[start:stop]`` (what the chip registers and snapshots).
    """

    @property
    def program(self) -> TrainingProgram:
        """The run's program."""

    @property
    def config(self) -> dict[str, Any]:
        """The run's configuration (as recorded in M)."""

    @property
    def layout(self) -> FlatLayout:
        """Where each parameter sits in `flat`."""

    @property
    def flat(self) -> torch.Tensor:
        """The full flat weights."""

    @property
    def shard(self) -> torch.Tensor:
        """This chip's live slice of `flat`."""

    @property
    def start(self) -> int:
        """First index of the slice."""

    @property
    def stop(self) -> int:
        """End of the slice."""

    def checkpoint_state(self) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
        """The optimizer state over the full flat vector, and its one hyperparameter group."""

    def state_digest(self) -> Digest:
        """The per-step commitment to the weights and optimizer state now (ADR 0034)."""

    @property
    def reduction(self) -> Reduction | None:
        """The fixed gradient reduction order it sums in (ADR 0033), or None (a lab's loop)."""


class Recorder:
    """The transcript-recording step hook for one chip of a run."""

    def __init__(
        self,
        spec: RunSpec,
        run_dir: str | Path,
        trainer: TrainState,
        *,
        chip: Chip | None,
        chip_serials: Sequence[str],
        determinism: Determinism,
        code_hash: Digest,
        rank: int = 0,
        init: InitFn = init_flat,
        accumulation: int = 1,
    ) -> None:
        """Prepare to record; nothing is written until `begin` or `resume`.

        `accumulation` is how many micro-batches each chip sums per step (the
        manifest records it when it is not 1; the replay cuts its batch so).

        `init` makes W_0 from the seed the precommitment implies; anything but
        the default `init_flat` is a deviation the Verifier must catch (a seam
        for the attack corpus, never patched in).
        """
        self.init = init
        self.spec = spec
        self.paths = TranscriptPaths(run_dir)
        self.trainer = trainer
        self.chip = chip
        self.serials = list(chip_serials)
        self.determinism = determinism
        self.code_hash = code_hash
        self.rank = rank
        self.accumulation = accumulation
        self.schedule = DataSchedule(
            dataset_size=trainer.program.dataset_size(trainer.config),
            batch_size=spec.batch_size,
            steps=spec.steps,
            seed=spec.data_seed,
        )
        self._points: list[list[Digest]] = []
        self._roots: list[Digest] = []
        self._step_lines: list[bytes] = []
        self.precommitment: Digest | None = None
        self.manifest = self._manifest()
        self._writers: dict[str, LineWriter] = {}

    @property
    def writer(self) -> bool:
        """Whether this chip writes the run-wide files (chip 0)."""
        return self.rank == 0

    # -- before step 0 -----------------------------------------------------

    def _plan(self) -> None:
        """Hash every point of every step (the data order to precommit)."""
        program, config = self.trainer.program, self.trainer.config
        cache: dict[int, Digest] = {}
        self._points, self._roots = [], []
        for step in range(self.spec.steps):
            hashes = []
            for i in self.schedule.indices(step):
                if i not in cache:
                    cache[i] = point_hash(program.data_point(config, i))
                hashes.append(cache[i])
            self._points.append(hashes)
            self._roots.append(batch_root(hashes))
        # D's records are fixed by the plan: encode them now, off the step path
        self._step_lines = [
            encode(StepRecord(step, tuple(p.hex for p in points), str(root))) + b"\n"
            for step, (points, root) in enumerate(zip(self._points, self._roots, strict=True))
        ]

    def _manifest(self) -> Manifest:
        """M, through its parser (what is written is what the Verifier's parser accepts)."""
        layout = self.trainer.layout
        doc: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "run_id": self.spec.run_id,
            "program": {
                "name": self.trainer.program.name,
                "file": "code/program.py",
                "code_hash": str(self.code_hash),
            },
            "config": self.trainer.config,
            "layout": layout.to_json(),
            "layout_digest": str(layout.digest()),
            "numel": layout.numel,
            "init": {"scheme": "cw-normal-v1", "std": self.spec.init_std, "seed": "precommitment"},
            "data": self.schedule.to_json(),
            "determinism": self.determinism.to_json(),
            "sharding": {
                "kind": "flat-zero1",
                "world_size": self.spec.world_size,
                "chips": [
                    {
                        "rank": r,
                        "serial": s,
                        "slice": list(shard_range(r, self.spec.world_size, layout.numel)),
                    }
                    for r, s in enumerate(self.serials)
                ],
            },
            "checkpoint_every": self.spec.checkpoint_every,
        }
        if self.trainer.reduction is not None:  # the fixed order (ADR 0033): our Trainer
            doc["sharding"]["reduction"] = self.trainer.reduction.to_json()
        if self.accumulation != 1:
            doc["sharding"]["accumulation"] = self.accumulation
        return Manifest.from_dict(doc, "manifest.json")

    def begin(self) -> None:
        """Commit M and the data order, log it on the chip, draw W_0, checkpoint it."""
        self._plan()
        self.precommitment = precommitment(
            manifest_digest(self.manifest.to_dict()), data_root(self._roots)
        )
        if self.writer:
            if self.paths.manifest.exists():
                msg = f"run folder {self.paths.root}: already holds a transcript; resume it instead"
                raise FormatError(msg)
            for sub in (
                self.paths.steps.parent,
                self.paths.checkpoints,
                self.paths.snapshots,
                self.paths.chips,
            ):
                _mkdir(sub)
            _mkdir(self.paths.program.parent)
            try:
                shutil.copyfile(self.spec.program_path, self.paths.program)
            except OSError as e:
                msg = f"transcript code copy {self.paths.program}: cannot write ({e.strerror})"
                raise StorageError(msg) from e
            write_json_atomic(self.paths.manifest, self.manifest.to_dict())
        if self.chip is not None:
            self.chip.precommit(self.spec.run_id, self.precommitment)
        seed = derive_init_seed(self.precommitment)
        import torch  # noqa: PLC0415

        with torch.no_grad():
            self.trainer.flat.copy_(self.init(self.trainer.layout, seed, std=self.spec.init_std))
            self.trainer.shard.copy_(self.trainer.flat[self.trainer.start : self.trainer.stop])
        self._register()
        self._checkpoint(0)

    def _register(self) -> None:
        if self.chip is not None:
            self.chip.register(
                self.spec.run_id,
                {"flat_shard": self.trainer.shard.data},
                self.code_hash,
                self.paths.snapshots,
            )

    def resume(self) -> int:
        """Continue an interrupted run from its last checkpoint; return its step."""
        from computewatch.datacenter._trainer import Trainer  # noqa: PLC0415

        if not isinstance(self.trainer, Trainer):
            msg = "resume: only runs of computewatch's own Trainer resume (not an attached loop)"
            raise ParameterError(msg)
        self._plan()
        try:
            on_disk = read_manifest(self.paths)
        except FormatError as e:
            msg = f"run folder {self.paths.root}: no readable manifest to resume ({e.message})"
            raise FormatError(msg) from e
        if on_disk.to_dict() != self.manifest.to_dict():
            msg = f"run folder {self.paths.root}: the manifest differs from this run's spec"
            raise IntegrityError(msg)
        self.precommitment = precommitment(
            manifest_digest(self.manifest.to_dict()), data_root(self._roots)
        )
        index = read_index(self.paths, drop_torn=True)
        if not index:
            msg = f"run folder {self.paths.root}: no checkpoint to resume from"
            raise FormatError(msg)
        last = index[-1]
        ckpt = load_checkpoint(self.paths.root / last.file, expected=Digest.parse(last.digest))
        self.trainer.load(ckpt)
        if self.writer:
            for path, parse in (
                (self.paths.steps, StepRecord),
                (self.paths.metrics, MetricsRecord),
            ):
                lines = read_lines(path, drop_torn=True)
                kept = [
                    d
                    for i, d in enumerate(lines, start=1)
                    if parse.from_dict(d, f"{path.name} line {i}").step < ckpt.step
                ]
                rewrite_lines(path, kept)
            rewrite_lines(self.paths.checkpoint_index, [e.to_dict() for e in index])
        self._register()
        return ckpt.step

    def planned_points(self, step: int) -> list[Digest]:
        """The committed point hashes of step `step`'s global batch, in order (after `begin`)."""
        return list(self._points[step])

    # -- every step --------------------------------------------------------

    def _line(self, name: str) -> LineWriter:
        writer = self._writers.get(name)
        if writer is None:
            writer = self._writers[name] = LineWriter(getattr(self.paths, name))
        return writer

    def close(self) -> None:
        """Close the line files (the records are already on disk)."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def record_step(
        self, step: int, result: StepResult, seconds: float, state: Digest | None = None
    ) -> None:
        """After optimizer step `step` (0-based): data, metrics, snapshot, checkpoint.

        `state` is the step's state digest when the caller already has it
        (an attached loop hashes it off the loop's path, ADR 0040); else the
        trainer computes it now (collective: every chip hashes its slice).
        """
        done = step + 1
        state_digest = str(state if state is not None else self.trainer.state_digest())
        if self.writer:
            self._line("steps").write_line(self._step_lines[step])
            record = MetricsRecord(
                step=step,
                loss=result.loss,
                lr=result.lr,
                update_norm=result.update_norm,
                grad_norm=result.grad_norm,
                time=time.time(),
                seconds=seconds,
                state=state_digest,
            )
            self._line("metrics").write(record.to_dict())
        if self.chip is not None:
            # ω is this chip's slice after `done` steps
            self.chip.on_step(done)
        if done % self.spec.checkpoint_every == 0 or done == self.spec.steps:
            self._checkpoint(done)

    def _checkpoint(self, done: int) -> None:
        import torch  # noqa: PLC0415

        state, groups = self.trainer.checkpoint_state()  # collective
        if not self.writer:
            return
        path = self.paths.checkpoint(done)
        digest = save_checkpoint(
            path,
            step=done,
            weights=self.trainer.flat,
            optimizer_state=state,
            param_groups=groups,
            rng_state=torch.get_rng_state(),
            layout_digest=str(self.trainer.layout.digest()),
        )
        entry = IndexRecord(done, str(path.relative_to(self.paths.root)), str(digest))
        append_line(self.paths.checkpoint_index, entry.to_dict(), sync=True)

    # -- after the last step -----------------------------------------------

    def write_chip_claims(self) -> None:
        """Write this chip's shard slice and its snapshot claims (from its log)."""
        if self.chip is None:
            return
        self.chip.flush()
        claims = tuple(
            ChipSnapshot(
                seq=entry.seq,
                step=int(entry.body["step"]),
                h=str(entry.body["h"]),
                time_us=entry.time_us,
                file=f"snapshots/{self.chip.serial}-{entry.seq:08d}.safetensors",
            )
            for entry in self.chip.log_entries()
            if entry.kind == "snapshot" and entry.body.get("run_id") == self.spec.run_id
        )
        doc = ChipClaims(
            str(self.chip.serial), self.rank, (self.trainer.start, self.trainer.stop), claims
        )
        write_json_atomic(self.paths.chips / f"{self.chip.serial}.json", doc.to_dict())

    def finish(self) -> dict[str, Any]:
        """Write the commitment and the Prover report (chip 0, after all chips' claims)."""
        if self.precommitment is None:
            msg = "finish() before begin()"
            raise ParameterError(msg)
        index = read_index(self.paths)
        root, parts, claims = compute_commitment(self.paths.root)
        write_json_atomic(self.paths.commitment, {"root": str(root), "parts": parts})
        report = ProverReport(
            format=REPORT_FORMAT,
            run_id=self.spec.run_id,
            commitment=str(root),
            precommitment=str(self.precommitment),
            code_hash=str(self.code_hash),
            data_root=parts["data"],
            checkpoints=tuple(CheckpointRef(e.step, e.digest) for e in index),
            snapshots=tuple(claims),
            manifest_digest=parts["manifest"],
            batch_roots=tuple(str(r) for r in self._roots),
            steps=self.spec.steps,
            world_size=self.spec.world_size,
        )
        doc = report.to_dict()
        write_json_atomic(self.paths.report, doc)
        return doc


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        msg = f"transcript folder {path}: cannot create ({e.strerror})"
        raise StorageError(msg) from e
