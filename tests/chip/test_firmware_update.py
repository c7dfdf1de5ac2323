"""Firmware updates and restored chip state, on the file and the TPM secure elements.

A signed image with a huge version is refused before any anti-rollback
counter moves (no hours-long climb, no chip left between versions); a
normal update raises the floor in one step where the element can. A Prover
who restores an older copy of the chip's log finds the secure element's own
counters ahead of it (the TPM keeps them whatever is done to the host's files).
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pytest
import torch

from computewatch.chip import (
    Chip,
    ManualClock,
    check_attestation,
    read_chip_log,
    sign_firmware,
    verify_attested_log,
)
from computewatch.crypto import Envelope, SigningKey, json_digest
from computewatch.errors import IntegrityError
from tests.chip.swtpm import require_tpm_stack, swtpm_server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

NONCE = bytes(range(32))


@pytest.fixture(params=["file", pytest.param("tpm", marks=pytest.mark.slow)])
def se_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    if request.param == "file":
        yield None
        return
    require_tpm_stack()
    with swtpm_server(tmp_path / "tpm") as (host, port):
        yield f"tpm:{host}:{port}"


def _image(maker: SigningKey, version: int) -> Envelope:
    return sign_firmware(name="cw-fw", version=version, code=b"v%d" % version, chipmaker=maker)


def test_a_huge_version_is_refused_before_the_counter_moves(
    tmp_path: Path, maker: SigningKey, se_uri: str | None
) -> None:
    chip = Chip.provision(tmp_path / "c", "CW-FW", maker.verifying_key, se_uri=se_uri)
    with chip:
        chip.boot(_image(maker, 2))
        with pytest.raises(IntegrityError, match="jumps more than 1024 versions"):
            chip.boot(_image(maker, 1_000_000))
        assert chip.attest(NONCE) is not None
        chip.boot(_image(maker, 2))  # its own firmware still boots
    with Chip.open(tmp_path / "c", read_only=True) as chip:
        claims = check_attestation(chip.attest(NONCE), chip.public_key, "CW-FW", NONCE)
    assert claims["counters"]["firmware"] == 2


def test_an_update_raises_the_floor_at_once_and_rollback_stays_refused(
    tmp_path: Path, maker: SigningKey, se_uri: str | None
) -> None:
    jump = 1000 if se_uri is None else 120  # the TPM climbs one NV_Increment per version
    with Chip.provision(tmp_path / "c", "CW-FW", maker.verifying_key, se_uri=se_uri) as chip:
        chip.boot(_image(maker, 1))
        chip.boot(_image(maker, 1 + jump))
        with pytest.raises(IntegrityError, match="rollback refused"):
            chip.boot(_image(maker, jump))
        kinds = [e.kind for e in chip.log_entries()]
    assert kinds == ["firmware-update", "boot", "firmware-update", "boot"]
    with Chip.open(tmp_path / "c", read_only=True) as chip:
        claims = check_attestation(chip.attest(NONCE), chip.public_key, "CW-FW", NONCE)
    assert claims["counters"]["firmware"] == 1 + jump


@pytest.mark.parametrize("restore", ["log", "folder"])
def test_restoring_an_older_copy_of_the_chip_is_caught_by_the_elements_count(
    tmp_path: Path, maker: SigningKey, se_uri: str | None, restore: str
) -> None:
    """The log alone restored: caught on both; the whole folder: the TPM's counters still hold."""
    if restore == "folder" and se_uri is None:
        pytest.skip(
            "the file element is host storage: a whole-folder restore is caught against the "
            "registry's high-water mark (tests/supplychain/test_service.py, rolled-back-state)"
        )
    clock = ManualClock()
    folder = tmp_path / "c"
    with Chip.provision(folder, "CW-RB", maker.verifying_key, se_uri=se_uri, clock=clock) as chip:
        chip.boot(_image(maker, 1))
        chip.precommit("run", json_digest({"m": 1}))
        chip.register("run", {"w": torch.zeros(4)}, json_digest({"c": 1}), tmp_path / "o")
    shutil.copytree(folder, tmp_path / "before")  # the Prover's backup
    with Chip.open(folder, clock=clock) as chip:
        chip.boot(_image(maker, 1))
        chip.register("run", {"w": torch.zeros(4)}, json_digest({"c": 1}), tmp_path / "o")
        clock.advance(5)
        chip.snapshot_now(0)  # the snapshot the Prover wants gone
    if restore == "log":
        shutil.copy2(tmp_path / "before" / "nvram.log", folder / "nvram.log")
    else:
        shutil.rmtree(folder)
        shutil.copytree(tmp_path / "before", folder)
    with Chip.open(folder, read_only=True) as chip:
        claims = check_attestation(chip.attest(NONCE), chip.public_key, "CW-RB", NONCE)
        key = chip.public_key
    with pytest.raises(IntegrityError, match="truncated"):
        verify_attested_log(read_chip_log(folder / "nvram.log"), claims, key, "CW-RB")


def test_boot_and_precommit_wait_for_the_pending_snapshot(
    tmp_path: Path, maker: SigningKey, se_uri: str | None
) -> None:
    """The firmware worker and the caller never use the element at once (a TPM has one context)."""
    clock = ManualClock()
    image = sign_firmware(
        name="cw-fw", version=1, code=b"v1", chipmaker=maker, snapshot_rate_per_day=5e6
    )
    folder = tmp_path / "c"
    with Chip.provision(folder, "CW-RACE", maker.verifying_key, se_uri=se_uri, clock=clock) as chip:
        chip.boot(image)
        for i in range(4):
            chip.register("run", {"w": torch.zeros(1 << 16)}, json_digest({"c": 1}), tmp_path / "o")
            clock.advance(86_400.0)
            assert chip.on_step(i)  # a snapshot is now on the firmware worker
            chip.boot(image)  # waits for it before touching the element
            chip.precommit(f"run-{i}", json_digest({"m": i}))
        kinds = [e.kind for e in chip.log_entries()]
    assert kinds.count("snapshot") == 4
    assert kinds.count("boot") == 5
