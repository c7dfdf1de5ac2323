"""A chip's persistent state: its folder and the sealed firmware state (paper §4).

A chip folder holds ``chip.json`` (the burned-in serial and the secure
element's URI) and ``nvram.log``; the firmware's own state (the sealed-in
chipmaker key, the log capacity, the tamper seal and the booted firmware)
is a JSON blob sealed in the secure element. This module makes (the fab's
act) and opens such folders and reads and writes the sealed state; what the
firmware *does* with them is `computewatch.chip._chip.Chip`.

Example::

    >>> import tempfile, pathlib
    >>> from computewatch.crypto import SigningKey
    >>> with tempfile.TemporaryDirectory() as d:
    ...     se = create_chip_folder(pathlib.Path(d), "CW-F-1", SigningKey.generate().verifying_key)
    ...     print(se.serial, read_state(se)["intact"])
    ...     se.close()
    CW-F-1 True
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

from computewatch._validate import int_in_range
from computewatch.chip._backends import open_secure_element, provision_secure_element
from computewatch.crypto import canonical_json
from computewatch.errors import FormatError, IntegrityError

if TYPE_CHECKING:
    from pathlib import Path

    from computewatch.chip._interface import SecureElement
    from computewatch.crypto import VerifyingKey

__all__ = [
    "CHIP_FILE",
    "DEFAULT_CAPACITY",
    "LOG_FILE",
    "create_chip_folder",
    "open_chip_folder",
    "read_state",
    "write_state",
]

CHIP_FILE = "chip.json"
LOG_FILE = "nvram.log"
DEFAULT_CAPACITY = 1_000_000


def create_chip_folder(
    path: Path,
    serial: str,
    chipmaker: VerifyingKey,
    *,
    se_uri: str | None = None,
    capacity: int = DEFAULT_CAPACITY,
) -> SecureElement:
    """Burn the serial, seal the chipmaker key and an intact seal; the open element."""
    if (path / CHIP_FILE).exists():
        msg = f"chip folder {path}: already holds a chip; refusing to overwrite it"
        raise FormatError(msg)
    int_in_range("log capacity", capacity, 1, 1 << 40)
    path.mkdir(parents=True, exist_ok=True)
    uri = se_uri or f"file:{(path / 'se').resolve()}"
    se = provision_secure_element(uri, serial)
    state = {
        "maker": chipmaker.raw.hex(),
        "cap": capacity,
        "seal": secrets.token_hex(8),
        "intact": True,
        "fw": None,
    }
    write_state(se, state)
    (path / CHIP_FILE).write_text(json.dumps({"serial": serial, "se_uri": uri}) + "\n")
    return se


def open_chip_folder(path: Path) -> SecureElement:
    """Open the folder's secure element; its burned-in serial must be ``chip.json``'s.

    Raises:
        FormatError: no readable ``chip.json``.
        IntegrityError: ``chip.json`` names another serial than the element's.
    """
    try:
        doc = json.loads((path / CHIP_FILE).read_text())
        uri = doc["se_uri"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        msg = f"chip folder {path}: no readable {CHIP_FILE} ({e.__class__.__name__})"
        raise FormatError(msg) from e
    se = open_secure_element(str(uri))
    if doc.get("serial") != se.serial:
        msg = (
            f"chip folder {path}: {CHIP_FILE} names serial {doc.get('serial')!r} but the "
            f"secure element's burned-in serial is {se.serial!r}"
        )
        se.close()
        raise IntegrityError(msg)
    return se


def read_state(se: SecureElement) -> dict[str, Any]:
    """The sealed firmware state.

    Raises:
        IntegrityError: not JSON, or missing the sealed chipmaker key.
    """
    try:
        state = json.loads(se.read_state())
    except ValueError as e:
        msg = f"chip S/N {se.serial}: sealed firmware state is not JSON"
        raise IntegrityError(msg) from e
    if not isinstance(state, dict) or "maker" not in state:
        msg = f"chip S/N {se.serial}: sealed firmware state is missing fields"
        raise IntegrityError(msg)
    return state


def write_state(se: SecureElement, state: dict[str, Any]) -> None:
    """Seal `state` (canonical JSON) in the element."""
    se.write_state(canonical_json(state))
