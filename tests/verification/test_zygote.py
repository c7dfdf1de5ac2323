"""Replay workers forked from the preloaded zygote: the same sandbox, the same answers.

As root, `run_isolated` forks the replay worker from a zygote that has
imported torch once (`_zygote`, ADR 0027) instead of exec'ing a fresh
interpreter under ``unshare(1)``; every other command is exec'd. These tests
check that the fork gets every isolation layer, checked from the inside,
that it is opt-out, and that a zygote that dies fails its jobs and is
replaced, never leaving a job to pass.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from typing import TYPE_CHECKING

import pytest

from computewatch.verification import SandboxFailed, run_isolated
from computewatch.verification._sandbox_launch import ZYGOTE_ENV
from computewatch.verification._zygote import WORKER_MODULE, ForkServer

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the zygote forks workers as root only")


def _job(tmp_path: Path, doc: dict[str, object]) -> Path:
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "job.json").write_text(json.dumps(doc))
    return folder


def _worker(folder: Path) -> list[str]:
    return [sys.executable, "-m", WORKER_MODULE, str(folder), "{}"]


def test_the_worker_is_forked_with_every_layer_checked_from_inside(tmp_path: Path) -> None:
    folder = _job(tmp_path, {"close": True})
    out, isolation = run_isolated(_worker(folder), inputs=[folder], timeout=300)
    assert out == b""
    assert isolation.method.startswith("zygote")
    assert isolation.complete, isolation.reasons


def test_other_commands_and_the_opt_out_are_execd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _job(tmp_path, {"close": True})
    _, isolation = run_isolated([sys.executable, "-c", "pass"], inputs=[folder], timeout=300)
    assert isolation.method == "unshare(1) as root"
    monkeypatch.setenv(ZYGOTE_ENV, "0")
    _, isolation = run_isolated(_worker(folder), inputs=[folder], timeout=300)
    assert isolation.method == "unshare(1) as root"
    assert isolation.complete


def test_a_failing_fork_reports_its_status_and_stderr(tmp_path: Path) -> None:
    folder = _job(tmp_path, {"format": "not a job"})  # no tasks: the worker raises
    with pytest.raises(SandboxFailed, match=r"expected exit status 0, got status 1.*KeyError"):
        run_isolated(_worker(folder), inputs=[folder], timeout=300)


def test_a_dead_zygote_is_replaced(tmp_path: Path) -> None:
    first = ForkServer.shared(os.environ)
    assert first is not None
    os.kill(first.pid, signal.SIGKILL)
    for _ in range(600):  # bounded wait for its reader to see the socket close
        if first.dead:
            break
        time.sleep(0.05)
    assert first.dead
    folder = _job(tmp_path, {"close": True})
    _, isolation = run_isolated(_worker(folder), inputs=[folder], timeout=300)
    assert isolation.method.startswith("zygote")
    second = ForkServer.shared(os.environ)
    assert second is not None
    assert second is not first
