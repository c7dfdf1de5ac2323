"""Boundary windows and one-step snapshot linkage from committed states (ADR 0044)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from computewatch.datacenter import DataSchedule, TranscriptPaths, load_checkpoint, save_checkpoint
from computewatch.errors import FormatError
from computewatch.testing import train_on_chip
from computewatch.verification import (
    CheckStatus,
    VerificationPolicy,
    answer_challenge,
    prover_challenge,
    verify_transcript,
)
from computewatch.verification._windows import clip_windows

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from computewatch.testing import TinyRun

#: Windows of 2 steps at each end, snapshots from one step before: no audits.
WINDOWS: dict[str, Any] = {"budget": 0.05, "boundary_steps": 2, "linkage_steps": 1}


def _verify(run: TinyRun, challenge: Any, seed: int = 3, **policy: Any) -> Any:
    return verify_transcript(
        run.run_dir,
        TranscriptPaths(run.run_dir).report,
        run.evidence(),
        VerificationPolicy(**policy),
        np.random.default_rng(seed),
        challenge=challenge,
    )


def _cheat_at(bad: set[int]) -> Any:
    """A run seam that trains on the next points at the `bad` steps (its commitments follow)."""

    def indices(schedule: DataSchedule, step: int) -> list[int]:
        idx = schedule.indices(step)
        return [(i + 1) % schedule.dataset_size for i in idx] if step in bad else idx

    def seam(schedule: DataSchedule, step: int, rank: int, world: int) -> list[int]:
        idx = indices(schedule, step)
        per = len(idx) // world
        return idx[rank * per : (rank + 1) * per]

    return seam, indices


def _own_trajectory(run: TinyRun, tmp: Path, indices: Any) -> Any:
    from computewatch.attacks import trained_batches  # noqa: PLC0415

    return prover_challenge(run.run_dir, tmp, batches=trained_batches(indices))


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    return train_on_chip(tmp_path_factory.mktemp("honest"), serial="CW-WI-0")


def _segments(verdict: Any) -> dict[str, Any]:
    return {c.name: c for c in verdict.checks if c.name.startswith("segment:")}


def test_clip_windows_cuts_the_ends_and_merges_when_they_meet() -> None:
    assert clip_windows([(0, 6), (6, 12), (12, 18)], 2) == [(16, 18), (0, 2)]
    assert clip_windows([(0, 6), (6, 12)], 100) == [(6, 12), (0, 6)]
    assert clip_windows([(0, 24)], 4) == [(20, 24), (0, 4)]
    assert clip_windows([(0, 24)], 12) == [(0, 24)]
    assert clip_windows([(0, 24)], None) == [(0, 24)]


@pytest.mark.parametrize("seed", range(3))
def test_an_honest_run_passes_its_windows_and_one_step_linkage(
    honest: TinyRun, tmp_path: Path, seed: int
) -> None:
    verdict = _verify(honest, prover_challenge(honest.run_dir, tmp_path), seed, **WINDOWS)
    assert verdict.passed, [str(c) for c in verdict.failures]
    segments = _segments(verdict)
    assert set(segments) == {"segment:22-24", "segment:0-2"}
    assert "every state equals its commitment" in segments["segment:0-2"].detail
    replays = [
        c for c in verdict.checks if c.name.startswith("snapshot:") and c.metrics.get("step")
    ]
    assert replays, "the tiny run's chip logs snapshots; some are drawn"
    for c in replays:  # each from the committed state one step before, or its checkpoint
        assert c.metrics["step"] - c.metrics["base"] <= 1
    # 2 + 2 boundary steps and at most one step per drawn snapshot
    assert verdict.replayed_steps <= 4 + len(replays)


def test_without_a_prover_the_whole_boundary_intervals_are_replayed(honest: TinyRun) -> None:
    verdict = _verify(honest, None, **WINDOWS)
    assert verdict.passed, [str(c) for c in verdict.failures]
    assert set(_segments(verdict)) == {"segment:18-24", "segment:0-6"}
    snaps = [c for c in verdict.checks if c.name.startswith("snapshot:") and c.metrics.get("step")]
    assert all(c.metrics["base"] % 6 == 0 for c in snaps)


@pytest.mark.parametrize(("bad", "window"), [(23, "segment:22-24"), (1, "segment:0-2")])
def test_a_lie_in_a_boundary_window_is_caught_and_named(
    tmp_path: Path, bad: int, window: str
) -> None:
    seam, indices = _cheat_at({bad})
    run = train_on_chip(tmp_path / "run", serial=f"CW-WI-{bad}", batches=seam)
    challenge = _own_trajectory(run, tmp_path / "answers", indices)
    verdict = _verify(run, challenge, max_replayed_snapshots=0, **WINDOWS)
    assert not verdict.passed
    failed = {c.name: c for c in verdict.failures}
    assert window in failed, [str(c) for c in verdict.failures]
    assert f"first bad step {bad}" in failed[window].detail


def test_a_snapshot_replay_from_a_committed_state_catches_the_step_before_it(
    tmp_path: Path,
) -> None:
    # every step off the windows lies: a drawn snapshot fails exactly when the
    # one step it replays (from the committed state before it) is a lie
    lies = set(range(2, 22))
    seam, indices = _cheat_at(lies)
    run = train_on_chip(tmp_path / "run", serial="CW-WI-S", batches=seam)
    challenge = _own_trajectory(run, tmp_path / "answers", indices)
    verdict = _verify(run, challenge, max_replayed_snapshots=10_000, **WINDOWS)
    replays = {
        c.metrics["step"]: c
        for c in verdict.checks
        if c.name.startswith("snapshot:") and "step" in c.metrics
    }
    caught = [s for s in replays if s - 1 in lies and s % 6]
    assert caught, sorted(replays)
    for step, check in replays.items():
        assert (check.status is CheckStatus.FAIL) == (step in caught), str(check)
    assert all("first bad step" in replays[s].detail for s in caught)
    assert {c.name for c in verdict.failures if c.name.startswith("segment:")} == set()


class _Refuses:
    """A Prover that answers, but not with the committed state, for the steps it is asked."""

    def __init__(self, run: TinyRun, tmp: Path, kind: str) -> None:
        self.run, self.tmp, self.kind = run, tmp, kind

    def __call__(self, steps: tuple[int, ...]) -> Mapping[int, Any]:
        answers: dict[int, Any] = dict(answer_challenge(self.run.run_dir, steps, self.tmp))
        if self.kind == "missing":
            return {}
        for path in answers.values():  # the right step and format, other weights
            ckpt = load_checkpoint(path)
            save_checkpoint(
                path,
                step=ckpt.step,
                weights=ckpt.weights + 1e-3,
                optimizer_state=ckpt.optimizer_state,
                param_groups=ckpt.param_groups,
                rng_state=ckpt.rng_state,
                layout_digest=ckpt.layout_digest,
            )
        return answers


@pytest.mark.parametrize("kind", ["missing", "tampered"])
def test_a_start_state_the_prover_will_not_give_fails_the_check(
    honest: TinyRun, tmp_path: Path, kind: str
) -> None:
    verdict = _verify(honest, _Refuses(honest, tmp_path, kind), **WINDOWS)
    assert not verdict.passed
    failed = {c.name: c.detail for c in verdict.failures}
    assert "segment:22" in failed, failed  # the last window's start, after 22 steps
    assert any(n.startswith("snapshot-start:") for n in failed), failed
    want = "gave no state" if kind == "missing" else "tampered: "
    assert all(want in d and "\n" not in d for d in failed.values()), failed
    # a window or replay without its start state is not run
    assert "segment:22-24" not in {c.name for c in verdict.checks}


def test_answers_in_one_pass_equal_answers_one_by_one(honest: TinyRun, tmp_path: Path) -> None:
    together = answer_challenge(honest.run_dir, [7, 9, 10, 13], tmp_path / "together")
    for step in (7, 9, 10, 13):
        alone = answer_challenge(honest.run_dir, [step], tmp_path / f"alone-{step}")[step]
        a, b = load_checkpoint(together[step]), load_checkpoint(alone)
        assert a.step == b.step == step
        assert bool((a.weights == b.weights).all())
        for name, tensor in a.optimizer_state.items():
            assert bool((tensor == b.optimizer_state[name]).all()), name


def test_the_policy_reads_back_its_windows_and_refuses_bad_ones() -> None:
    p = VerificationPolicy(boundary_steps=4, linkage_steps=1)
    assert VerificationPolicy.from_dict(p.to_dict()) == p
    q = VerificationPolicy.from_dict({"boundary_steps": None, "linkage_steps": None})
    assert q.boundary_steps is None
    assert q.linkage_steps is None
    for field in ("boundary_steps", "linkage_steps"):
        with pytest.raises(FormatError, match=field):
            VerificationPolicy.from_dict({field: 0})
        with pytest.raises(FormatError, match=field):
            VerificationPolicy.from_dict({field: 1.5})


def test_a_window_checks_every_commitment_it_crosses(honest: TinyRun, tmp_path: Path) -> None:
    # the final weights are right, but the commitment after 23 steps is not the
    # state the steps give: a recommitted, self-consistent transcript, caught
    import json  # noqa: PLC0415
    import shutil  # noqa: PLC0415

    from computewatch.attacks import recommit  # noqa: PLC0415
    from computewatch.testing import TinyRun as Run  # noqa: PLC0415

    run = Run(tmp_path / "run", honest.chip, honest.maker)
    shutil.copytree(honest.run_dir, run.run_dir)
    metrics = TranscriptPaths(run.run_dir).metrics
    records = [json.loads(x) for x in metrics.read_text().splitlines()]
    records[22]["state"] = records[21]["state"]  # the state after 23 steps
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    recommit(run.run_dir)
    verdict = _verify(run, prover_challenge(run.run_dir, tmp_path / "a"), **WINDOWS)
    failed = {c.name: c.detail for c in verdict.failures}
    assert "segment:22-24" in failed, failed
    assert "first bad step 22" in failed["segment:22-24"]
    assert "step-commitments" not in failed  # the checkpoints' own hashes still match
