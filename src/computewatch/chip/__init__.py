"""The chip firmware emulator (paper §4).

A chip holds its secrets in a secure element (`file:` sealed files or a
`tpm:` TPM 2.0), boots only chipmaker-signed firmware with anti-rollback,
snapshots its weight shard as a Poisson process of rate `f` per chip-day
drawn from the secure element's own randomness, and appends signed,
hash-chained entries to a firmware-only log that any inspector can verify.

Example::

    >>> from computewatch.crypto import SigningKey
    >>> from computewatch.chip import Chip, sign_firmware
    >>> maker = SigningKey.generate()
    >>> chip = Chip.provision("chips/CW-DOC-1", "CW-DOC-1", maker.verifying_key)
    >>> image = sign_firmware(name="cw", version=1, code=b"...", chipmaker=maker)
    >>> chip.boot(image).version
    1
    >>> [entry.kind for entry in chip.log_entries()]
    ['firmware-update', 'boot']
    >>> chip.close()
"""

from computewatch.chip._attested import (
    ATTESTATION_PAYLOAD_TYPE,
    attested_log_size,
    check_attestation,
    verify_attested_log,
)
from computewatch.chip._backends import (
    SCHEMES,
    open_secure_element,
    provision_secure_element,
)
from computewatch.chip._chip import (
    Chip,
    ChipError,
    SnapshotRecord,
    SnapshotStalledError,
)
from computewatch.chip._chiplog import (
    ENTRY_KINDS,
    LOG_ENTRY_PAYLOAD_TYPE,
    LogEntry,
    LogFullError,
    genesis_hash,
    read_chip_log,
    verify_chip_log,
)
from computewatch.chip._clock import Clock, ManualClock, SystemClock
from computewatch.chip._eat import EAR_PROFILE, EAT_PROFILE, appraise, eat_claims, ueid_of
from computewatch.chip._file_se import FileSecureElement
from computewatch.chip._firmware import (
    FIRMWARE_PAYLOAD_TYPE,
    LOGGING_FEATURE,
    FirmwareImage,
    sign_firmware,
    verify_firmware,
)
from computewatch.chip._interface import ChipSerial, ChipTime, SecureElement
from computewatch.chip._location import (
    LOCATION_ANSWER_TYPE,
    LocationAnswerer,
    LogState,
    check_landmark_id,
    check_location_nonce,
)
from computewatch.chip._receipt_log import ReceiptLog
from computewatch.chip._scheduler import SECONDS_PER_DAY, PoissonScheduler

__all__ = [
    "ATTESTATION_PAYLOAD_TYPE",
    "EAR_PROFILE",
    "EAT_PROFILE",
    "ENTRY_KINDS",
    "FIRMWARE_PAYLOAD_TYPE",
    "LOCATION_ANSWER_TYPE",
    "LOGGING_FEATURE",
    "LOG_ENTRY_PAYLOAD_TYPE",
    "SCHEMES",
    "SECONDS_PER_DAY",
    "Chip",
    "ChipError",
    "ChipSerial",
    "ChipTime",
    "Clock",
    "FileSecureElement",
    "FirmwareImage",
    "LocationAnswerer",
    "LogEntry",
    "LogFullError",
    "LogState",
    "ManualClock",
    "PoissonScheduler",
    "ReceiptLog",
    "SecureElement",
    "SnapshotRecord",
    "SnapshotStalledError",
    "SystemClock",
    "appraise",
    "attested_log_size",
    "check_attestation",
    "check_landmark_id",
    "check_location_nonce",
    "eat_claims",
    "genesis_hash",
    "open_secure_element",
    "provision_secure_element",
    "read_chip_log",
    "sign_firmware",
    "ueid_of",
    "verify_attested_log",
    "verify_chip_log",
    "verify_firmware",
]
