"""Proof-of-Training-Transcript verification (paper §5.1-5.2, Appendix D).

`verify_transcript` runs the Verifier's side of the protocol on one
transcript and the logs of the inspected chips, and returns a `Verdict`:

1. the folder recomputes to the report's commitment (`TranscriptReader`);
2. the precommitment recomputes from the manifest and the data order, and
   every inspected chip logged it before any snapshot of the run;
3. W_0 regenerates exactly from the seed the precommitment fixes;
4. snapshot linkage, for every chip-logged snapshot of the run: it is
   claimed, its ω copy hashes to the logged h, and a replay from the nearest
   checkpoint at or before its step lands within ε of ω on the chip's slice;
5. segment replays under a budget: Proof-of-Learning's largest-update
   segments, then segments drawn with the Verifier's secret randomness;
6. the spoof heuristics of the policy.

The Prover's program runs only in sandboxed replay workers (`_engine`,
`_prover`); this process plans, hashes, compares and decides (`_session`).

Example::

    >>> policy = VerificationPolicy(budget=0.05)
    >>> verdict = verify_transcript(run_dir, report, chips, policy, rng)  # doctest: +SKIP
    >>> verdict.passed, verdict.compute_fraction  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from computewatch.chip import LogEntry, verify_chip_log
from computewatch.errors import ComputeWatchError, FormatError, IntegrityError, ParameterError
from computewatch.verification._engine import LocalPool, RayPool, WorkerLimits
from computewatch.verification._facts import DATA_SAMPLE
from computewatch.verification._heuristics import DEFAULT_HEURISTICS, HeuristicContext
from computewatch.verification._isolation import IsolationUnavailable
from computewatch.verification._prover import ProverCalls, WorkerFailed
from computewatch.verification._reader import TranscriptReader
from computewatch.verification._results import CheckResult, Verdict

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from computewatch.crypto import Envelope, VerifyingKey
    from computewatch.verification._engine import Engine

__all__ = ["ChipEvidence", "VerificationPolicy", "verify_transcript"]


@dataclass(frozen=True)
class ChipEvidence:
    """An inspected chip's log, verified against its registered key.

    Attributes:
        serial: the chip.
        entries: its verified log entries.
    """

    serial: str
    entries: tuple[LogEntry, ...]

    @classmethod
    def from_log(
        cls, serial: str, public_key: VerifyingKey, envelopes: Sequence[Envelope]
    ) -> ChipEvidence:
        """Verify a chip's log (raises `IntegrityError` if tampered) and keep it."""
        return cls(serial, tuple(verify_chip_log(envelopes, public_key, serial)))


@dataclass(frozen=True)
class VerificationPolicy:
    """The Verifier's choices for one verification.

    Attributes:
        budget: extra segment replay (beyond snapshot linkage) as a
            fraction of the run's training steps; each replay is run twice
            (with its noise twin) unless exact.
        pol_segments: largest-update checkpoint intervals to replay first.
        safety: multiplier on the measured replay noise.
        exact: require bitwise-equal replays (single-chip runs replayed with
            the same thread count and torch build).
        chip_flops_per_second: peak FLOP/s of one chip.
        clock_slack_s: allowed chip/host clock disagreement.
        max_forward_checks: forward passes for the loss heuristic.
        max_replayed_snapshots: chip-logged snapshots replayed (a secret
            random subset when there are more; all are hash-checked).
        heuristics: the spoof heuristics to run (extend in secret).
        max_compute: a cap on everything replayed (snapshot linkage,
            segments and their noise twins) as a fraction of the run's
            training steps; snapshot replays are drawn (secretly, at random)
            and segments chosen only while they fit. None: no cap beyond
            `budget` and `max_replayed_snapshots`.
    """

    budget: float = 0.05
    pol_segments: int = 1
    safety: float = 10.0
    exact: bool = False
    chip_flops_per_second: float = 1e15
    clock_slack_s: float = 5.0
    max_forward_checks: int = 2
    max_replayed_snapshots: int = 6
    heuristics: tuple[Callable[[HeuristicContext], CheckResult], ...] = field(
        default=DEFAULT_HEURISTICS
    )
    max_compute: float | None = None

    def __post_init__(self) -> None:
        """Validate the fractions."""
        if not 0.0 <= self.budget <= 1.0:
            msg = f"budget must be a fraction of the run's steps in [0, 1], got {self.budget}"
            raise ParameterError(msg)
        if self.max_compute is not None and not 0.0 <= self.max_compute <= 2.0:  # noqa: PLR2004
            msg = f"max_compute must be in [0, 2] (twins double a replay), got {self.max_compute}"
            raise ParameterError(msg)

    def to_json(self) -> dict[str, Any]:
        """The policy's numbers (heuristics are named, not shown)."""
        return {
            "budget": self.budget,
            "pol_segments": self.pol_segments,
            "safety": self.safety,
            "exact": self.exact,
            "max_replayed_snapshots": self.max_replayed_snapshots,
            "max_compute": self.max_compute,
            "heuristics": len(self.heuristics),
        }


def _failed_open(run_id: str, commitment: str, e: ComputeWatchError) -> Verdict:
    kind = "tampered" if isinstance(e, IntegrityError) else "malformed"
    return Verdict(
        run_id=run_id,
        commitment=commitment,
        checks=(CheckResult.fail("transcript", f"{kind}: {' '.join(e.message.split())}"),),
        replayed_steps=0,
        training_steps=0,
    )


def verify_transcript(
    run_dir: str | Path,
    report: str | Path | dict[str, Any],
    chips: Sequence[ChipEvidence],
    policy: VerificationPolicy | None = None,
    rng: np.random.Generator | None = None,
    *,
    rules: Any = None,
    declared: dict[str, Any] | None = None,
    engine: Engine | None = None,
    isolation: list[dict[str, Any]] | None = None,
) -> Verdict:
    """Verify a transcript against its report and the inspected chips' logs.

    The Prover's training program never runs in this process: every replay,
    forward pass, data point and benchmark comes from sandboxed replay
    workers (`engine`, default a `LocalPool` of one worker) and is checked
    here. With `rules` (a loaded rule set), the verified facts are computed
    and the rules evaluated; only their outcomes enter the verdict. When
    `isolation` is given, each worker's isolation record is appended to it.

    Never raises for a bad transcript: tampering, malformed input and failed
    workers become failed checks in the verdict. Raises only for faults on
    the Verifier's side (`IsolationUnavailable` in strict mode).
    """
    from computewatch.verification._engine import LocalPool  # noqa: PLC0415
    from computewatch.verification._session import Session  # noqa: PLC0415
    from computewatch.verification._store import ArtifactStore  # noqa: PLC0415

    policy = policy or VerificationPolicy()
    rng = rng or np.random.default_rng()
    engine = engine or LocalPool(workers=1, limits=WorkerLimits(strict=False))
    rep_id = report.get("run_id", "?") if isinstance(report, dict) else "?"
    rep_commit = report.get("commitment", "?") if isinstance(report, dict) else "?"
    try:
        reader = TranscriptReader.open(run_dir, report)
    except ComputeWatchError as e:
        return _failed_open(str(rep_id), str(rep_commit), e)
    except _PROVER_FAULTS as e:  # a parser gap: still the Prover's malformed input
        return _failed_open(str(rep_id), str(rep_commit), FormatError(_unexpected(e)))
    hide = [reader.paths.root] + ([Path(report)] if not isinstance(report, dict) else [])
    engine = _hiding(engine, hide)
    with tempfile.TemporaryDirectory(prefix="computewatch-store-") as tmp:
        store = ArtifactStore(tmp)
        workers = int(getattr(engine, "workers", 1))
        if isinstance(engine, LocalPool):
            engine.warm(store, workers + 2)  # torch imports while this process checks
        calls = ProverCalls(reader, engine, store)
        session = Session(reader, chips, policy, rng, calls, workers)
        facts = DATA_SAMPLE if rules is not None else 0
        steps: list[Callable[[], None]] = [
            session.precommitment,
            session.initialization,
            lambda: session.run(facts=facts),
            session.heuristics,
        ]
        for step in steps:
            try:
                step()
            except (ComputeWatchError, *_PROVER_FAULTS) as e:
                name = getattr(step, "__name__", "replays")
                name = "replays" if name == "<lambda>" else name
                if not isinstance(e, ComputeWatchError):
                    e = FormatError(_unexpected(e))
                session.checks.append(CheckResult.fail(name, _describe(e)))
        outcomes: tuple[dict[str, str], ...] = ()
        try:
            if rules is not None:
                outcomes = session.rules(rules, declared or {})
        finally:
            if isinstance(engine, LocalPool):
                engine.close()
    if isolation is not None:
        isolation.extend(calls.isolation)
    return Verdict(
        run_id=reader.run_id,
        commitment=reader.report["commitment"],
        checks=tuple(session.checks),
        replayed_steps=session.replayed,
        training_steps=reader.steps,
        rules=outcomes,
    )


#: Exceptions a gap in the parsers could let Prover input raise; they fail the check.
_PROVER_FAULTS = (LookupError, TypeError, ValueError, ArithmeticError, AttributeError)


def _unexpected(e: BaseException) -> str:
    return f"unexpected input ({type(e).__name__}: {' '.join(str(e).split())[:200]})"


def _describe(e: ComputeWatchError) -> str:
    if isinstance(e, IsolationUnavailable):
        raise e
    kind = "tampered" if isinstance(e, IntegrityError) else "malformed"
    if isinstance(e, WorkerFailed):
        kind = "replay worker"
    return f"{kind}: {' '.join(e.message.split())}"


def _hiding(engine: Engine, paths: list[Path]) -> Engine:
    """`engine`, also hiding `paths` (the transcript, the report) from its workers."""
    extra = tuple(str(p.resolve()) for p in paths)
    if isinstance(engine, LocalPool | RayPool):
        return dataclasses.replace(engine, hide=(*engine.hide, *extra))
    return engine
