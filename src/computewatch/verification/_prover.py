"""The Verifier's only door to the Prover's code: jobs for sandboxed workers.

`ProverCalls` turns what verification needs from the training program (its
model's layout and FLOPs, raw data points, replays, forward passes, a
benchmark score) into jobs for an `Engine`, and checks every answer in the
Verifier's process: data points against their committed hashes before any
replay uses them, tensor names, dtypes and sizes against the manifest. It
never imports the program.

What a worker sees is what an honest replay needs: the program, the
configuration, its starting checkpoints and its (already checked) data. It
never sees a checkpoint it is compared against: tasks are packed into jobs
so that no job holds both a segment replay and its end checkpoint
(`pack`); ω copies, hashes, metrics and the report never leave the
Verifier.

Example::

    >>> calls = ProverCalls(reader, LocalPool(), store)  # doctest: +SKIP
    >>> calls.fetch(steps={0, 1}, samples=[])  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from computewatch.datacenter import MAX_PROGRAM_BYTES, file_digest, point_hash, program_code_hash
from computewatch.errors import ComputeWatchError, IntegrityError
from computewatch.verification._channel import decode_result
from computewatch.verification._store import read_bounded

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import torch

    from computewatch.verification._engine import Engine, Job
    from computewatch.verification._reader import TranscriptReader
    from computewatch.verification._store import ArtifactStore

__all__ = ["ProverCalls", "Task", "WorkerFailed", "pack"]

#: Largest answer of a data job, in bytes.
MAX_DATA_ANSWER = 1 << 30
_ANSWER_SLACK = 8 << 20
_MAX_CHECKPOINT = 1 << 40


class WorkerFailed(ComputeWatchError):  # noqa: N818 - the name is the finding
    """A replay worker gave no usable answer (crashed, hung, over a limit, malformed)."""

    exit_code = 1
    kind = "replay worker failed"


@dataclass(frozen=True, slots=True)
class Task:
    """One unit of worker work.

    Attributes:
        kind: ``replay``, ``loss`` or ``benchmark``.
        start: the checkpoint it starts from.
        stop: replay: the step it ends after; loss/benchmark: `start`.
        capture: steps whose weights come back (replay).
        threads: CPU threads (replay; the noise twin uses another count).
        perturb: sum micro-batch gradients in reverse (the noise twin).
        target: the checkpoint its answer is compared with, if any.
        benchmarks: benchmark: the rule file's declared benchmarks
            (`computewatch.rules.BenchmarkSpec`); their resources are staged
            as job inputs.
    """

    kind: str
    start: int
    stop: int
    capture: frozenset[int] = frozenset()
    threads: int = 1
    perturb: bool = False
    target: int | None = None
    benchmarks: tuple[Any, ...] = ()

    @property
    def data_steps(self) -> range:
        """Steps whose batches it needs."""
        if self.kind == "replay":
            return range(self.start, self.stop)
        if self.kind == "loss":
            return range(self.start, self.start + 1)
        return range(0)


def pack(tasks: Sequence[Task], parts: int) -> list[list[int]]:
    """Group task indices into jobs so that no job sees a checkpoint it is checked against.

    Greedy: a task joins the first group where its start is no other
    member's target and its target no other member's start; groups are then
    split to give up to `parts` jobs.
    """
    groups: list[list[int]] = []
    for i, task in enumerate(tasks):
        for group in groups:
            starts = {tasks[j].start for j in group}
            targets = {tasks[j].target for j in group} - {None}
            if task.start not in targets and task.target not in starts:
                group.append(i)
                break
        else:
            groups.append([i])
    while len(groups) < parts and any(len(g) > 1 for g in groups):
        big = max(groups, key=len)
        groups.remove(big)
        half = len(big) // 2
        groups += [big[:half], big[half:]]
    return groups


@dataclass
class _Answers:
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)


class ProverCalls:
    """Runs the Prover's code for one verification, only in replay workers."""

    def __init__(self, reader: TranscriptReader, engine: Engine, store: ArtifactStore) -> None:
        """Prepare the jobs' common part (program, configuration, determinism)."""
        self.reader = reader
        self.engine = engine
        self.store = store
        self.isolation: list[dict[str, Any]] = []
        self.jobs_run = 0
        self.info: dict[str, Any] | None = None
        self.info_failure = ""
        self._points: dict[int, torch.Tensor] = {}
        self._checked: dict[int, torch.Tensor | str] = {}
        self._program_key: str | None = None
        self._ckpt_keys: dict[int, str] = {}

    # -- common job parts ----------------------------------------------------

    def _program(self) -> str:
        if self._program_key is None:
            source = read_bounded(self.reader.paths.program, MAX_PROGRAM_BYTES, "code/program.py")
            if str(program_code_hash(source)) != self.reader.manifest["program"]["code_hash"]:
                msg = "code/program.py: its hash differs from the manifest's code_hash"
                raise IntegrityError(msg)
            self._program_key = self.store.put_bytes(source)
        return self._program_key

    def _checkpoint(self, step: int) -> str:
        if step not in self._ckpt_keys:
            self.reader.checkpoint(step)  # committed digest, header and size checked
            name = f"checkpoints/step-{step}"
            key = self.store.put_file(self.reader.paths.checkpoint(step), _MAX_CHECKPOINT, name)
            digests = {int(c["step"]): c["digest"] for c in self.reader.report["checkpoints"]}
            if str(file_digest(self.store.path(key))) != digests[step]:
                msg = f"{name}: changed while being read (digest differs from the report's)"
                raise IntegrityError(msg)
            self._ckpt_keys[step] = key
        return self._ckpt_keys[step]

    def stage_state(self, step: int, key: str) -> None:
        """Start replays at `step` from the store object `key` (a checked audit answer)."""
        if step in self.reader.checkpoint_steps:
            msg = f"step {step} has a checkpoint: an audit there starts from it"
            raise ValueError(msg)
        self._ckpt_keys[step] = key

    def _doc(self, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        det = self.reader.determinism
        reduction = self.reader.reduction
        return {
            "format": "computewatch/replay-job/v1",
            "program": "program.py",
            "config": self.reader.config,
            "determinism": {"seed": det.seed, "threads": det.threads},
            "world_size": self.reader.world_size,
            "reduction": None if reduction is None else reduction.to_json(),
            "micro_batches": self.reader.micro_batches,
            "replay_slices": self.reader.replay_slices,
            "tasks": tasks,
        }

    def _run(self, jobs: list[Job]) -> list[_Answers]:
        out = []
        for i, outcome in enumerate(self.engine.run(jobs, self.store)):
            self.jobs_run += 1
            answers = _Answers()
            tids = [t["id"] for t in jobs[i].doc["tasks"]]
            if outcome.answer is None:
                answers.failed = dict.fromkeys(tids, outcome.reason)
            else:
                self.isolation.append(outcome.isolation)
                try:
                    answers.tensors, answers.metrics = decode_result(
                        outcome.answer, "worker answer"
                    )
                except ComputeWatchError as e:
                    answers.failed = dict.fromkeys(tids, e.message)
            out.append(answers)
        return out

    # -- data ----------------------------------------------------------------

    def fetch(self, steps: Iterable[int], samples: Iterable[int] = ()) -> None:
        """One data job: the model's layout and FLOPs, and the points of `steps` and `samples`."""
        from computewatch.verification._engine import Job  # noqa: PLC0415

        schedule = self.reader.schedule
        wanted = {i for s in steps for i in schedule.indices(s)} | set(samples)
        indices = sorted(wanted - set(self._points))
        tasks: list[dict[str, Any]] = [{"kind": "points", "id": "p", "indices": indices}]
        if self.info is None:
            tasks.insert(0, {"kind": "info", "id": "info"})
        job = Job(self._doc(tasks), {"program.py": self._program()}, MAX_DATA_ANSWER)
        (answers,) = self._run([job])
        if answers.failed:
            reason = next(iter(answers.failed.values()))
            self.info_failure = self.info_failure or reason
            return
        if self.info is None:
            info = answers.metrics.get("info")
            if isinstance(info, dict):
                self.info = info
            else:
                self.info_failure = "worker answer: no 'info' metrics"
        for k, index in enumerate(indices):
            tensor = answers.tensors.get(f"p/{k}")
            if tensor is not None:
                self._points[index] = tensor

    def point(self, index: int) -> torch.Tensor | None:
        """The raw point `index` as a worker returned it (unchecked), if fetched."""
        return self._points.get(index)

    def batch(self, step: int) -> torch.Tensor:
        """The batch of `step`, every point checked against its committed hash.

        Raises:
            IntegrityError: a point differs from its hash (or was not returned).
            WorkerFailed: the data job failed.
        """
        import torch  # noqa: PLC0415

        cached = self._checked.get(step)
        if isinstance(cached, str):
            raise IntegrityError(cached)
        if cached is not None:
            return cached
        committed = self.reader.points(step)
        indices = self.reader.schedule.indices(step)
        if len(indices) != len(committed):
            msg = f"step {step}: {len(committed)} committed points, the schedule has {len(indices)}"
            raise IntegrityError(msg)
        points = []
        for j, (i, digest) in enumerate(zip(indices, committed, strict=True)):
            point = self._points.get(i)
            if point is None:
                reason = self.info_failure or f"step {step} point {j}: the worker returned no data"
                raise WorkerFailed(reason)
            if point_hash(point) != digest:
                msg = f"step {step} point {j}: the raw data does not match its committed hash"
                self._checked[step] = msg
                raise IntegrityError(msg)
            points.append(point)
        batch = torch.stack(points)
        self._checked[step] = batch
        return batch

    # -- work ----------------------------------------------------------------

    def run(self, tasks: Sequence[Task], parts: int = 1) -> list[dict[str, Any] | str]:
        """Run `tasks` in jobs packed by `pack`; per task its answer or why it failed.

        A replay's answer maps each captured step to the flat weights; a
        loss's is ``{"loss": float}``, a benchmark's its scores.
        """
        from safetensors.torch import save  # noqa: PLC0415

        from computewatch.verification._engine import Job  # noqa: PLC0415

        results: list[dict[str, Any] | str] = [""] * len(tasks)
        jobs: list[Job] = []
        members: list[list[int]] = []
        numel = self.reader.layout.numel
        for group in pack(tasks, parts):
            docs: list[dict[str, Any]] = []
            ids: list[int] = []
            files = {"program.py": self._program()}
            answer_bytes = _ANSWER_SLACK
            for i in group:
                task = tasks[i]
                try:
                    files[f"ckpt-{task.start}.safetensors"] = self._checkpoint(task.start)
                    batches = {str(s): self.batch(s) for s in task.data_steps}
                except ComputeWatchError as e:
                    results[i] = f"{e.kind}: {' '.join(e.message.split())}"
                    continue
                if batches:
                    files[f"batch-{i}.safetensors"] = self.store.put_bytes(save(batches))
                benchmarks = []
                for k, spec in enumerate(task.benchmarks):
                    staged = None
                    if spec.data is not None:
                        staged = f"bench-{i}-{k}.bin"
                        files[staged] = self.store.put_bytes(spec.data)
                    benchmarks.append(spec.to_job(staged))
                docs.append(
                    {
                        "kind": task.kind,
                        "id": f"t{i}",
                        "checkpoint": f"ckpt-{task.start}.safetensors",
                        "batches": f"batch-{i}.safetensors" if batches else None,
                        "start": task.start,
                        "stop": task.stop,
                        "step": task.start,
                        "capture": sorted(task.capture | {task.stop}),
                        "threads": task.threads,
                        "perturb": task.perturb,
                        "benchmarks": benchmarks,
                    }
                )
                ids.append(i)
                answer_bytes += 4 * numel * (len(task.capture) + 1)
            if docs:
                jobs.append(Job(self._doc(docs), files, answer_bytes))
                members.append(ids)
        for group, answers in zip(members, self._run(jobs), strict=True):
            for i in group:
                results[i] = self._check_answer(tasks[i], f"t{i}", answers, numel)
        return results

    def _check_answer(
        self, task: Task, tid: str, answers: _Answers, numel: int
    ) -> dict[str, Any] | str:
        import torch  # noqa: PLC0415

        if tid in answers.failed:
            return f"replay worker: {answers.failed[tid]}"
        if task.kind == "benchmark":
            return _benchmark_answer(task, answers.metrics.get(tid))
        if task.kind == "replay":
            out: dict[str, Any] = {}
            for step in sorted(task.capture | {task.stop}):
                t = answers.tensors.get(f"{tid}/{step}")
                if t is None or t.dtype != torch.float32 or t.ndim != 1 or t.numel() != numel:
                    got = "nothing" if t is None else f"{t.dtype} of shape {tuple(t.shape)}"
                    return (
                        f"replay worker: weights after step {step}: expected {numel} float32, "
                        f"got {got}"
                    )
                out[str(step)] = t
            claimed = answers.metrics.get(tid)
            states = claimed.get("states") if isinstance(claimed, dict) else None
            if isinstance(states, list) and all(isinstance(x, str) for x in states):
                out["states"] = [x[:80] for x in states]  # compared as text, never parsed
            return out
        value = answers.metrics.get(tid)
        if not isinstance(value, dict) or not all(
            isinstance(v, float | int) and not isinstance(v, bool) and math.isfinite(v)
            for v in value.values()
        ):
            return f"replay worker: {task.kind} at step {task.start}: no finite numbers returned"
        return {str(k): float(v) for k, v in value.items()}


def _benchmark_answer(task: Task, value: object) -> dict[str, Any]:
    """Per declared benchmark its score, or why there is none (``{"scores", "failed"}``).

    Only the declared names count: whatever else the worker (the Prover's
    code ran in it) put in its answer is dropped.
    """
    scores: dict[str, float] = {}
    failed: dict[str, str] = {}
    doc = value if isinstance(value, dict) else {}
    got_scores = doc.get("scores")
    got_failed = doc.get("failed")
    got_scores = got_scores if isinstance(got_scores, dict) else {}
    got_failed = got_failed if isinstance(got_failed, dict) else {}
    for spec in task.benchmarks:
        score = got_scores.get(spec.name)
        if isinstance(score, float | int) and not isinstance(score, bool) and math.isfinite(score):
            scores[spec.name] = float(score)
            continue
        reason = got_failed.get(spec.name)
        failed[spec.name] = (
            " ".join(reason.split())[:300]
            if isinstance(reason, str) and reason
            else "the replay worker returned no finite score"
        )
    return {"scores": scores, "failed": failed}
