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

from typing import TYPE_CHECKING

from computewatch._lazy import lazy_exports

if TYPE_CHECKING:
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

if not TYPE_CHECKING:  # every name is imported from its module on first use (ADR 0043)
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "ATTESTATION_PAYLOAD_TYPE": "computewatch.chip._attested",
            "attested_log_size": "computewatch.chip._attested",
            "check_attestation": "computewatch.chip._attested",
            "verify_attested_log": "computewatch.chip._attested",
            "SCHEMES": "computewatch.chip._backends",
            "open_secure_element": "computewatch.chip._backends",
            "provision_secure_element": "computewatch.chip._backends",
            "Chip": "computewatch.chip._chip",
            "ChipError": "computewatch.chip._chip",
            "SnapshotRecord": "computewatch.chip._chip",
            "SnapshotStalledError": "computewatch.chip._chip",
            "ENTRY_KINDS": "computewatch.chip._chiplog",
            "LOG_ENTRY_PAYLOAD_TYPE": "computewatch.chip._chiplog",
            "LogEntry": "computewatch.chip._chiplog",
            "LogFullError": "computewatch.chip._chiplog",
            "genesis_hash": "computewatch.chip._chiplog",
            "read_chip_log": "computewatch.chip._chiplog",
            "verify_chip_log": "computewatch.chip._chiplog",
            "Clock": "computewatch.chip._clock",
            "ManualClock": "computewatch.chip._clock",
            "SystemClock": "computewatch.chip._clock",
            "EAR_PROFILE": "computewatch.chip._eat",
            "EAT_PROFILE": "computewatch.chip._eat",
            "appraise": "computewatch.chip._eat",
            "eat_claims": "computewatch.chip._eat",
            "ueid_of": "computewatch.chip._eat",
            "FileSecureElement": "computewatch.chip._file_se",
            "FIRMWARE_PAYLOAD_TYPE": "computewatch.chip._firmware",
            "LOGGING_FEATURE": "computewatch.chip._firmware",
            "FirmwareImage": "computewatch.chip._firmware",
            "sign_firmware": "computewatch.chip._firmware",
            "verify_firmware": "computewatch.chip._firmware",
            "ChipSerial": "computewatch.chip._interface",
            "ChipTime": "computewatch.chip._interface",
            "SecureElement": "computewatch.chip._interface",
            "LOCATION_ANSWER_TYPE": "computewatch.chip._location",
            "LocationAnswerer": "computewatch.chip._location",
            "LogState": "computewatch.chip._location",
            "check_landmark_id": "computewatch.chip._location",
            "check_location_nonce": "computewatch.chip._location",
            "ReceiptLog": "computewatch.chip._receipt_log",
            "SECONDS_PER_DAY": "computewatch.chip._scheduler",
            "PoissonScheduler": "computewatch.chip._scheduler",
        },
    )

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
