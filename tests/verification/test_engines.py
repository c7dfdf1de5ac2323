"""Replays fan out: the same transcript and seed give the same verdict on every engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from computewatch.datacenter import TranscriptPaths
from computewatch.verification import (
    Engine,
    LocalPool,
    RayPool,
    UnsafeInProcessEngine,
    VerificationPolicy,
    WorkerLimits,
    verify_transcript,
)
from computewatch.verification._prover import Task, pack
from computewatch.verification._sandbox_launch import ZYGOTE_ENV
from tests.verification.conftest import Run, run_on_chip

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow

POLICY = VerificationPolicy(budget=0.5, max_replayed_snapshots=3)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_on_chip(tmp_path_factory.mktemp("engines"))


def _verdict(run: Run, engine: Engine) -> dict[str, Any]:
    verdict = verify_transcript(
        run.run_dir,
        TranscriptPaths(run.run_dir).report,
        run.evidence(),
        POLICY,
        np.random.default_rng(21),
        engine=engine,
    )
    assert verdict.passed, verdict.failures
    return verdict.to_json()


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    ray = pytest.importorskip("ray")
    ctx = ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield str(ctx.address_info["address"])
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def one_worker(run: Run) -> dict[str, Any]:
    return _verdict(run, LocalPool(workers=1, limits=WorkerLimits(strict=True)))


def test_two_local_workers_give_the_verdict_of_one(run: Run, one_worker: dict[str, Any]) -> None:
    assert _verdict(run, LocalPool(workers=2, limits=WorkerLimits(strict=True))) == one_worker


def test_execd_workers_give_the_verdict_of_forked_ones(
    run: Run, one_worker: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # as root the default forks workers from the preloaded zygote (ADR 0027)
    monkeypatch.setenv(ZYGOTE_ENV, "0")
    assert _verdict(run, LocalPool(workers=1, limits=WorkerLimits(strict=True))) == one_worker


def test_the_in_process_baseline_gives_the_same_verdict(
    run: Run, one_worker: dict[str, Any]
) -> None:
    assert _verdict(run, UnsafeInProcessEngine()) == one_worker


def test_a_local_ray_cluster_gives_the_same_verdict(
    run: Run, one_worker: dict[str, Any], ray_head: str
) -> None:
    engine = RayPool(ray_head, limits=WorkerLimits(strict=True), workers=2)
    assert _verdict(run, engine) == one_worker


def test_no_job_holds_a_checkpoint_it_is_checked_against() -> None:
    tasks = [
        Task("replay", 0, 6, frozenset({6}), target=6),
        Task("replay", 6, 12, frozenset({12}), target=12),
        Task("replay", 12, 18, frozenset({18}), target=18),
        Task("loss", 12, 12),
        Task("benchmark", 18, 18),
        Task("replay", 12, 15, frozenset({15})),
    ]
    for parts in (1, 2, 4):
        groups = pack(tasks, parts)
        assert sorted(i for g in groups for i in g) == list(range(len(tasks)))
        for group in groups:
            starts = {tasks[i].start for i in group}
            targets = {tasks[i].target for i in group} - {None}
            assert not starts & targets, (parts, group)
