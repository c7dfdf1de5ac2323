"""Fixtures: honest runs on a chip (from `computewatch.testing`), and a spoofer's toolkit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from computewatch.testing import TinyRun, maker_key, tiny_spec, train_on_chip

if TYPE_CHECKING:
    from pathlib import Path

    from computewatch.datacenter import BatchFn, InitFn

#: An honest run: its folder, its chip, and the Verifier's view of the chip.
Run = TinyRun

_MAKER_SEED = b"verification-tests-maker-seed-00"


def run_on_chip(
    tmp_path: Path,
    name: str = "run",
    serial: str = "CW-V-0",
    *,
    init: InitFn | None = None,
    batches: BatchFn | None = None,
    **spec: Any,
) -> Run:
    """A 24-step tiny run on a fresh chip; `init`/`batches` are the spoofer's seams."""
    return train_on_chip(
        tmp_path,
        name,
        serial,
        spec=tiny_spec(**{"steps": 24, "checkpoint_every": 6, **spec}),
        maker=maker_key(_MAKER_SEED),
        init=init,
        batches=batches,
    )


@pytest.fixture
def honest(tmp_path: Path) -> Run:
    return run_on_chip(tmp_path)
