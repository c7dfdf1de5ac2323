"""Random step audits answered by the Prover's challenge (ADR 0037).

After the transcript is committed, the Verifier draws single steps over the
whole run with its own randomness: each step independently with
probability `c` (the policy's ``audit_fraction``), so ``m`` substituted
steps are missed with probability exactly ``(1 - c) ** m`` wherever they
sit. For an audited step ``s`` that is not a checkpoint, the Prover answers
the challenge with the state (weights and optimizer state, checkpoint
format) after ``s`` steps, regenerated from its own checkpoints
(`computewatch.verification.answer_challenge`). That answer is hostile
input: copied into the Verifier's store under a size cap, parsed by the
checkpoint loader (no code runs), its header and size checked and its state
digest compared with the per-step commitment after ``s`` steps. Only then
does a replay worker start from it and replay the one step ``s``; its
state after the step must be the commitment after ``s + 1`` steps
(exact replay, ADR 0033).

Example::

    >>> import numpy as np
    >>> draw_audit_steps(10, 1.0, np.random.default_rng(0), skip={3})
    [0, 1, 2, 4, 5, 6, 7, 8, 9]
    >>> miss_probability(0.05, 4) == 0.95**4
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from computewatch.errors import ComputeWatchError, FormatError, IntegrityError
from computewatch.verification._results import CheckResult

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence
    from pathlib import Path

    import numpy as np

    from computewatch.verification._prover import Task
    from computewatch.verification._reader import TranscriptReader
    from computewatch.verification._store import ArtifactStore

__all__ = [
    "MAX_CHALLENGED",
    "Challenge",
    "StepAudits",
    "ask_states",
    "check_answer",
    "draw_audit_steps",
    "folder_challenge",
    "miss_probability",
]

#: The Prover is called with the challenged steps and returns, per step, a
#: path to its state after that many steps (a checkpoint file).
Challenge = Callable[[tuple[int, ...]], Mapping[int, "str | Path"]]

#: Most steps challenged in one verification (a bound on the Prover's answer).
MAX_CHALLENGED = 10_000
_MAX_STATE_BYTES = 1 << 40


def miss_probability(fraction: float, substituted: int) -> float:
    """The chance that no audit lands on any of `substituted` steps: ``(1 - c) ** m``."""
    return float((1.0 - fraction) ** substituted)


def draw_audit_steps(
    total: int, fraction: float, rng: np.random.Generator, skip: Collection[int] = ()
) -> list[int]:
    """Each of the `total` steps with probability `fraction`, minus those in `skip`.

    `skip` holds the steps the Verifier replays anyway (its segments). One
    draw per step is made whatever `skip` holds, so the draw does not
    depend on the plan.
    """
    draws = rng.random(total)
    return [s for s in range(total) if draws[s] < fraction and s not in skip]


def check_answer(
    reader: TranscriptReader, store: ArtifactStore, step: int, path: object, committed: str
) -> str:
    """Store the Prover's state after `step` steps; its store key if it is the committed one.

    Raises:
        FormatError: not a path, too large, not a checkpoint of this run.
        IntegrityError: its state digest differs from the commitment.
    """
    from pathlib import Path  # noqa: PLC0415

    from computewatch.datacenter import load_checkpoint, shard_range, state_digest  # noqa: PLC0415

    where = f"the Prover's state after {step} steps"
    if not isinstance(path, str | Path):
        msg = f"{where}: expected a file path, got {type(path).__name__}"
        raise FormatError(msg)
    key = store.put_file(path, _MAX_STATE_BYTES, where)  # copied once, checked from the copy
    try:
        ckpt = load_checkpoint(store.path(key))
    except ComputeWatchError as e:
        msg = f"{where}: {' '.join(e.message.split())[:200]}"
        raise FormatError(msg) from e
    numel = reader.layout.numel
    if ckpt.step != step or ckpt.weights.numel() != numel:
        msg = (
            f"{where}: its header says step {ckpt.step} and {ckpt.weights.numel()} weights, "
            f"expected step {step} and {numel}"
        )
        raise FormatError(msg)
    if ckpt.layout_digest != str(reader.layout.digest()):
        msg = f"{where}: its layout digest differs from the manifest's"
        raise FormatError(msg)
    world = reader.world_size
    slices = [shard_range(r, world, numel) for r in range(world)]
    got = str(state_digest(ckpt.weights, ckpt.optimizer_state, slices))
    if got != committed:
        msg = (
            f"{where}: state digest {got[:19]}… differs from the one committed after "
            f"step {step - 1} ({committed[:19]}…)"
        )
        raise IntegrityError(msg)
    return key


def ask_states(  # noqa: PLR0917 - one challenge round's parts
    session: Any,
    challenge: Challenge | None,
    asked: tuple[int, ...],
    name: str,
    each: Callable[[int], str],
    checks: list[CheckResult],
) -> dict[int, str]:
    """Challenge the Prover for its state after each of `asked` steps; the checked answers.

    Returns the store keys by step count of the answers that are committed
    states. A refusal, or an answer of the wrong type, is a failed check
    named `name`; a missing, malformed or tampered state a failed check
    named ``each(step)``. They go into `checks`.
    """
    from computewatch.verification._bisect import committed_states  # noqa: PLC0415

    if challenge is None:
        checks.append(
            CheckResult.fail(name, f"{len(asked)} states needed, but no Prover to challenge")
        )
        return {}
    try:
        got: object = challenge(asked)  # the Prover's code: typed by what it returns
        if isinstance(got, Mapping):
            got = {k: got[k] for k in asked if k in got}  # read once, only what was asked
    except Exception as e:  # noqa: BLE001 - the Prover's side failed: its refusal
        detail = " ".join(str(e).split())[:200]
        checks.append(
            CheckResult.fail(name, f"the Prover did not answer ({type(e).__name__}: {detail})")
        )
        return {}
    if not isinstance(got, dict):
        checks.append(
            CheckResult.fail(name, f"the Prover's answer is a {type(got).__name__}, not a mapping")
        )
        return {}
    committed = committed_states(session.reader)
    keys: dict[int, str] = {}
    for step in asked:
        if step not in got:
            checks.append(CheckResult.fail(each(step), "the Prover gave no state for this step"))
            continue
        try:
            keys[step] = check_answer(
                session.reader, session.calls.store, step, got[step], committed[step]
            )
        except IntegrityError as e:
            checks.append(CheckResult.fail(each(step), f"tampered: {e.message}"))
        except ComputeWatchError as e:
            checks.append(CheckResult.fail(each(step), f"malformed: {e.message}"))
    return keys


class StepAudits:
    """One verification's step audits: drawn, challenged, checked, then judged.

    `plan` returns the one-step replay tasks (their cost counted in the
    session's replayed steps, within ``max_compute``); `judge` turns their
    answers into ``audit:<step>`` checks and one ``audits`` summary.
    """

    def __init__(self, session: Any) -> None:
        """Audits for `session` (a `_session.Session`)."""
        self.session = session
        self.steps: list[int] = []
        self.checks: list[CheckResult] = []

    def plan(self, challenge: Challenge | None) -> list[Task]:
        """Draw the steps, challenge the Prover, check its answers; the replays to run."""
        from computewatch.verification._bisect import committed_states  # noqa: PLC0415
        from computewatch.verification._prover import Task  # noqa: PLC0415

        s = self.session
        fraction = float(s.policy.audit_fraction)
        if fraction <= 0:
            return []
        committed = committed_states(s.reader)
        if not committed:
            s.checks.append(
                CheckResult.fail("audits", "the transcript has no per-step commitments to audit")
            )
            return []
        if not s._tolerance().exact:  # noqa: SLF001 - the session's own tolerance
            s.checks.append(
                CheckResult.skipped("audits", "step audits need exact replay (pinned runs)")
            )
            return []
        covered = {t for a, b, _ in s._seg_plan for t in range(a, b)}  # noqa: SLF001
        drawn = draw_audit_steps(s.reader.steps, fraction, s.rng, covered)
        room = s._left()  # noqa: SLF001 - replay steps left under max_compute
        keep = max(0, int(min(room, len(drawn))))
        fits = (
            drawn
            if keep == len(drawn)
            else sorted(int(t) for t in s.rng.choice(drawn, size=keep, replace=False))
        )
        if len(fits) < len(drawn):
            self.checks.append(
                CheckResult.skipped(
                    "audits:cap", f"{len(drawn) - len(fits)} drawn steps do not fit max_compute"
                )
            )
        ckpts = set(s.reader.checkpoint_steps)
        asked = tuple(t for t in fits if t not in ckpts)[:MAX_CHALLENGED]
        answers = (
            ask_states(s, challenge, asked, "audits", lambda t: f"audit:{t}", self.checks)
            if asked
            else {}
        )
        tasks = []
        for step in fits:
            if step not in ckpts:
                if step not in answers:
                    continue  # a failed check already says why
                s.calls.stage_state(step, answers[step])
            tasks.append(Task("replay", step, step + 1, frozenset({step + 1})))
            self.steps.append(step)
            s.replayed += 1
        return tasks

    def judge(self, results: Sequence[dict[str, Any] | str]) -> list[CheckResult]:
        """Each audited step's replay against the commitment after it, and a summary."""
        from computewatch.verification._bisect import committed_states  # noqa: PLC0415

        committed = committed_states(self.session.reader)
        out = list(self.checks)
        bad = 0
        for step, result in zip(self.steps, results, strict=True):
            name = f"audit:{step}"
            if isinstance(result, str):
                out.append(CheckResult.fail(name, result))
                bad += 1
                continue
            states = result.get("states", [])
            want = committed.get(step + 1)
            if len(states) == 1 and states[0] == want:
                continue  # passing audits are summarised, not listed
            bad += 1
            out.append(
                CheckResult.fail(
                    name,
                    f"one-step replay of step {step} from the committed state differs from "
                    f"the state committed after it: first bad step {step}",
                    step=step,
                )
            )
        if self.steps or self.checks:
            refused = any(c.status.value == "fail" for c in self.checks)
            summary = CheckResult.ok if not bad and not refused else CheckResult.fail
            fraction = self.session.policy.audit_fraction
            out.append(
                summary(
                    "audits",
                    f"{len(self.steps)} steps audited at fraction {fraction:g}, {bad} differ",
                    audited=len(self.steps),
                    fraction=fraction,
                )
            )
        return out


def folder_challenge(folder: str | Path) -> Challenge:
    """A `Challenge` served from a folder: the answer for step count s is ``state-<s>.safetensors``.

    What a cluster uses when the Prover answers out of band (``cluster
    verify --answers``); a missing file is a step the Prover did not answer.
    """
    from pathlib import Path  # noqa: PLC0415

    root = Path(folder)

    def challenge(steps: tuple[int, ...]) -> dict[int, str | Path]:
        out: dict[int, str | Path] = {}
        for step in steps:
            path = root / f"state-{step}.safetensors"
            if path.is_file():
                out[step] = path
        return out

    return challenge
