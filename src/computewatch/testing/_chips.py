"""Provisioned, booted chips for tests and examples (private)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from computewatch.chip import Chip, sign_firmware
from computewatch.crypto import SigningKey

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["FAST_RATE", "MAKER_SEED", "maker_key", "provisioned_chip"]

#: Snapshots every few steps in real time (the tiny runs' steps take milliseconds).
FAST_RATE = 86_400.0 * 40

#: The seed of the default test chipmaker (fixed: tests are reproducible).
MAKER_SEED = b"computewatch-testing-maker-seed!"


def maker_key(seed: bytes = MAKER_SEED) -> SigningKey:
    """A chipmaker key from a fixed 32-byte seed."""
    return SigningKey.from_seed(seed)


def provisioned_chip(
    folder: Path,
    serial: str,
    *,
    maker: SigningKey | None = None,
    snapshot_rate_per_day: float = FAST_RATE,
    firmware_version: int = 1,
) -> Chip:
    """Manufacture a chip in `folder` and boot signed firmware on it (the caller closes it).

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     with provisioned_chip(pathlib.Path(d) / "chip", "CW-T-1") as chip:
    ...         print(chip.serial, len(chip.log_entries()) > 0)
    CW-T-1 True
    """
    key = maker or maker_key()
    chip = Chip.provision(folder, serial, key.verifying_key)
    try:
        chip.boot(
            sign_firmware(
                name="fw",
                version=firmware_version,
                code=b"fw",
                chipmaker=key,
                snapshot_rate_per_day=snapshot_rate_per_day,
            )
        )
    except BaseException:
        chip.close()
        raise
    return chip
