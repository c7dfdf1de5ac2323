"""bf16 autocast runs are recorded and replayed; the precision is the run's, in its manifest.

A lab's loop under ``torch.autocast`` (bfloat16) records a transcript whose
configuration declares ``autocast``; the Verifier's replays run under the
same autocast and, on this pinned CPU environment, equal it bit for bit. A
run that trains under autocast without declaring it (or declares it and
trains in float32) is not reproduced: its replay fails.
"""

from __future__ import annotations

import json
import runpy
from typing import TYPE_CHECKING, Any

import pytest
import torch

from computewatch.datacenter import (
    Trainer,
    TranscriptPaths,
    autocast_for,
    describe_optimizer,
)
from computewatch.errors import FormatError
from tests.datacenter.test_monitor import CONFIG, LOOP, lab_loop

if TYPE_CHECKING:
    from pathlib import Path

    from computewatch.testing import TinyRun
from computewatch.verification import CheckStatus

#: The configuration a replay reads: the lab's with its optimizer recorded.
REPLAY = dict(
    CONFIG,
    optimizer=describe_optimizer(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-3)),
)


def _loop(workdir: Path, *, declared: str | None, trained: bool) -> TinyRun:
    """The lab's loop; `trained`: its forward runs under bf16 autocast."""
    config = dict(CONFIG, autocast=declared) if declared else dict(CONFIG)
    return lab_loop(workdir, config=config, bf16=trained)


def _failed(verdict: Any) -> set[str]:
    return {c.name.split(":")[0] for c in verdict.checks if c.status is CheckStatus.FAIL}


def test_a_bf16_run_is_recorded_and_replayed_bitwise(tmp_path: Path) -> None:
    run = _loop(tmp_path, declared="bfloat16", trained=True)
    manifest = json.loads(TranscriptPaths(run.run_dir).manifest.read_text())
    assert manifest["config"]["autocast"] == "bfloat16"
    verdict = run.verify(budget=1.0, exact=True)
    assert verdict.passed, _failed(verdict)


@pytest.mark.parametrize(("declared", "trained"), [(None, True), ("bfloat16", False)])
def test_a_precision_the_manifest_does_not_state_is_not_reproduced(
    tmp_path: Path, *, declared: str | None, trained: bool
) -> None:
    verdict = _loop(tmp_path, declared=declared, trained=trained).verify(budget=1.0, exact=True)
    assert not verdict.passed
    assert _failed(verdict) & {"segment", "step-commitments", "snapshot"}


def test_the_replay_computes_in_the_declared_precision() -> None:
    program = runpy.run_path(str(LOOP))["PROGRAM"]
    batch = torch.stack([program.data_point(CONFIG, i) for i in range(4)])
    full = Trainer(program, dict(REPLAY), init_seed=1)
    half = Trainer(program, dict(REPLAY, autocast="bfloat16"), init_seed=1)
    with torch.no_grad():
        a, b = full.loss(batch), half.loss(batch)
    assert a.dtype == b.dtype == torch.float32  # autocast keeps the loss in float32
    assert a.item() != b.item()  # ...computed from a bfloat16 forward


@pytest.mark.parametrize("value", ["float16", "fp8", 16, ["bfloat16"]])
def test_an_undeclarable_precision_is_refused(value: object) -> None:
    program = runpy.run_path(str(LOOP))["PROGRAM"]
    with pytest.raises(FormatError, match="config field 'autocast'"):
        Trainer(program, dict(REPLAY, autocast=value), init_seed=1)
    with pytest.raises(FormatError, match="autocast"), autocast_for({"autocast": value}):
        pass
