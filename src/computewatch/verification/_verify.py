"""Proof-of-Training-Transcript verification (paper §5.1-5.2, Appendix D).

`verify_transcript` runs the Verifier's side of the protocol on one
transcript and the logs of the inspected chips, and returns a `Verdict`:

1. the folder recomputes to the report's commitment (`TranscriptReader`);
2. the precommitment recomputes from the manifest and the data order, and
   every inspected chip logged it before any snapshot of the run; what each
   chip logged of the run (code hash, precommitment, step numbers against
   the firmware's own step count) is the transcript's (``chip-run``);
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
import math
import numbers
import re
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
    from computewatch.verification._audit import Challenge
    from computewatch.verification._engine import Engine

__all__ = ["HEURISTICS", "ChipEvidence", "VerificationPolicy", "verify_transcript"]


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


#: The built-in heuristics by name: what a policy file may list.
HEURISTICS: dict[str, Callable[[HeuristicContext], CheckResult]] = {
    h.__name__: h for h in DEFAULT_HEURISTICS
}

#: Each number's type, bounds and whether the low bound itself is allowed
#: (a policy, from a file or not, cannot ask for more than these).
_BOUNDS: dict[str, tuple[type, float, float, bool]] = {
    "budget": (float, 0.0, 1.0, True),
    "pol_segments": (int, 0, 10_000, True),
    "safety": (float, 0.0, 1e6, False),
    "chip_flops_per_second": (float, 0.0, 1e21, False),
    "clock_slack_s": (float, 0.0, 86_400.0, True),
    "max_forward_checks": (int, 0, 10_000, True),
    "max_replayed_snapshots": (int, 0, 100_000, True),
    "max_compute": (float, 0.0, 2.0, True),  # noise twins double a replay
    "audit_fraction": (float, 0.0, 1.0, True),
    "boundary_steps": (int, 1, 1 << 40, True),
    "linkage_steps": (int, 1, 1 << 40, True),
}
#: The fields whose value may also be None (no cap; the whole interval).
_OPTIONAL = frozenset({"max_compute", "boundary_steps", "linkage_steps"})
_MAX_HEURISTICS = 64


def _number(name: str, value: object) -> int | float:
    """`value` checked against `name`'s type and bounds (`ParameterError` otherwise)."""
    kind, low, high, closed = _BOUNDS[name]
    number: int | float | None = None
    if isinstance(value, bool):
        pass
    elif isinstance(value, numbers.Integral):
        number = int(value)
    elif kind is float and isinstance(value, numbers.Real):
        number = float(value)
    if number is None:
        want = "an integer" if kind is int else "a number"
        msg = f"field {name!r}: expected {want}, got {value!r:.60}"
        raise ParameterError(msg)
    in_range = (low <= number if closed else low < number) and number <= high
    if not math.isfinite(number) or not in_range:
        lo = "[" if closed else "("
        msg = f"field {name!r}: expected a value in {lo}{low:g}, {high:g}], got {value!r:.60}"
        raise ParameterError(msg)
    return number


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
        audit_fraction: each step is audited with this probability (drawn
            after the transcript is committed; ADR 0037): the Prover answers
            with its state before the step, the Verifier replays the step.
        boundary_steps: the first and last steps always replayed (ADR 0044):
            the first `boundary_steps` from W_0 and the last from the
            Prover's committed state that many steps before the end, each
            at most its checkpoint interval. None: the whole first and last
            intervals. Windows shorter than an interval need per-step
            commitments, exact replay and a Prover to challenge; without
            them the whole intervals are replayed.
        linkage_steps: a drawn snapshot is replayed from the committed state
            at most this many steps before it (the Prover's answer, checked
            against its commitment) instead of from its checkpoint, under
            the same conditions. None: from its checkpoint.

    A policy file holds `to_dict`'s form (heuristics by name, from
    `HEURISTICS`); `from_dict` reads it back, refusing anything else::

        >>> p = VerificationPolicy(pol_segments=3, safety=4.0)
        >>> VerificationPolicy.from_dict(p.to_dict()) == p
        True
        >>> VerificationPolicy.from_dict({"safety": "high"}, where="plan.json")
        Traceback (most recent call last):
        ...
        computewatch.errors.FormatError: plan.json field 'safety': expected a number, got 'high'
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
    audit_fraction: float = 0.0
    boundary_steps: int | None = None
    linkage_steps: int | None = None

    def __post_init__(self) -> None:
        """Validate every number against its bounds (`ParameterError` naming the field)."""
        for name in _BOUNDS:
            value = getattr(self, name)
            if value is not None or name not in _OPTIONAL:
                _number(name, value)
        exact: object = self.exact
        if not isinstance(exact, bool):
            msg = f"field 'exact': expected true or false, got {exact!r:.60}"
            raise ParameterError(msg)

    def to_json(self) -> dict[str, Any]:
        """The policy's numbers (heuristics are counted, not shown)."""
        return {
            "budget": self.budget,
            "pol_segments": self.pol_segments,
            "safety": self.safety,
            "exact": self.exact,
            "max_replayed_snapshots": self.max_replayed_snapshots,
            "max_compute": self.max_compute,
            "audit_fraction": self.audit_fraction,
            "boundary_steps": self.boundary_steps,
            "linkage_steps": self.linkage_steps,
            "heuristics": len(self.heuristics),
        }

    def to_dict(self) -> dict[str, Any]:
        """Every field, heuristics by name (what a policy file and a verdict hold).

        A custom heuristic is named by its ``__name__``; `from_dict` accepts
        only the built-in names, so a policy with one cannot be read back.
        """
        doc: dict[str, Any] = {name: getattr(self, name) for name in _BOUNDS}
        doc["exact"] = self.exact
        doc["heuristics"] = [str(getattr(h, "__name__", "custom")) for h in self.heuristics]
        return doc

    @classmethod
    def from_dict(cls, doc: object, *, where: str = "verification policy") -> VerificationPolicy:
        """Read `to_dict`'s form; a missing field takes its default.

        Raises:
            FormatError: not a mapping, an unknown field, a value of the
                wrong type or out of bounds, an unknown heuristic: one line
                naming `where` and the field.
        """
        if not isinstance(doc, dict):
            msg = f"{where}: expected a mapping of policy fields, got {type(doc).__name__}"
            raise FormatError(msg)
        known = {*_BOUNDS, "exact", "heuristics"}
        extra = sorted(str(k) for k in doc if k not in known)
        if extra:
            msg = (
                f"{where} field {extra[0]!r:.60}: unknown; "
                f"expected some of {', '.join(sorted(known))}"
            )
            raise FormatError(msg)
        kw: dict[str, Any] = {}
        try:
            for name in _BOUNDS:
                if name in doc and not (name in _OPTIONAL and doc[name] is None):
                    kw[name] = _number(name, doc[name])
                elif name in doc:
                    kw[name] = None
        except ParameterError as e:
            msg = f"{where} {e.message}"
            raise FormatError(msg) from e
        if "exact" in doc:
            if not isinstance(doc["exact"], bool):
                msg = f"{where} field 'exact': expected true or false, got {doc['exact']!r:.60}"
                raise FormatError(msg)
            kw["exact"] = doc["exact"]
        if "heuristics" in doc:
            kw["heuristics"] = _heuristics(where, doc["heuristics"])
        return cls(**kw)


def _heuristics(where: str, names: object) -> tuple[Callable[[HeuristicContext], CheckResult], ...]:
    if not isinstance(names, list) or len(names) > _MAX_HEURISTICS:
        msg = f"{where} field 'heuristics': expected a list of at most {_MAX_HEURISTICS} names"
        raise FormatError(msg)
    out = []
    for name in names:
        if not isinstance(name, str) or name not in HEURISTICS:
            msg = (
                f"{where} field 'heuristics': unknown heuristic {name!r:.60}; "
                f"expected some of {', '.join(sorted(HEURISTICS))}"
            )
            raise FormatError(msg)
        if HEURISTICS[name] in out:
            msg = f"{where} field 'heuristics': {name!r} is listed twice"
            raise FormatError(msg)
        out.append(HEURISTICS[name])
    return tuple(out)


_IMPORTS_TRANSFORMERS = re.compile(rb"^\s*(?:from|import)\s+transformers\b", re.MULTILINE)


def _stacks(reader: TranscriptReader) -> tuple[str, ...]:
    """The preloadable training stacks the transcript's program imports (a hint, ADR 0043)."""
    try:
        source = reader.paths.program.read_bytes()
    except OSError:
        return ()
    return ("transformers",) if _IMPORTS_TRANSFORMERS.search(source) else ()


def _failed_open(
    run_id: str, commitment: str, e: ComputeWatchError, policy: VerificationPolicy
) -> Verdict:
    kind = "tampered" if isinstance(e, IntegrityError) else "malformed"
    return Verdict(
        run_id=run_id,
        commitment=commitment,
        checks=(CheckResult.fail("transcript", f"{kind}: {' '.join(e.message.split())}"),),
        replayed_steps=0,
        training_steps=0,
        policy=policy.to_dict(),
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
    challenge: Challenge | None = None,
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
        return _failed_open(str(rep_id), str(rep_commit), e, policy)
    except _PROVER_FAULTS as e:  # a parser gap: still the Prover's malformed input
        return _failed_open(str(rep_id), str(rep_commit), FormatError(_unexpected(e)), policy)
    policy = _audited(policy, rules, reader.steps)
    hide = [reader.paths.root] + ([Path(report)] if not isinstance(report, dict) else [])
    engine = _hiding(engine, hide)
    with tempfile.TemporaryDirectory(prefix="computewatch-store-") as tmp:
        store = ArtifactStore(tmp)
        workers = int(getattr(engine, "workers", 1))
        if isinstance(engine, LocalPool):
            # torch imports while this process checks; a stack the program
            # imports, where the zygote may preload it, is imported there once
            engine.warm(store, workers + 2, stacks=_stacks(reader))
        calls = ProverCalls(reader, engine, store)
        session = Session(reader, chips, policy, rng, calls, workers)
        session.challenge = challenge
        facts = DATA_SAMPLE if rules is not None else 0
        steps: list[Callable[[], None]] = [
            session.precommitment,
            session.chip_runs,
            session.initialization,
            lambda: session.run(
                facts=facts, benchmarks=rules.benchmarks if rules is not None else ()
            ),
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
        policy=policy.to_dict(),
    )


def _audited(policy: VerificationPolicy, rules: Any, steps: int) -> VerificationPolicy:
    """`policy`, its audit fraction raised to what the rule file demands for `steps` steps."""
    demand = getattr(rules, "audit", None)
    if demand is None:
        return policy
    fraction = float(demand.fraction_for(steps))
    if fraction <= policy.audit_fraction:
        return policy
    return dataclasses.replace(policy, audit_fraction=fraction)


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
