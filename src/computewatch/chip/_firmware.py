"""Signed firmware images and the chip's boot policy (paper §4, footnote 6).

Chips boot only firmware signed by their chipmaker, and chipmakers sign only
firmware that logs. Anti-rollback: the secure element's monotonic
``firmware`` counter holds the lowest version the chip will still boot; an
update raises it, so an older (logging-free) image is refused forever after.

A firmware image is a DSSE envelope of type `FIRMWARE_PAYLOAD_TYPE` whose
payload is the canonical JSON of `FirmwareImage`.

Example::

    >>> from computewatch.crypto import SigningKey
    >>> from computewatch.chip import sign_firmware, verify_firmware
    >>> maker = SigningKey.from_seed(bytes(32))
    >>> env = sign_firmware(name="cw-fw", version=3, code=b"firmware bytes", chipmaker=maker)
    >>> verify_firmware(env, maker.verifying_key).version
    3
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from computewatch._validate import int_in_range, positive, text
from computewatch.chip._receipt_log import ReceiptLog
from computewatch.crypto import (
    Digest,
    Envelope,
    canonical_json,
    hash_bytes,
    sign_envelope,
    verify_envelope,
)
from computewatch.errors import FormatError, IntegrityError, ParameterError

if TYPE_CHECKING:
    from computewatch.crypto import Signer, VerifyingKey

__all__ = [
    "FIRMWARE_PAYLOAD_TYPE",
    "LOGGING_FEATURE",
    "FirmwareImage",
    "sign_firmware",
    "verify_firmware",
]

FIRMWARE_PAYLOAD_TYPE = "application/vnd.computewatch.firmware+json"
#: The feature every firmware a chipmaker signs must declare (§4).
LOGGING_FEATURE = "weight-snapshot-logging"
_CODE_DOMAIN = b"computewatch/firmware-code/v1\x00"
_MAX_VERSION = 1_000_000
_MAX_NAME = 64
_MAX_PER_KSTEP = 1000.0  # one snapshot a step on average at most
_MAX_RATE = 86_400.0 * 60  # one a second at most; the stress tests use one a minute


@dataclass(frozen=True, slots=True)
class FirmwareImage:
    """What a firmware image declares.

    Attributes:
        name: the firmware's name.
        version: a positive integer; higher is newer.
        code_hash: hash of the firmware's code.
        features: capabilities; chipmakers sign only images with
            `LOGGING_FEATURE`.
        snapshot_rate_per_day: `f`, the expected weight snapshots per
            chip-day, as the Verifier set it from Equation 1 (§4: as low as
            the sampling plan allows). Part of the signed image, so the
            Prover cannot change it.
        snapshot_rate_per_kstep: `g`, expected snapshots per 1,000
            optimizer steps the firmware counts, on top of `f`: the part of
            the schedule no clock can slow (0 for a time-only schedule).
        receipt_log: the Verifier-trusted log that must acknowledge every
            snapshot (`ReceiptLog`); the firmware then trains on only after
            holding a receipt it checked itself for the entry it just wrote.
            Signed into the image, so the host cannot name another log.
    """

    name: str
    version: int
    code_hash: Digest
    features: tuple[str, ...]
    snapshot_rate_per_day: float = 0.1
    snapshot_rate_per_kstep: float = 0.0
    receipt_log: ReceiptLog | None = None

    def __post_init__(self) -> None:
        """Validate fields."""
        try:
            text("firmware name", self.name, max_len=_MAX_NAME)
            int_in_range("firmware version", self.version, 1, _MAX_VERSION)
            rate = positive("firmware snapshot rate", self.snapshot_rate_per_day)
        except ParameterError as e:
            raise FormatError(e.message) from e
        per_kstep: object = self.snapshot_rate_per_kstep
        if (
            not isinstance(per_kstep, (int, float))
            or isinstance(per_kstep, bool)
            or not 0.0 <= per_kstep <= _MAX_PER_KSTEP
        ):
            msg = (
                f"firmware snapshot rate per 1,000 steps: expected 0-{_MAX_PER_KSTEP:g}, "
                f"got {per_kstep!r}"
            )
            raise FormatError(msg)
        if rate > _MAX_RATE:
            msg = f"firmware snapshot rate: expected at most {_MAX_RATE:g} per day, got {rate!r}"
            raise FormatError(msg)

    def to_json(self) -> dict[str, Any]:
        """The JSON object that is signed (``receipt_log`` only where the image names one)."""
        doc: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "code_hash": str(self.code_hash),
            "features": list(self.features),
            "snapshot_rate_per_day": self.snapshot_rate_per_day,
            "snapshot_rate_per_kstep": self.snapshot_rate_per_kstep,
        }
        if self.receipt_log is not None:
            doc["receipt_log"] = self.receipt_log.to_json()
        return doc

    @classmethod
    def from_json(cls, doc: object) -> FirmwareImage:
        """Parse and validate the signed JSON object."""
        if not isinstance(doc, dict):
            msg = "firmware image: expected a JSON object"
            raise FormatError(msg)
        try:
            features = doc["features"]
            if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
                msg = "firmware image features: expected a list of strings"
                raise FormatError(msg)
            return cls(
                name=str(doc["name"]),
                version=doc["version"],
                code_hash=Digest.parse(doc["code_hash"]),
                features=tuple(features),
                snapshot_rate_per_day=doc["snapshot_rate_per_day"],
                snapshot_rate_per_kstep=doc.get("snapshot_rate_per_kstep", 0.0),
                receipt_log=(
                    None
                    if doc.get("receipt_log") is None
                    else ReceiptLog.from_json(doc["receipt_log"])
                ),
            )
        except KeyError as e:
            msg = f"firmware image: missing field {e.args[0]!r}"
            raise FormatError(msg) from e


def sign_firmware(
    *,
    name: str,
    version: int,
    code: bytes,
    chipmaker: Signer,
    snapshot_rate_per_day: float = 0.1,
    snapshot_rate_per_kstep: float = 0.0,
    features: tuple[str, ...] = (),
    receipt_log: ReceiptLog | None = None,
) -> Envelope:
    """Build and sign a firmware image for ``code`` (the chipmaker's act).

    `LOGGING_FEATURE` is always included: the chipmaker signs only firmware
    that logs.
    """
    image = FirmwareImage(
        name=name,
        version=version,
        code_hash=hash_bytes(code, domain=_CODE_DOMAIN),
        features=tuple(sorted({LOGGING_FEATURE, *features})),
        snapshot_rate_per_day=snapshot_rate_per_day,
        snapshot_rate_per_kstep=snapshot_rate_per_kstep,
        receipt_log=receipt_log,
    )
    return sign_envelope(FIRMWARE_PAYLOAD_TYPE, canonical_json(image.to_json()), [chipmaker])


def verify_firmware(envelope: Envelope | bytes | str, chipmaker: VerifyingKey) -> FirmwareImage:
    """Verify a firmware envelope against the chipmaker's key and parse it.

    Raises:
        IntegrityError: not signed by the chipmaker, or not logging firmware.
        FormatError: malformed envelope or image.
    """
    verified = verify_envelope(
        envelope, {chipmaker.key_id: chipmaker}, payload_type=FIRMWARE_PAYLOAD_TYPE
    )
    try:
        image = FirmwareImage.from_json(json.loads(verified.payload))
    except ValueError as e:
        msg = f"firmware image: payload is not JSON ({e})"
        raise FormatError(msg) from e
    if LOGGING_FEATURE not in image.features:
        msg = f"firmware {image.name} v{image.version}: lacks {LOGGING_FEATURE!r}; refusing to boot"
        raise IntegrityError(msg)
    return image
