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

Example::

    >>> policy = VerificationPolicy(budget=0.05)
    >>> verdict = verify_transcript(run_dir, report, chips, policy, rng)  # doctest: +SKIP
    >>> verdict.passed, verdict.compute_fraction  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from computewatch.chip import LogEntry, verify_chip_log
from computewatch.datacenter import (
    data_root,
    derive_init_seed,
    init_flat,
    manifest_digest,
    precommitment,
)
from computewatch.errors import ComputeWatchError, FormatError, IntegrityError, ParameterError
from computewatch.verification._heuristics import DEFAULT_HEURISTICS, HeuristicContext
from computewatch.verification._reader import TranscriptReader
from computewatch.verification._replay import Replayer, Tolerance, replay_pair
from computewatch.verification._results import CheckResult, Verdict

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    import torch

    from computewatch.crypto import Envelope, VerifyingKey

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


class _Session:
    """State of one verification (replayer, tolerance, counters)."""

    def __init__(
        self,
        reader: TranscriptReader,
        chips: Sequence[ChipEvidence],
        policy: VerificationPolicy,
        rng: np.random.Generator,
    ) -> None:
        self.reader = reader
        self.chips = list(chips)
        self.policy = policy
        self.rng = rng
        self.checks: list[CheckResult] = []
        self.replayed = 0
        self.replayer: Replayer | None = None
        self.tolerance: Tolerance | None = None

    # -- 2. precommitment --------------------------------------------------

    def precommitment(self) -> None:
        reader = self.reader
        roots = [r["batch_root"] for r in reader.step_records]
        from computewatch.crypto import Digest  # noqa: PLC0415

        recomputed = precommitment(
            manifest_digest(reader.manifest), data_root([Digest.parse(r) for r in roots])
        )
        if str(recomputed) != reader.report["precommitment"]:
            self.checks.append(
                CheckResult.fail(
                    "precommitment", "does not recompute from the manifest and data order"
                )
            )
        else:
            self.checks.append(
                CheckResult.ok("precommitment", "recomputes from M and the data order")
            )
        for chip in self.chips:
            name = f"precommit-logged:{chip.serial}"
            pre = [
                e
                for e in chip.entries
                if e.kind == "precommit" and e.body.get("run_id") == reader.run_id
            ]
            snaps = [
                e
                for e in chip.entries
                if e.kind == "snapshot" and e.body.get("run_id") == reader.run_id
            ]
            if not pre:
                self.checks.append(
                    CheckResult.fail(name, "the chip never logged this run's precommitment")
                )
            elif pre[0].body.get("commitment") != reader.report["precommitment"]:
                self.checks.append(
                    CheckResult.fail(name, "the chip logged a different precommitment for this run")
                )
            elif snaps and snaps[0].seq < pre[0].seq:
                self.checks.append(CheckResult.fail(name, "a snapshot precedes the precommitment"))
            else:
                self.checks.append(
                    CheckResult.ok(name, f"logged at seq {pre[0].seq}, before its snapshots")
                )

    # -- 3. W_0 ------------------------------------------------------------

    def initialization(self) -> None:
        import torch  # noqa: PLC0415

        from computewatch.crypto import Digest  # noqa: PLC0415

        reader = self.reader
        if 0 not in reader.checkpoint_steps:
            self.checks.append(CheckResult.fail("init", "no checkpoint of W_0"))
            return
        init = reader.manifest.get("init", {})
        if init.get("scheme") != "cw-normal-v1" or init.get("seed") != "precommitment":
            self.checks.append(CheckResult.fail("init", f"unsupported init {init!r:.80}"))
            return
        seed = derive_init_seed(Digest.parse(reader.report["precommitment"]))
        expected = init_flat(reader.layout, seed, std=float(init.get("std", 0.02)))
        w0 = reader.checkpoint(0).weights
        if torch.equal(expected, w0):
            self.checks.append(
                CheckResult.ok("init", "W_0 regenerates exactly from the precommitted seed")
            )
        else:
            self.checks.append(
                CheckResult.fail(
                    "init",
                    "W_0 is not the seeded initialization",
                    distance=float((expected - w0).norm()),
                )
            )

    # -- replay helpers ------------------------------------------------------

    def _tolerance(self) -> Tolerance:
        if self.tolerance is None:
            reader, policy = self.reader, self.policy
            same_build = reader.determinism.torch_version == __import__("torch").__version__
            exact = policy.exact and reader.world_size == 1 and same_build
            self.tolerance = Tolerance(safety=policy.safety, exact=exact)
        return self.tolerance

    def _replay(
        self, start: int, stop: int, capture: set[int]
    ) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]:
        """Replay (and, unless exact, its noise twin); count the steps."""
        if self._tolerance().exact:
            replayer = self._replayer()
            before = replayer.steps_replayed
            _, main = replayer.run(start, stop, capture=capture | {stop})
            self.replayed += replayer.steps_replayed - before
            return main, main
        main, twin, steps = replay_pair(self.reader, start, stop, capture)
        self.replayed += steps
        return main, twin

    def _replayer(self) -> Replayer:
        if self.replayer is None:
            self.replayer = Replayer(self.reader)
        return self.replayer

    def _base(self, step: int) -> int:
        return max(c for c in self.reader.checkpoint_steps if c <= step)

    # -- 4. snapshot linkage -------------------------------------------------

    def _link(self, serial: str, entry: LogEntry, claims: dict[tuple[str, int], Any]) -> bool:
        """Check one logged snapshot's claim and ω copy (no replay yet)."""
        from computewatch.crypto import shard_hash  # noqa: PLC0415

        reader = self.reader
        name = f"snapshot:{serial}#{entry.seq}"
        claim = claims.get((serial, entry.seq))
        problem = None
        if claim is None:
            problem = "chip-logged snapshot missing from the report"
        elif str(claim.h) != entry.body.get("h") or claim.step != entry.body.get("step"):
            problem = "the report's claim differs from the chip log"
        elif reader.chip_slices.get(serial) != (claim.start, claim.stop):
            problem = "claimed slice differs from the manifest's sharding"
        elif not 0 < claim.step <= reader.steps:
            problem = f"step {claim.step} is outside the run"
        else:
            try:
                omega = reader.omega(serial, entry.seq)
            except FormatError as e:
                problem = f"ω copy unusable: {e.message}"
            else:
                if str(shard_hash(omega)) != entry.body.get("h"):
                    problem = "the ω copy does not hash to the logged h"
                elif omega.numel() != claim.stop - claim.start:
                    problem = f"ω has {omega.numel()} values, the slice {claim.stop - claim.start}"
        if problem is not None:
            self.checks.append(CheckResult.fail(name, problem))
            return False
        return True

    def _cost(self, steps: int) -> int:
        """Replayed steps for a replay of `steps` steps (twice unless exact)."""
        return steps if self._tolerance().exact else 2 * steps

    def _left(self) -> float:
        """Replay steps left under `max_compute` (infinite without a cap)."""
        cap = self.policy.max_compute
        return math.inf if cap is None else cap * self.reader.steps - self.replayed

    def _draw_snapshots(self, steps: list[int]) -> set[int]:
        """A secret random subset of the logged snapshots to replay.

        At most `max_replayed_snapshots`, and only while the replays (from
        each snapshot's checkpoint, shared by snapshots after the same
        checkpoint) fit under `max_compute`.
        """
        limit = self.policy.max_replayed_snapshots
        if self.policy.max_compute is None:
            if len(steps) <= limit:
                return set(range(len(steps)))
            return {int(i) for i in self.rng.choice(len(steps), size=limit, replace=False)}
        left = self._left()
        reach: dict[int, int] = {}
        chosen: set[int] = set()
        for i in self.rng.permutation(len(steps)):
            if len(chosen) >= limit:
                break
            base = self._base(steps[int(i)])
            extra = self._cost(max(0, steps[int(i)] - reach.get(base, base)))
            if extra > left:
                continue
            left -= extra
            reach[base] = max(reach.get(base, base), steps[int(i)])
            chosen.add(int(i))
        return chosen

    def snapshots(self) -> None:
        reader = self.reader
        claims = {(c.serial, c.seq): c for c in reader.claims}
        logged = [
            (chip.serial, e)
            for chip in self.chips
            for e in chip.entries
            if e.kind == "snapshot" and e.body.get("run_id") == reader.run_id
        ]
        if not logged:
            self.checks.append(
                CheckResult.skipped("snapshots", "no inspected chip logged a snapshot of this run")
            )
            return
        linked = [(serial, entry) for serial, entry in logged if self._link(serial, entry, claims)]
        # every logged snapshot is claimed and hash-checked above; a secret
        # random subset of them is also replayed (replay is the costly part)
        chosen = self._draw_snapshots([int(e.body["step"]) for _, e in linked])
        pending: dict[int, list[tuple[str, LogEntry]]] = {}
        for i, (serial, entry) in enumerate(linked):
            if i not in chosen:
                self.checks.append(
                    CheckResult.ok(
                        f"snapshot:{serial}#{entry.seq}",
                        "claimed, ω hashes to the logged h (not drawn for replay)",
                        replayed=False,
                    )
                )
                continue
            step = int(entry.body["step"])
            pending.setdefault(self._base(step), []).append((serial, entry))
        if not pending:
            return
        tol = self._tolerance()
        for base, items in sorted(pending.items()):
            steps = {int(e.body["step"]) for _, e in items}
            main, twin = self._replay(base, max(steps), steps)
            w_base = reader.checkpoint(base).weights
            for serial, entry in items:
                step = int(entry.body["step"])
                a, b = reader.chip_slices[serial]
                omega = reader.omega(serial, entry.seq)
                replayed = main[step][a:b]
                distance = float((replayed - omega).norm())
                noise = float((replayed - twin[step][a:b]).norm())
                eps = tol.epsilon(noise, float((replayed - w_base[a:b]).norm()))
                ok = bool((replayed == omega).all()) if tol.exact else distance <= eps
                result = CheckResult.ok if ok else CheckResult.fail
                self.checks.append(
                    result(
                        f"snapshot:{serial}#{entry.seq}",
                        f"replay {base}->{step}: |ω' - ω| = {distance:.3g} vs ε = {eps:.3g}",
                        base=base,
                        step=step,
                        distance=distance,
                        noise=noise,
                        epsilon=eps,
                    )
                )

    # -- 5. segments -------------------------------------------------------

    def segments(self) -> None:
        reader, policy = self.reader, self.policy
        ckpts = reader.checkpoint_steps
        intervals = list(itertools.pairwise(ckpts))
        if not intervals:
            self.checks.append(CheckResult.skipped("segments", "fewer than two checkpoints"))
            return
        allowance = math.floor(policy.budget * reader.steps)
        if policy.max_compute is not None:
            allowance = min(allowance, math.floor(self._left() / self._cost(1)))
        # PoL: the intervals with the largest updates first
        distances = {
            (a, b): float((reader.checkpoint(b).weights - reader.checkpoint(a).weights).norm())
            for a, b in intervals
        }
        order = sorted(intervals, key=lambda ab: -distances[ab])[: policy.pol_segments]
        rest = [ab for ab in intervals if ab not in order]
        for i in self.rng.permutation(len(rest)):
            order.append(rest[int(i)])
        chosen = []
        used = 0
        for a, b in order:
            if used + (b - a) > allowance:
                continue
            chosen.append((a, b))
            used += b - a
        if not chosen:
            shortest = min(b - a for a, b in intervals)
            self.checks.append(
                CheckResult.skipped(
                    "segments",
                    f"budget of {allowance} steps is below the shortest segment ({shortest})",
                )
            )
            return
        tol = self._tolerance()
        for a, b in chosen:
            main, twin = self._replay(a, b, {b})
            target = reader.checkpoint(b).weights
            final = main[b]
            distance = float((final - target).norm())
            noise = float((final - twin[b]).norm())
            eps = tol.epsilon(noise, float((final - reader.checkpoint(a).weights).norm()))
            ok = bool((final == target).all()) if tol.exact else distance <= eps
            kind = "largest-update" if (a, b) in order[: policy.pol_segments] else "random"
            result = CheckResult.ok if ok else CheckResult.fail
            self.checks.append(
                result(
                    f"segment:{a}-{b}",
                    f"{kind} segment replay: |W' - W| = {distance:.3g} vs ε = {eps:.3g}",
                    start=a,
                    stop=b,
                    distance=distance,
                    noise=noise,
                    epsilon=eps,
                )
            )

    # -- 7. rules ------------------------------------------------------------

    def rules(self, rules: Any, declared: dict[str, Any]) -> tuple[dict[str, str], ...]:
        """Compute the verified facts and evaluate `rules` on them."""
        from computewatch.rules import (  # noqa: PLC0415
            ExploitCodeClassifier,
            HeldOutBitsPerByte,
            evaluate,
        )
        from computewatch.verification._facts import compute_facts  # noqa: PLC0415

        verified = not any(c.status.value == "fail" for c in self.checks)
        try:
            facts = compute_facts(
                self.reader,
                self._replayer(),
                verified=verified,
                declared=declared,
                rng=self.rng,
                classifiers=[ExploitCodeClassifier()],
                benchmarks=[HeldOutBitsPerByte()],
            )
        except ComputeWatchError as e:
            self.checks.append(CheckResult.fail("facts", " ".join(e.message.split())))
            return tuple({"id": r.id, "kind": r.kind.value, "status": "error"} for r in rules.rules)
        report = evaluate(rules, facts)
        return tuple(
            {"id": r.rule_id, "kind": str(r.kind.value), "status": str(r.status.value)}
            for r in report.results
        )

    # -- 6. heuristics -----------------------------------------------------

    def heuristics(self) -> None:
        replayer = self._replayer()
        ctx = HeuristicContext(
            reader=self.reader,
            replayer=replayer,
            chip_logs={c.serial: list(c.entries) for c in self.chips},
            rng=self.rng,
            chip_flops_per_second=self.policy.chip_flops_per_second,
            clock_slack_s=self.policy.clock_slack_s,
            max_forward_checks=self.policy.max_forward_checks,
        )
        for heuristic in self.policy.heuristics:
            try:
                self.checks.append(heuristic(ctx))
            except ComputeWatchError as e:
                name = f"heuristic:{getattr(heuristic, '__name__', 'custom')}"
                self.checks.append(CheckResult.fail(name, " ".join(e.message.split())))


def verify_transcript(
    run_dir: str | Path,
    report: str | Path | dict[str, Any],
    chips: Sequence[ChipEvidence],
    policy: VerificationPolicy | None = None,
    rng: np.random.Generator | None = None,
    *,
    rules: Any = None,
    declared: dict[str, Any] | None = None,
) -> Verdict:
    """Verify a transcript against its report and the inspected chips' logs.

    With `rules` (a loaded rule set), the verified facts are computed and
    the rules evaluated; only their outcomes enter the verdict.

    Never raises for a bad transcript: tampering and malformed input become
    failed checks in the verdict (the trusted cluster outputs only pass/fail).
    """
    policy = policy or VerificationPolicy()
    rng = rng or np.random.default_rng()
    rep_id = report.get("run_id", "?") if isinstance(report, dict) else "?"
    rep_commit = report.get("commitment", "?") if isinstance(report, dict) else "?"
    try:
        reader = TranscriptReader.open(run_dir, report)
    except ComputeWatchError as e:
        return _failed_open(str(rep_id), str(rep_commit), e)
    session = _Session(reader, chips, policy, rng)
    steps: list[Callable[[], None]] = [
        session.precommitment,
        session.initialization,
        session.snapshots,
        session.segments,
        session.heuristics,
    ]
    for step in steps:
        try:
            step()
        except ComputeWatchError as e:
            kind = "tampered" if isinstance(e, IntegrityError) else "malformed"
            name = step.__name__
            session.checks.append(CheckResult.fail(name, f"{kind}: {' '.join(e.message.split())}"))
    outcomes: tuple[dict[str, str], ...] = ()
    if rules is not None:
        outcomes = session.rules(rules, declared or {})
    return Verdict(
        run_id=reader.run_id,
        commitment=reader.report["commitment"],
        checks=tuple(session.checks),
        replayed_steps=session.replayed,
        training_steps=reader.steps,
        rules=outcomes,
    )
