"""The chip's side of a location check: sign a landmark's nonce with the log state.

A landmark (a Verifier server at a known place) sends a fresh nonce; the
chip answers with a signature, by its secure element's identity key, over
the nonce, the landmark's id, its burned-in serial and its log state (size
and head, as its secure element counts them). Only the chip holds that key,
so a host that relays, delays or replays cannot produce an answer to a new
nonce; the round trip the landmark times then bounds how far the chip is
(see ``docs/location.md``).

`LocationAnswerer` works over the `SecureElement` interface only: it never
reads the Chip's private state. `LocationAnswerer.open` opens a chip folder's
secure element by its URI (the file backend tolerates a second handle beside
a running `Chip`; a TPM backend wants the firmware to answer itself) and
takes the log state from the element's ``log`` counter and the verified log
file.

Example:
    >>> import tempfile
    >>> from computewatch.chip import LocationAnswerer, LogState, provision_secure_element
    >>> from computewatch.chip import genesis_hash
    >>> se = provision_secure_element(f"file:{tempfile.mkdtemp()}/se", "CW-DOC-7")
    >>> answerer = LocationAnswerer(se, LogState(0, genesis_hash("CW-DOC-7")))
    >>> env = answerer.answer("lm-fra", bytes(16))
    >>> env.payload_type
    'application/vnd.computewatch.location-answer+json'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from computewatch._validate import int_in_range, text
from computewatch.chip._backends import open_secure_element
from computewatch.chip._chiplog import genesis_hash, read_chip_log, verify_chip_log
from computewatch.crypto import Digest, canonical_json, sign_envelope
from computewatch.errors import FormatError, ParameterError

if TYPE_CHECKING:
    import os

    from computewatch.chip._interface import ChipSerial, SecureElement
    from computewatch.crypto import Envelope, VerifyingKey

__all__ = [
    "LOCATION_ANSWER_TYPE",
    "LocationAnswerer",
    "LogState",
    "check_landmark_id",
    "check_location_nonce",
]

#: DSSE payload type of a chip's signed answer to a landmark's nonce.
LOCATION_ANSWER_TYPE = "application/vnd.computewatch.location-answer+json"
#: The ``type`` field inside the answer payload (a second domain separator).
ANSWER_VERSION = "cw-location-answer/v1"
#: Landmark nonces are exactly this many random bytes.
NONCE_BYTES = 16
_MAX_LANDMARK_ID = 64
_CHIP_FILE = "chip.json"
_LOG_FILE = "nvram.log"
_MAX_CHIP_FILE = 4096


def check_landmark_id(value: object) -> str:
    """Return ``value`` if it is a landmark id (1-64 printable characters), else raise."""
    return text("landmark id", value, max_len=_MAX_LANDMARK_ID)


def check_location_nonce(value: object) -> bytes:
    """Return ``value`` if it is a 16-byte nonce, else raise `ParameterError`."""
    if not isinstance(value, bytes) or len(value) != NONCE_BYTES:
        msg = f"location nonce: expected {NONCE_BYTES} bytes, got {value!r:.48}"
        raise ParameterError(msg)
    return value


@dataclass(frozen=True, slots=True)
class LogState:
    """The chip's log state an answer binds: entries so far and the head hash."""

    size: int
    head: Digest

    def __post_init__(self) -> None:
        """Check the size (`ParameterError`)."""
        int_in_range("log size", self.size, 0, 1 << 40)

    def to_json(self) -> dict[str, Any]:
        """As JSON values."""
        return {"size": self.size, "head": str(self.head)}


def _se_uri(path: Path) -> str:
    """The secure element URI a chip folder names (bounded read)."""
    uri: object = None
    try:
        with (path / _CHIP_FILE).open("rb") as f:
            raw = f.read(_MAX_CHIP_FILE + 1)
        uri = json.loads(raw).get("se_uri") if len(raw) <= _MAX_CHIP_FILE else None
    except (OSError, ValueError, AttributeError) as e:
        msg = f"chip folder {path}: no readable {_CHIP_FILE} ({e.__class__.__name__})"
        raise FormatError(msg) from e
    if not isinstance(uri, str):
        msg = f"chip folder {path}: {_CHIP_FILE} names no secure element URI"
        raise FormatError(msg)
    return uri


class LocationAnswerer:
    """Answers landmark nonces with the secure element's identity key."""

    def __init__(self, se: SecureElement, log_state: LogState) -> None:
        """Answer for the chip whose secure element is ``se``, binding ``log_state``."""
        self._se = se
        self._log_state = log_state
        self._log_path: Path | None = None

    @classmethod
    def open(cls, folder: str | os.PathLike[str]) -> LocationAnswerer:
        """Open a provisioned chip folder's secure element and verified log state.

        Raises:
            FormatError: The folder holds no readable chip.
            IntegrityError: The log does not verify against the element.
        """
        path = Path(folder)
        se = open_secure_element(_se_uri(path))
        answerer = cls(se, LogState(0, genesis_hash(se.serial)))
        answerer._log_path = path / _LOG_FILE
        answerer.refresh()
        return answerer

    @property
    def serial(self) -> ChipSerial:
        """The burned-in serial the answers name."""
        return self._se.serial

    @property
    def public_key(self) -> VerifyingKey:
        """The identity key the answers are signed with."""
        return self._se.public_key

    @property
    def log_state(self) -> LogState:
        """The log state the next answers bind."""
        return self._log_state

    def refresh(self) -> LogState:
        """Re-read the log state from the secure element's counter and the verified log."""
        if self._log_path is None:
            return self._log_state
        size = self._se.read_counter("log")
        envelopes = read_chip_log(self._log_path) if self._log_path.exists() else []
        entries = verify_chip_log(
            envelopes, self._se.public_key, self._se.serial, expected_size=size
        )
        head = entries[-1].entry_hash if entries else genesis_hash(self._se.serial)
        self._log_state = LogState(len(entries), head)
        return self._log_state

    def answer(self, landmark: str, nonce: bytes) -> Envelope:
        """Sign the answer to ``nonce`` from ``landmark``: serial, nonce and log state."""
        doc = {
            "type": ANSWER_VERSION,
            "serial": str(self._se.serial),
            "landmark": check_landmark_id(landmark),
            "nonce": check_location_nonce(nonce).hex(),
            "log": self._log_state.to_json(),
        }
        return sign_envelope(LOCATION_ANSWER_TYPE, canonical_json(doc), [self._se])

    def close(self) -> None:
        """Release the secure element."""
        self._se.close()

    def __enter__(self) -> Self:
        """Use as a context manager that closes the element."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the element."""
        self.close()
