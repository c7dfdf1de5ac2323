"""The attestation carries EAT claims (RFC 9711 names), and the appraisal is an EAR."""

from __future__ import annotations

from typing import TYPE_CHECKING

from computewatch.chip import (
    EAR_PROFILE,
    Chip,
    appraise,
    check_attestation,
    ueid_of,
)

if TYPE_CHECKING:
    from computewatch.crypto import Envelope

NONCE = bytes(range(16))


def _claims(chip: Chip, nonce: bytes = NONCE) -> dict[str, object]:
    claims = check_attestation(chip.attest(nonce), chip.public_key, str(chip.serial), nonce)
    eat = claims["eat"]
    assert isinstance(eat, dict)
    return eat


def _reference(firmware: dict[int, Envelope], chip: Chip) -> dict[str, int]:
    image = chip.boot(firmware[2])
    return {str(image.code_hash): image.version}


def test_claims_use_the_eat_names_gpu_attestation_uses(
    chip: Chip, firmware: dict[int, Envelope]
) -> None:
    reference = _reference(firmware, chip)
    eat = _claims(chip)
    assert {
        "eat_nonce",
        "ueid",
        "oemid",
        "hwmodel",
        "swname",
        "swversion",
        "measurements",
        "secboot",
        "dbgstat",
        "bootcount",
        "submods",
    } <= set(eat)
    assert eat["eat_nonce"] == NONCE.hex()
    assert eat["ueid"] == ueid_of(chip.public_key.raw)
    assert eat["measurements"] == [["application/vnd.computewatch.firmware+json", *reference]]
    submods = eat["submods"]
    assert isinstance(submods, dict)
    assert set(submods["secure-element"]) == {"log", "counters", "chip_time"}


def test_an_honest_chip_is_affirmed_with_one_result_per_check(
    chip: Chip, firmware: dict[int, Envelope]
) -> None:
    reference = _reference(firmware, chip)
    ear = appraise(
        _claims(chip), nonce=NONCE, ueid=ueid_of(chip.public_key.raw), firmware=reference
    )
    assert ear["eat_profile"] == EAR_PROFILE
    result = ear["submods"]["chip"]
    assert result["ear.status"] == "affirming"
    assert set(result["x-computewatch-checks"].values()) == {"success"}
    assert set(result["ear.trustworthiness-vector"]) == {
        "instance-identity",
        "hardware",
        "executables",
        "configuration",
    }


def test_each_failed_check_is_named_and_contraindicates(
    chip: Chip, firmware: dict[int, Envelope]
) -> None:
    reference = _reference(firmware, chip)
    ueid = ueid_of(chip.public_key.raw)
    stale = appraise(_claims(chip), nonce=bytes(16), ueid=ueid, firmware=reference)
    checks = stale["submods"]["chip"]["x-computewatch-checks"]
    assert [k for k, v in checks.items() if v == "failure"] == ["nonce-match"]
    assert stale["submods"]["chip"]["ear.status"] == "contraindicated"
    unknown = appraise(_claims(chip), nonce=NONCE, ueid=ueid, firmware={})
    checks = unknown["submods"]["chip"]["x-computewatch-checks"]
    assert checks["measres"] == "failure"
    old = appraise(_claims(chip), nonce=NONCE, ueid=ueid, firmware=reference, min_version=3)
    assert old["submods"]["chip"]["ear.trustworthiness-vector"]["executables"] >= 96
    chip.break_seal()
    opened = appraise(_claims(chip), nonce=NONCE, ueid=ueid, firmware=reference)
    checks = opened["submods"]["chip"]["x-computewatch-checks"]
    assert [k for k, v in checks.items() if v == "failure"] == ["tamper-seal-intact"]
