"""Shared test configuration.

Hypothesis runs a bounded number of examples so the default suite stays fast;
set HYPOTHESIS_PROFILE=thorough for a deeper run. The replay zygote a test
process started is stopped when its session ends, before the coverage data
of the processes it spawned is combined (a zygote stopped later, at exit,
would save its measurement too late to count).

Under ``--dist loadgroup`` the tests of each folder in `ONE_WORKER` run on
one xdist worker, so a session fixture they share (the demo's run) is made
once in the suite, and so do the tests of each file that defines a
module-scoped fixture (an honest training run, a live server): split over
two workers, each would make it again. This is a scheduler of our own because xdist's
``xdist_group`` mark does nothing under pytest 9: xdist tags the group onto
``item._nodeid``, which pytest 9 no longer reads.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from computewatch.verification._zygote import ForkServer

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Folders whose tests run on one xdist worker (they share a session fixture).
ONE_WORKER = ("tests/demo/",)


@functools.cache
def _files_with_module_fixtures() -> frozenset[str]:
    """Test files (node-id form) that define a module-scoped fixture."""
    root = Path(__file__).resolve().parent.parent
    return frozenset(
        str(path.relative_to(root))
        for path in (root / "tests").rglob("test_*.py")
        if 'scope="module"' in path.read_text(encoding="utf-8")
    )


settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile(
    "thorough", max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session", autouse=True)
def _stop_the_replay_zygote() -> Iterator[None]:
    yield
    ForkServer.close_shared()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """Under ``--dist loadgroup``: xdist's group scheduling, each `ONE_WORKER` folder one group,
    and each file with a module-scoped fixture one group."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling  # noqa: PLC0415 - only under xdist

    class FolderGroups(LoadGroupScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            folder = next((f for f in ONE_WORKER if nodeid.startswith(f)), None)
            file = nodeid.split("::", 1)[0]
            if folder is None and file in _files_with_module_fixtures():
                folder = file
            return folder or super()._split_scope(nodeid)

    return FolderGroups(config, log)
