"""An FSDP2 run (one process per chip, gloo, CPU mesh) recorded by `FSDP2Monitor`.

The run is `examples/train_fsdp2.py`; a one-process replay by computewatch's
`Trainer` over the manifest's shard map must land on every chip's logged ω
and on every checkpoint, bitwise (ADR 0039).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from computewatch.crypto import shard_hash
from computewatch.datacenter import TranscriptPaths
from computewatch.verification._reader import TranscriptReader
from computewatch.verification._replay import Replayer

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
import train_fsdp2  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=[2, 4], ids=["2-chips", "4-chips"])
def honest(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One honest run per chip count, shared by the tests (each chip also saves its
    ``to_local()`` hashes); a spawned FSDP2 run is the costly part."""
    out = tmp_path_factory.mktemp(f"fsdp2-{request.param}")
    train_fsdp2.run(out, chips=request.param, steps=8, batch=8, every=4, local_hashes=True)
    return out


def _chips(out: Path) -> int:
    return len(list(out.glob("chip-*.pub")))


def test_a_one_process_replay_is_bitwise_equal_to_the_fsdp2_run(honest: Path) -> None:
    chips = _chips(honest)
    run = honest / "run"
    reader = TranscriptReader.open(run, TranscriptPaths(run).report)
    manifest = json.loads(TranscriptPaths(run).manifest.read_text())
    assert manifest["sharding"]["kind"] == "fsdp2"
    lengths = [[p["length"] for p in c["shards"]] for c in manifest["sharding"]["chips"]]
    if chips == 4:
        assert 0 in lengths[-1]  # torch.chunk leaves the last chip empty rows
    replayer = Replayer(reader)
    replayer.trainer.load(reader.checkpoint(0))
    by_step: dict[int, list[tuple[str, int]]] = {}
    for claim in reader.claims:
        by_step.setdefault(claim.step, []).append((claim.serial, claim.seq))
    assert by_step
    for step in range(reader.steps):
        replayer.trainer.step(step, replayer.batch(step))
        for serial, seq in by_step.get(step + 1, []):
            omega = reader.omega(serial, seq)
            assert torch.equal(reader.omega_of(replayer.trainer.flat, serial), omega)
            assert str(shard_hash(omega)) == next(
                str(c.h) for c in reader.claims if c.seq == seq and c.serial == serial
            )
        if step + 1 in reader.checkpoint_steps:
            assert torch.equal(replayer.trainer.flat, reader.checkpoint(step + 1).weights)


def _verify(out: Path, chips: int) -> tuple[bool, set[str]]:
    import numpy as np  # noqa: PLC0415

    from computewatch.chip import read_chip_log  # noqa: PLC0415
    from computewatch.crypto import VerifyingKey  # noqa: PLC0415
    from computewatch.verification import (  # noqa: PLC0415
        CheckStatus,
        ChipEvidence,
        VerificationPolicy,
        verify_transcript,
    )

    evidence = [
        ChipEvidence.from_log(
            f"CW-F-{r}",
            VerifyingKey.load(out / f"chip-{r}.pub"),
            read_chip_log(out / f"chip-{r}" / "nvram.log"),
        )
        for r in range(chips)
    ]
    run = out / "run"
    verdict = verify_transcript(
        run,
        TranscriptPaths(run).report,
        evidence,
        VerificationPolicy(budget=1.0, exact=True),
        np.random.default_rng(1),
    )
    failed = {c.name.split(":")[0] for c in verdict.checks if c.status is CheckStatus.FAIL}
    return verdict.passed, failed


def test_the_fsdp2_run_passes_and_a_substituted_batch_fails(honest: Path, tmp_path: Path) -> None:
    chips = _chips(honest)
    passed, failed = _verify(honest, chips)
    assert passed, failed
    train_fsdp2.run(tmp_path / "swap", chips=chips, steps=8, batch=8, every=4, swap_step=5)
    passed, failed = _verify(tmp_path / "swap", chips)
    assert not passed
    assert failed & {"segment", "snapshot"}


def test_a_relabelled_checkpoint_of_an_fsdp2_run_fails(honest: Path, tmp_path: Path) -> None:
    import shutil  # noqa: PLC0415

    from computewatch.attacks._harness import recommit  # noqa: PLC0415
    from computewatch.datacenter import load_checkpoint, save_checkpoint  # noqa: PLC0415

    shutil.copytree(honest, tmp_path / "bad")
    paths = TranscriptPaths(tmp_path / "bad" / "run")
    early = load_checkpoint(paths.checkpoint(4))
    save_checkpoint(  # checkpoint 4's state, labelled step 8
        paths.checkpoint(8),
        step=8,
        weights=early.weights,
        optimizer_state=early.optimizer_state,
        param_groups=early.param_groups,
        rng_state=early.rng_state,
        layout_digest=early.layout_digest,
    )
    recommit(tmp_path / "bad" / "run")
    passed, failed = _verify(tmp_path / "bad", _chips(honest))
    assert not passed
    assert failed & {"segment", "snapshot", "step-commitments"}


def test_each_chips_logged_omega_hashes_are_its_to_local_shards(honest: Path) -> None:
    from computewatch.chip import read_chip_log  # noqa: PLC0415
    from computewatch.crypto import VerifyingKey  # noqa: PLC0415
    from computewatch.verification import ChipEvidence  # noqa: PLC0415

    seen = 0
    for r in range(_chips(honest)):
        local = json.loads((honest / f"chip-{r}-local.json").read_text())
        key = VerifyingKey.load(honest / f"chip-{r}.pub")
        log = read_chip_log(honest / f"chip-{r}" / "nvram.log")
        for entry in ChipEvidence.from_log(f"CW-F-{r}", key, log).entries:
            if entry.kind == "snapshot":
                assert entry.body["h"] == local[int(entry.body["step"]) - 1]
                seen += 1
    assert seen
