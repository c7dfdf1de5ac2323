"""Shared test configuration.

Hypothesis runs a bounded number of examples so the default suite stays fast;
set HYPOTHESIS_PROFILE=thorough for a deeper run. The replay zygote a test
process started is stopped when its session ends, before the coverage data
of the processes it spawned is combined (a zygote stopped later, at exit,
would save its measurement too late to count).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

from computewatch.verification._zygote import ForkServer

if TYPE_CHECKING:
    from collections.abc import Iterator

settings.register_profile("default", max_examples=100, deadline=None)
settings.register_profile(
    "thorough", max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session", autouse=True)
def _stop_the_replay_zygote() -> Iterator[None]:
    yield
    ForkServer.close_shared()
