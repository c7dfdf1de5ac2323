"""The demo's tiny-scale run, once per test worker, and the supply-chain PostgreSQL fixture.

`computewatch demo --scale tiny --json` runs once (a session fixture); the
demo's own test checks what it printed and wrote, and the CLI audit test
audits the same submissions again. One xdist worker runs every test of this
folder (``ONE_WORKER`` in tests/conftest.py), so the demo runs once in the
suite.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from computewatch.cli import main
from tests.supplychain.conftest import postgres

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DemoRun", "demo_run", "postgres"]


@dataclass(frozen=True)
class DemoRun:
    """What ``computewatch demo --scale tiny --json`` returned, printed and wrote."""

    code: int
    doc: dict[str, Any]
    out: Path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    out = tmp_path_factory.mktemp("demo") / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["demo", "--out", str(out), "--json", "--scale", "tiny"])
    return DemoRun(code, json.loads(printed.getvalue()), out)
