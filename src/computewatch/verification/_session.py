"""One verification's checks, planned in the Verifier and run in replay workers (private).

`Session` does what needs no Prover code itself (precommitment, seeded
W_0 from the manifest's layout, snapshot claims and ω hashes, the choice of
replays with the Verifier's secret randomness), then asks `ProverCalls` for
everything else in two rounds of jobs: one data job (the model's layout and
FLOPs, the raw points of every step it will replay or sample), then the
replays, forward passes and the rule file's declared benchmarks, packed so
that no job sees what it is checked against. It compares the answers and records `CheckResult`s.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

from computewatch.datacenter import (
    FlatLayout,
)
from computewatch.errors import ComputeWatchError, FormatError
from computewatch.verification._audit import StepAudits
from computewatch.verification._bisect import (
    checkpoint_commitments,
    committed_states,
    localize,
)
from computewatch.verification._heuristics import HeuristicContext
from computewatch.verification._linkage import StaticChecks
from computewatch.verification._prover import ProverCalls, Task
from computewatch.verification._replay import Tolerance
from computewatch.verification._results import CheckResult
from computewatch.verification._windows import (
    boundary_windows,
    compare,
    judge_window,
    off_chain,
    snapshot_start,
    stage_starts,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

    from computewatch.chip import LogEntry
    from computewatch.verification._audit import Challenge
    from computewatch.verification._reader import TranscriptReader
    from computewatch.verification._verify import ChipEvidence, VerificationPolicy

__all__ = ["Session"]

#: Committed points sampled by the data heuristic.
DATA_CHECKS = 16


class Session(StaticChecks):
    """State of one verification (checks, counters, the worker calls)."""

    def __init__(  # noqa: PLR0917 - one verification's parts
        self,
        reader: TranscriptReader,
        chips: Sequence[ChipEvidence],
        policy: VerificationPolicy,
        rng: np.random.Generator,
        calls: ProverCalls,
        parts: int = 1,
    ) -> None:
        self.reader = reader
        self.chips = list(chips)
        self.policy = policy
        self.rng = rng
        self.calls = calls
        self.parts = parts
        self.checks: list[CheckResult] = []
        self.replayed = 0
        self.tolerance: Tolerance | None = None
        self.losses: dict[int, float | str] = {}
        self.samples: list[tuple[int, int, int]] = []
        self.fact_samples: list[tuple[int, int, int]] = []
        self.scores: dict[str, float] = {}
        self._snap_plan: list[tuple[int, list[tuple[str, LogEntry]]]] = []
        self._seg_plan: list[tuple[int, int, str]] = []
        self.challenge: Challenge | None = None

    # -- replay helpers ------------------------------------------------------

    def _pinned(self) -> bool:
        """This cluster's pinned environment and a fixed order of sums: replays are exact.

        The order is fixed by the manifest's reduction (ADR 0033) or, on one
        chip, by there being nothing to reduce across chips: a lab's own
        one-chip loop (`Monitor`, the HF callback) replays bit for bit too.
        """
        fixed = self.reader.reduction is not None or self.reader.world_size == 1
        return fixed and self.reader.determinism.pinned_here()

    def _tolerance(self) -> Tolerance:
        """Exact (ε = 0, no noise twin) when pinned (ADR 0033), else measured (ADR 0004)."""
        if self.tolerance is None:
            reader, policy = self.reader, self.policy
            same_build = reader.determinism.torch_version == __import__("torch").__version__
            legacy_exact = policy.exact and reader.world_size == 1 and same_build
            exact = self._pinned() or legacy_exact
            self.tolerance = Tolerance(safety=policy.safety, exact=exact)
        return self.tolerance

    def _replay_tasks(
        self, start: int, stop: int, capture: set[int], target: int | None
    ) -> list[Task]:
        """The main replay and (unless exact) its noise twin; count their steps."""
        threads = self.reader.determinism.threads
        main = Task("replay", start, stop, frozenset(capture), threads, target=target)
        self.replayed += stop - start
        if self._tolerance().exact:
            return [main]
        other = threads + 1 if threads == 1 else threads - 1
        self.replayed += stop - start
        return [
            main,
            Task("replay", start, stop, frozenset(capture), other, perturb=True, target=target),
        ]

    # -- 4. snapshot linkage -------------------------------------------------

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
        each snapshot's start, `snapshot_start`, shared by snapshots after
        the same start) fit under `max_compute`.
        """
        limit = self.policy.max_replayed_snapshots
        if self.policy.max_compute is None:
            if len(steps) <= limit:
                return set(range(len(steps)))
            return {int(i) for i in self.rng.choice(len(steps), size=limit, replace=False)}
        left = self._left() - self._boundary_reserve()
        reach: dict[int, int] = {}
        chosen: set[int] = set()
        for i in self.rng.permutation(len(steps)):
            if len(chosen) >= limit:
                break
            base = snapshot_start(self, steps[int(i)])
            extra = self._cost(max(0, steps[int(i)] - reach.get(base, base)))
            if extra > left:
                continue
            left -= extra
            reach[base] = max(reach.get(base, base), steps[int(i)])
            chosen.add(int(i))
        return chosen

    def plan_snapshots(self) -> list[Task]:
        """Hash-check every logged snapshot; choose (secretly) which to replay."""
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
            return []
        linked = [(serial, entry) for serial, entry in logged if self._link(serial, entry, claims)]
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
            start = snapshot_start(self, int(entry.body["step"]))
            pending.setdefault(start, []).append((serial, entry))
        usable = stage_starts(self, pending, "snapshots", lambda t: f"snapshot-start:{t}")
        tasks = []
        for base, items in sorted(pending.items()):
            if base not in usable:
                continue  # the failed check says why
            steps = {int(e.body["step"]) for _, e in items}
            self._snap_plan.append((base, items))
            tasks += self._replay_tasks(base, max(steps), steps, None)
        return tasks

    def _boundary_reserve(self) -> int:
        """Replay steps kept for the boundary (never left to the draw, issue 15)."""
        return self._cost(sum(b - a for a, b in boundary_windows(self)))

    def plan_segments(self) -> list[Task]:
        """Choose segments: the boundary, then largest updates, then at random, within budget.

        The boundary intervals are replayed whatever `budget` allows, as long
        as they fit under `max_compute`; one that does not is a skipped check.
        """
        reader, policy = self.reader, self.policy
        intervals = list(itertools.pairwise(reader.checkpoint_steps))
        if not intervals:
            self.checks.append(CheckResult.skipped("segments", "fewer than two checkpoints"))
            return []
        hard = math.inf if policy.max_compute is None else math.floor(self._left() / self._cost(1))
        allowance = min(math.floor(policy.budget * reader.steps), hard)
        distances = {
            (a, b): float((reader.checkpoint(b).weights - reader.checkpoint(a).weights).norm())
            for a, b in intervals
        }
        boundary = boundary_windows(self)
        rest = [ab for ab in intervals if ab not in boundary]
        largest = set(sorted(rest, key=lambda ab: -distances[ab])[: policy.pol_segments])
        order = [ab for ab in sorted(rest, key=lambda ab: -distances[ab]) if ab in largest]
        rest = [ab for ab in rest if ab not in largest]
        order += [rest[int(i)] for i in self.rng.permutation(len(rest))]
        used = 0
        tasks = []
        usable = stage_starts(self, [a for a, _ in boundary], "segments", lambda t: f"segment:{t}")
        for a, b in boundary:
            if a not in usable:
                continue  # the failed check says why
            if used + (b - a) > hard:
                self.checks.append(
                    CheckResult.skipped(
                        f"segment:{a}-{b}",
                        f"boundary interval of {b - a} steps does not fit max_compute",
                    )
                )
                continue
            used += b - a
            self._seg_plan.append((a, b, "boundary"))
            tasks += self._replay_tasks(a, b, {b}, b)
        for a, b in order:
            if used + (b - a) > allowance:
                continue
            used += b - a
            self._seg_plan.append((a, b, "largest-update" if (a, b) in largest else "random"))
            tasks += self._replay_tasks(a, b, {b}, b)
        if not tasks:
            shortest = min(b - a for a, b in intervals)
            self.checks.append(
                CheckResult.skipped(
                    "segments",
                    f"budget of {allowance} steps is below the shortest segment ({shortest})",
                )
            )
        return tasks

    def plan_checks(
        self, *, facts: int, benchmarks: Sequence[Any] = ()
    ) -> tuple[list[Task], set[int], list[int]]:
        """Forward passes, data samples and (for facts) the declared benchmarks, drawn in secret."""
        reader = self.reader
        metrics = reader.metrics
        with_loss = [s for s in reader.checkpoint_steps if s < len(metrics)]
        size = min(len(with_loss), self.policy.max_forward_checks)
        forward = (
            sorted(int(s) for s in self.rng.choice(with_loss, size=size, replace=False))
            if size
            else []
        )
        tasks = [Task("loss", s, s) for s in forward]
        steps = set(forward)
        for step in sorted(
            int(s)
            for s in self.rng.choice(
                reader.steps, size=min(reader.steps, DATA_CHECKS), replace=False
            )
        ):
            j = int(self.rng.integers(len(reader.schedule.indices(step))))
            self.samples.append((step, j, reader.schedule.indices(step)[j]))
        for _ in range(facts):
            step = int(self.rng.integers(reader.steps))
            j = int(self.rng.integers(len(reader.schedule.indices(step))))
            self.fact_samples.append((step, j, reader.schedule.indices(step)[j]))
        if facts and benchmarks:
            final = reader.checkpoint_steps[-1]
            tasks.append(Task("benchmark", final, final, benchmarks=tuple(benchmarks)))
        return tasks, steps, [i for _, _, i in self.samples + self.fact_samples]

    # -- running the plan ----------------------------------------------------

    def run(self, *, facts: int = 0, benchmarks: Sequence[Any] = ()) -> None:
        """Plan, run the data job and the work jobs, and compare the answers.

        `benchmarks` (the rule file's `BenchmarkSpec`s) are scored on the
        final checkpoint when `facts`; one that cannot be scored is a failed
        ``benchmark:<name>`` check ("benchmark unavailable") and has no fact.
        """
        tasks = self.plan_snapshots()
        n_snap = len(tasks)
        tasks += self.plan_segments()
        n_seg = len(tasks)
        audits = StepAudits(self)
        tasks += audits.plan(self.challenge)
        n_aud = len(tasks)
        extra, forward, samples = self.plan_checks(facts=facts, benchmarks=benchmarks)
        tasks += extra
        data_steps = {s for t in tasks for s in t.data_steps} | forward
        self.calls.fetch(data_steps, samples)
        self._check_layout()
        self.checks.append(checkpoint_commitments(self.reader))
        results = self.calls.run(tasks, self.parts)
        self._judge_snapshots(tasks[:n_snap], results[:n_snap])
        self._judge_segments(tasks[n_snap:n_seg], results[n_snap:n_seg])
        self.checks += audits.judge(results[n_seg:n_aud])
        for task, result in zip(tasks[n_aud:], results[n_aud:], strict=True):
            if task.kind == "loss":
                self.losses[task.start] = result if isinstance(result, str) else result["loss"]
            else:
                self._take_scores(task, result)

    def _take_scores(self, task: Task, result: dict[str, Any] | str) -> None:
        """Keep the benchmarks' scores; a failed check for each one without a score."""
        if isinstance(result, str):  # the whole job failed
            result = {
                "scores": {},
                "failed": dict.fromkeys((b.name for b in task.benchmarks), result),
            }
        self.scores = dict(result["scores"])
        for name, reason in sorted(result["failed"].items()):
            self.checks.append(
                CheckResult.fail(f"benchmark:{name}", f"benchmark unavailable: {reason}")
            )

    def _check_layout(self) -> None:
        info = self.calls.info
        if info is None:
            self.checks.append(
                CheckResult.fail("layout", f"replay worker: {self.calls.info_failure}")
            )
            return
        try:
            layout = FlatLayout.from_json(info.get("layout"))
        except (FormatError, TypeError, ValueError) as e:
            self.checks.append(
                CheckResult.fail("layout", f"replay worker: model layout malformed ({e})")
            )
            return
        if self._pinned():
            self.checks.append(self._environment_check(info.get("environment")))
        same = layout == self.reader.layout
        self.checks.append(
            CheckResult.ok("layout", "the program's model has the manifest's layout")
            if same
            else CheckResult.fail(
                "layout", "the program's model layout differs from the manifest's"
            )
        )

    def _pairs(
        self, tasks: Sequence[Task], results: Sequence[dict[str, Any] | str]
    ) -> list[tuple[dict[str, Any], dict[str, Any]] | str]:
        """(main, twin) answers per planned replay, or why it failed."""
        width = 1 if self._tolerance().exact else 2
        out: list[tuple[dict[str, Any], dict[str, Any]] | str] = []
        for i in range(0, len(tasks), width):
            main, twin = results[i], results[i + width - 1]
            if isinstance(main, str) or isinstance(twin, str):
                out.append(main if isinstance(main, str) else str(twin))
            else:
                out.append((main, twin))
        return out

    def _judge_snapshots(
        self, tasks: Sequence[Task], results: Sequence[dict[str, Any] | str]
    ) -> None:
        tol = self._tolerance()
        for (base, items), pair in zip(self._snap_plan, self._pairs(tasks, results), strict=True):
            for serial, entry in items:
                name = f"snapshot:{serial}#{entry.seq}"
                if isinstance(pair, str):
                    self.checks.append(CheckResult.fail(name, pair))
                    continue
                main, twin = pair
                step = int(entry.body["step"])
                cut = self.reader.omega_of
                omega = self.reader.omega(serial, entry.seq)
                replayed = cut(main[str(step)], serial)
                distance = float((replayed - omega).norm())
                noise = float((replayed - cut(twin[str(step)], serial)).norm())
                start = None if tol.exact else cut(self.reader.checkpoint(base).weights, serial)
                eps, ok = compare(tol, replayed, omega, noise, start)
                where = off_chain(self, base, step, main) if tol.exact else ""
                result = CheckResult.ok if ok and not where else CheckResult.fail
                self.checks.append(
                    result(
                        name,
                        f"replay {base}->{step}: |ω' - ω| = {distance:.3g} vs ε = {eps:.3g}{where}",
                        base=base,
                        step=step,
                        distance=distance,
                        noise=noise,
                        epsilon=eps,
                    )
                )

    def _judge_segments(
        self, tasks: Sequence[Task], results: Sequence[dict[str, Any] | str]
    ) -> None:
        tol = self._tolerance()
        for (a, b, kind), pair in zip(self._seg_plan, self._pairs(tasks, results), strict=True):
            name = f"segment:{a}-{b}"
            if isinstance(pair, str):
                self.checks.append(CheckResult.fail(name, pair))
                continue
            main, twin = pair
            if b not in self.reader.checkpoint_steps:  # a boundary window (ADR 0044)
                self.checks.append(judge_window(self, a, b, main))
                continue
            target = self.reader.checkpoint(b).weights
            final = main[str(b)]
            distance = float((final - target).norm())
            noise = float((final - twin[str(b)]).norm())
            start = None if tol.exact else self.reader.checkpoint(a).weights
            eps, ok = compare(tol, final, target, noise, start)
            if tol.exact:  # every state on the way must be the committed one, too
                where = off_chain(self, a, b, main)
            else:
                where = (
                    ""
                    if ok
                    else localize(a, b, main.get("states", []), committed_states(self.reader))
                )
            result = CheckResult.ok if ok and not where else CheckResult.fail
            self.checks.append(
                result(
                    name,
                    f"{kind} segment replay: |W' - W| = {distance:.3g} vs ε = {eps:.3g}{where}",
                    start=a,
                    stop=b,
                    distance=distance,
                    noise=noise,
                    epsilon=eps,
                )
            )

    # -- 6. heuristics -------------------------------------------------------

    def heuristics(self) -> None:
        ctx = HeuristicContext(
            reader=self.reader,
            prover=self.calls,
            chip_logs={c.serial: list(c.entries) for c in self.chips},
            rng=self.rng,
            chip_flops_per_second=self.policy.chip_flops_per_second,
            clock_slack_s=self.policy.clock_slack_s,
            max_forward_checks=self.policy.max_forward_checks,
            losses=dict(self.losses),
            samples=tuple(self.samples),
        )
        for heuristic in self.policy.heuristics:
            try:
                self.checks.append(heuristic(ctx))
            except ComputeWatchError as e:
                name = f"heuristic:{getattr(heuristic, '__name__', 'custom')}"
                self.checks.append(CheckResult.fail(name, " ".join(e.message.split())))

    # -- 7. rules ------------------------------------------------------------

    def rules(self, rules: Any, declared: dict[str, Any]) -> tuple[dict[str, str], ...]:
        """Compute the verified facts and evaluate `rules` on them."""
        from computewatch.rules import evaluate  # noqa: PLC0415
        from computewatch.verification._facts import compute_facts  # noqa: PLC0415

        verified = not any(c.status.value == "fail" for c in self.checks)
        try:
            facts = compute_facts(
                self.reader,
                self.calls,
                verified=verified,
                declared=declared,
                samples=self.fact_samples,
                classifiers=rules.make_classifiers(),  # declared by the rule file
                scores=self.scores,
            )
        except ComputeWatchError as e:
            self.checks.append(CheckResult.fail("facts", " ".join(e.message.split())))
            return tuple({"id": r.id, "kind": r.kind.value, "status": "error"} for r in rules.rules)
        report = evaluate(rules, facts)
        return tuple(
            {"id": r.rule_id, "kind": str(r.kind.value), "status": str(r.status.value)}
            for r in report.results
        )
