"""Where replay jobs run: a local pool of sandboxed workers, or a Ray cluster.

A job (`Job`) is pure: a Verifier-written description plus input files
named by content hash in an `ArtifactStore`; its answer is one safetensors
blob (`_channel`). `execute_job` stages the named objects into a fresh
folder, runs `_worker` on it in the sandbox (`run_isolated`: no network,
read-only everything, the store, the transcript and the Verifier's files
hidden, resource limits) and returns the raw answer bytes. Engines only
decide where `execute_job` runs:

* `LocalPool(workers=N)`: N at a time on this host (threads waiting on
  sandboxed child processes);
* `RayPool(address)`: as Ray tasks on a Ray cluster (ADR 0008); only the job
  description (JSON text) and the answer (bytes) travel through Ray, the
  store must be on a filesystem every node mounts.

A worker that crashes, hangs, exceeds a limit or writes no answer gives a
`JobOutcome` with a reason, which the Verifier turns into a failing check.
`UnsafeInProcessEngine` runs jobs in the calling process (a baseline for
what the boundary costs; never for a Prover's code). Only
`IsolationUnavailable` (strict mode, the host cannot sandbox) is
raised: that is the Verifier's side failing, not the Prover's.

Example::

    >>> outcomes = LocalPool(workers=2).run(jobs, store)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from computewatch.errors import ParameterError
from computewatch.verification._isolation import IsolationUnavailable, SandboxError
from computewatch.verification._sandbox import run_isolated
from computewatch.verification._sandbox_launch import preload_stacks
from computewatch.verification._store import ArtifactStore

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "Engine",
    "Job",
    "JobOutcome",
    "LocalPool",
    "RayPool",
    "UnsafeInProcessEngine",
    "WorkerLimits",
    "execute_job",
]


@dataclass(frozen=True, slots=True)
class WorkerLimits:
    """Bounds on one replay worker.

    Attributes:
        timeout_s: wall-clock limit (the worker's PID namespace is killed).
        memory_bytes: address-space limit (``RLIMIT_AS``).
        cpu_seconds: CPU-time limit (``RLIMIT_CPU``); default: 4 x timeout.
        file_bytes: largest file it may write in its scratch (``RLIMIT_FSIZE``).
        scratch_bytes: size of its scratch tmpfs and ``/dev/shm``.
        strict: refuse to run unless every isolation layer holds.
    """

    timeout_s: float = 600.0
    memory_bytes: int = 16 << 30
    cpu_seconds: int | None = None
    file_bytes: int = 64 << 20
    scratch_bytes: int = 256 << 20
    strict: bool = True

    def to_json(self) -> dict[str, Any]:
        """The limits the worker applies to itself before running Prover code."""
        cpu = self.cpu_seconds if self.cpu_seconds is not None else int(4 * self.timeout_s) + 1
        return {
            "memory_bytes": self.memory_bytes,
            "cpu_seconds": cpu,
            "file_bytes": self.file_bytes,
        }


@dataclass(frozen=True, slots=True)
class Job:
    """One replay job: what the worker is told, and which store objects it gets.

    Attributes:
        doc: the job description (`_worker` reads it as ``job.json``).
        files: file name in the job folder -> store key.
        max_output: largest answer accepted, in bytes.
    """

    doc: dict[str, Any]
    files: dict[str, str]
    max_output: int


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What came back from one job: the answer's bytes, or why there is none."""

    answer: bytes | None
    reason: str = ""
    isolation: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    """Runs jobs whose inputs are in `store`; one outcome per job, in order."""

    def run(self, jobs: Sequence[Job], store: ArtifactStore) -> list[JobOutcome]:
        """Run `jobs`."""
        ...


#: Largest answer a worker may send (the Verifier then checks the job's own cap).
MAX_ANSWER = 1 << 30
_WORKER = "computewatch.verification._worker"


def _limits_json(limits: WorkerLimits) -> dict[str, Any]:
    return {
        **limits.to_json(),
        "timeout_s": limits.timeout_s,
        "wait_s": limits.timeout_s,
        "scratch_bytes": limits.scratch_bytes,
        "strict": limits.strict,
    }


def _sandboxed(folder: Path, limits: dict[str, Any], hide: Sequence[str]) -> JobOutcome:
    """Run a worker on `folder` in the sandbox (it may wait there for its job)."""
    worker_limits = {k: limits[k] for k in ("memory_bytes", "cpu_seconds", "file_bytes", "wait_s")}
    try:
        answer, isolation = run_isolated(
            [sys.executable, "-m", _WORKER, str(folder), json.dumps(worker_limits)],
            inputs=[folder],
            hide=[p for p in hide if Path(p).exists()],
            strict=bool(limits["strict"]),
            timeout=2 * float(limits["timeout_s"]),  # waiting for the job, then the job
            max_output=MAX_ANSWER,
            scratch_bytes=int(limits["scratch_bytes"]),
        )
    except IsolationUnavailable:
        raise
    except SandboxError as e:
        return JobOutcome(None, " ".join(e.message.split())[:400])
    return JobOutcome(answer, "", isolation.to_dict())


def _check_size(outcome: JobOutcome, job_max: int) -> JobOutcome:
    if outcome.answer is not None and len(outcome.answer) > job_max:
        got = len(outcome.answer)
        return JobOutcome(None, f"answer of {got} bytes, expected at most {job_max}")
    return outcome


def execute_job(  # noqa: PLR0917 - a Ray task takes positional arguments
    store_root: str,
    job_json: str,
    files: dict[str, str],
    max_output: int,
    limits: dict[str, Any],
    hide: Sequence[str] = (),
) -> JobOutcome:
    """Stage one job from the store and run it in a fresh sandboxed worker."""
    store = ArtifactStore(store_root)
    folder = store.stage({**files, "job.json": store.put_bytes(job_json.encode())})
    try:
        return _check_size(_sandboxed(folder, limits, [str(store.root), *hide]), max_output)
    finally:
        store.unstage(folder)


class _Slot:
    """A sandboxed worker started before its job: it imports torch while it waits."""

    def __init__(self, limits: dict[str, Any], hide: Sequence[str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="computewatch-job-"))
        self.started = time.monotonic()
        self.outcome: JobOutcome | None = None
        self.error: IsolationUnavailable | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(limits, hide), daemon=True)
        self._thread.start()

    def _run(self, limits: dict[str, Any], hide: Sequence[str]) -> None:
        try:
            self.outcome = _sandboxed(self.folder, limits, hide)
        except IsolationUnavailable as e:
            self.error = e
        finally:
            self._done.set()

    def submit(self, store: ArtifactStore, job: Job) -> JobOutcome:
        """Give the worker its job (``job.json`` last) and wait for the answer."""
        try:
            files = {**job.files, "job.json": store.put_bytes(json.dumps(job.doc).encode())}
            store.stage(files, self.folder)
            self._done.wait()
        finally:
            store.unstage(self.folder)
        if self.error is not None:
            raise self.error
        assert self.outcome is not None  # set before _done
        return _check_size(self.outcome, job.max_output)

    def dismiss(self) -> None:
        """Tell an unused worker to exit."""
        with contextlib.suppress(OSError):
            (self.folder / "job.json").write_text('{"close": true}')
        self._done.wait(timeout=30)
        ArtifactStore.unstage(self.folder)


@dataclass(frozen=True)
class LocalPool:
    """`workers` sandboxed replay workers at a time on this host.

    Workers can be started ahead of their jobs (`warm`; each still holds one
    job only) so torch's import overlaps the Verifier's own work; call
    `close` (``verify_transcript`` does) to dismiss the waiting ones.

    Attributes:
        workers: jobs run at once.
        limits: bounds on each worker.
        hide: more paths no worker may see (the Verifier's key, its outputs).
    """

    workers: int = 1
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    hide: tuple[str, ...] = ()
    _warm: list[_Slot] = field(default_factory=list, init=False, compare=False, repr=False)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        """Validate the pool size."""
        if self.workers < 1:
            msg = f"replay workers: expected at least 1, got {self.workers}"
            raise ParameterError(msg)

    def _slot(self, store: ArtifactStore) -> _Slot:
        """A waiting worker young enough to still have a full job's time, or a new one."""
        while True:
            with self._lock:
                slot = self._warm.pop(0) if self._warm else None
            if slot is None:
                return _Slot(_limits_json(self.limits), [str(store.root), *self.hide])
            if time.monotonic() - slot.started < self.limits.timeout_s / 2:
                return slot
            slot.dismiss()

    def warm(self, store: ArtifactStore, count: int, stacks: Sequence[str] = ()) -> None:
        """Start workers until `count` (at most `workers` + 2) wait for jobs.

        `stacks` names training stacks the jobs' program imports (such as
        ``transformers``): where workers fork from a zygote, it imports them
        first, once (`_zygote.PRELOADABLE` bounds which).
        """
        preload_stacks(stacks)
        with self._lock:
            missing = min(count, self.workers + 2) - len(self._warm)
            for _ in range(missing):
                self._warm.append(_Slot(_limits_json(self.limits), [str(store.root), *self.hide]))

    def run(self, jobs: Sequence[Job], store: ArtifactStore) -> list[JobOutcome]:
        """Run `jobs`, `workers` at a time, each in a worker of its own."""
        slots = [self._slot(store) for _ in jobs[: self.workers]]

        def one(i: int) -> JobOutcome:
            slot = slots[i] if i < len(slots) else self._slot(store)
            return slot.submit(store, jobs[i])

        if self.workers == 1 or len(jobs) <= 1:
            return [one(i) for i in range(len(jobs))]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(one, range(len(jobs))))

    def close(self) -> None:
        """Dismiss the workers still waiting for a job."""
        with self._lock:
            warm = list(self._warm)
            self._warm.clear()
        for slot in warm:
            slot.dismiss()


@dataclass(frozen=True)
class UnsafeInProcessEngine:
    """Runs jobs in *this* process: the Prover's code runs beside the verdict.

    For measuring what the process boundary costs, and for transcripts whose
    program is the Verifier's own. It gives a Prover's import-time code the
    Verifier's memory: never use it on a Prover's transcript.
    """

    workers: int = 1

    def run(self, jobs: Sequence[Job], store: ArtifactStore) -> list[JobOutcome]:
        """Stage each job and run its tasks here."""
        from computewatch.verification._channel import encode_result  # noqa: PLC0415
        from computewatch.verification._worker import run_tasks  # noqa: PLC0415

        out = []
        for job in jobs:
            folder = store.stage(job.files)
            try:
                tensors, metrics = run_tasks(folder, job.doc)
                out.append(JobOutcome(encode_result(tensors, metrics), "", {}))
            except Exception as e:  # noqa: BLE001 - a failing program fails its job
                out.append(JobOutcome(None, f"{type(e).__name__}: {e}"[:400]))
            finally:
                store.unstage(folder)
        return out


@dataclass(frozen=True)
class RayPool:
    """Replay jobs as Ray tasks on the cluster at `address` (ADR 0008).

    Each task calls `execute_job` on a Ray node, which runs the worker in
    its own sandbox; Ray carries only the job description and the answer's
    bytes. The store must be on a filesystem every node mounts.

    Attributes:
        address: the Ray head, e.g. ``"127.0.0.1:6379"``.
        limits: bounds on each worker.
        hide: more paths no worker may see.
        workers: jobs to split the work into (Ray schedules them).
    """

    address: str
    limits: WorkerLimits = field(default_factory=WorkerLimits)
    hide: tuple[str, ...] = ()
    workers: int = 4

    def run(self, jobs: Sequence[Job], store: ArtifactStore) -> list[JobOutcome]:
        """Submit `jobs` to Ray and wait for all of them."""
        try:
            import ray  # noqa: PLC0415 - an optional extra
        except ImportError as e:
            msg = "replay engine ray: expected the 'ray' extra installed, got no ray module"
            raise IsolationUnavailable(msg) from e
        if not ray.is_initialized():
            ray.init(address=self.address, log_to_driver=False, include_dashboard=False)
        remote = ray.remote(num_cpus=1, max_retries=0)(execute_job)
        limits = _limits_json(self.limits)
        refs = [
            remote.remote(
                str(store.root),
                json.dumps(job.doc),
                job.files,
                job.max_output,
                limits,
                list(self.hide),
            )
            for job in jobs
        ]
        out = []
        for ref in refs:
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayError as e:
                cause = getattr(e, "cause", None)
                if isinstance(cause, IsolationUnavailable):
                    raise cause from e
                outcome = JobOutcome(None, f"ray task failed: {type(e).__name__}")
            out.append(outcome)
        return out
