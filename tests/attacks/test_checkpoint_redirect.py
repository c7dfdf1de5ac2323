"""checkpoint-redirect: an index naming a file outside the transcript is refused, never read.

On the code before the typed index, the even trial (a byte-identical copy
outside the folder) passed verification and the odd one (``/dev/zero``)
made the Verifier hash forever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest

from computewatch.attacks import Attempt, CheckpointRedirect, attack_names, run_on_chip
from computewatch.verification import VerificationPolicy

if TYPE_CHECKING:
    from pathlib import Path

    from computewatch.attacks import HonestRun


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> HonestRun:
    return run_on_chip(tmp_path_factory.mktemp("redirect"), name="base", serial="CW-RD-0")


@pytest.mark.parametrize("trial", [0, 1], ids=["copy-outside", "dev-zero"])
def test_a_redirected_checkpoint_is_a_malformed_transcript(
    base: HonestRun, tmp_path: Path, trial: int
) -> None:
    attack = CheckpointRedirect()
    attempt = attack.create(tmp_path, trial, [base])
    found = attack.detect(attempt, VerificationPolicy(), np.random.default_rng(0))
    assert found.detected
    assert found.checks == ("transcript",)
    assert "checkpoints/index.jsonl line 1: field 'file'" in found.detail


def test_the_honest_base_passes_and_the_attack_is_in_the_corpus(base: HonestRun) -> None:
    found = CheckpointRedirect().detect(
        Attempt(run=base), VerificationPolicy(), np.random.default_rng(0)
    )
    assert not found.detected, found.detail
    assert "checkpoint-redirect" in attack_names()
