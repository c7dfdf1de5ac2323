"""The chip's attestation as EAT claims, and the Verifier's appraisal as an EAR.

`eat_claims` writes what `Chip.attest` signs in the claim names of the
Entity Attestation Token (RFC 9711) as GPU attestation uses them today
(NVIDIA's attestation SDK and NRAS report ``eat_nonce``, ``ueid``,
``hwmodel``, ``oemid``, ``secboot``, ``dbgstat``, ``measres`` and
``submods``), so a real attestation back end can stand in for the
emulator's. `appraise` is the Verifier's side: one claim per check, rolled
up into an EAT Attestation Result (EAR, draft-ietf-rats-ear) with an
AR4SI-style trustworthiness vector and an ``ear.status``. See ADR 0020.

Example::

    >>> ear = appraise({"eat_nonce": "00"}, nonce=bytes(1), ueid="x", firmware={})
    >>> ear["submods"]["chip"]["ear.status"]
    'contraindicated'
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from computewatch.chip._interface import SecureElement

__all__ = ["EAR_PROFILE", "EAT_PROFILE", "appraise", "attestation_claims", "eat_claims", "ueid_of"]

#: The EAT profile the emulated chip's claims follow.
EAT_PROFILE = "tag:computewatch.example,2026:chip-attestation/v1"
#: The EAR profile of the Verifier's appraisal (as draft-ietf-rats-ear names it).
EAR_PROFILE = "tag:github.com,2023:veraison/ear"
#: The hardware model the emulator reports.
HW_MODEL = "computewatch-emulated-ml-chip"

# AR4SI trustworthiness claim values (tiers: 2-31 affirming, 32-95 warning, 96+ contraindicated).
_AFFIRMING, _WARNING, _CONTRAINDICATED = 2, 32, 96


def ueid_of(public_key_raw: bytes) -> str:
    """The chip's UEID: type 0x01 (random) and 32 bytes bound to its identity key, base64url."""
    digest = hashlib.sha256(b"computewatch/ueid/v1\x00" + public_key_raw).digest()
    return base64.urlsafe_b64encode(b"\x01" + digest).rstrip(b"=").decode()


def eat_claims(
    *,
    nonce: bytes,
    ueid: str,
    oemid: str,
    firmware: Mapping[str, Any] | None,
    booted: bool,
    seal_intact: bool,
    boot_count: int,
    element: Mapping[str, Any],
) -> dict[str, Any]:
    """The EAT claims-set of one attestation (signed with the rest by the chip key)."""
    fw = dict(firmware or {})
    return {
        "eat_profile": EAT_PROFILE,
        "eat_nonce": nonce.hex(),
        "ueid": ueid,
        "oemid": oemid,
        "hwmodel": HW_MODEL,
        "swname": fw.get("name"),
        "swversion": [str(fw.get("v")), "integer"] if fw else None,
        "measurements": (
            [["application/vnd.computewatch.firmware+json", fw.get("h")]] if fw else []
        ),
        "secboot": booted and bool(fw),  # only chipmaker-signed, logging firmware boots
        "dbgstat": "disabled-permanently",  # the emulator has no debug port
        "bootcount": boot_count,
        "submods": {
            "secure-element": dict(element),
            "tamper-seal": {"intact": seal_intact},
        },
    }


def attestation_claims(
    se: SecureElement,
    state: Mapping[str, Any],
    *,
    nonce: bytes,
    time_us: int,
    booted: bool,
    log_head: str,
    oemid: str,
) -> dict[str, Any]:
    """What `Chip.attest` signs: its own fields, and the same facts as EAT claims (``eat``).

    Counters, the log's entry count and the chip time are read from the
    secure element now, under this nonce: a log file cut short or emptied
    since cannot match them.
    """
    counters = {name: se.read_counter(name) for name in ("firmware", "boot", "log")}
    chip_time = se.read_clock().to_json()
    log = {"size": counters["log"], "head": log_head}
    intact = bool(state.get("intact"))
    return {
        "serial": str(se.serial),
        "public_key": se.public_key.key_id,
        "nonce": nonce.hex(),
        "time_us": time_us,
        "chip_time": chip_time,
        "firmware": state.get("fw"),
        "booted": booted,
        "counters": counters,
        "log": log,
        "seal": {"id": state.get("seal"), "intact": intact},
        "eat": eat_claims(
            nonce=nonce,
            ueid=ueid_of(se.public_key.raw),
            oemid=oemid,
            firmware=state.get("fw"),
            booted=booted,
            seal_intact=intact,
            boot_count=counters["boot"],
            element={"log": log, "counters": counters, "chip_time": chip_time},
        ),
    }


def _check(ok: bool, tier_bad: int = _CONTRAINDICATED) -> int:  # noqa: FBT001
    return _AFFIRMING if ok else tier_bad


def appraise(
    claims: Mapping[str, Any],
    *,
    nonce: bytes,
    ueid: str,
    firmware: Mapping[str, int],
    min_version: int = 1,
    name: str = "chip",
) -> dict[str, Any]:
    """Appraise a chip's EAT claims: one result per check, then the EAR.

    ``firmware`` maps the chipmaker's reference firmware code hashes to their
    versions (the reference values); ``ueid`` is the registered one. The
    status is the worst tier over the trustworthiness vector.
    """
    fw = claims.get("measurements") or []
    measured = fw[0][1] if fw and isinstance(fw[0], list) and len(fw[0]) == 2 else None  # noqa: PLR2004
    version = firmware.get(str(measured)) if measured is not None else None
    checks = {
        "nonce-match": claims.get("eat_nonce") == nonce.hex(),
        "ueid-registered": claims.get("ueid") == ueid,
        "hwmodel-known": claims.get("hwmodel") == HW_MODEL,
        "measres": version is not None,
        "firmware-not-below-minimum": version is not None and version >= min_version,
        "secboot": claims.get("secboot") is True,
        "dbgstat-disabled": str(claims.get("dbgstat", "")).startswith("disabled"),
        "tamper-seal-intact": bool(
            ((claims.get("submods") or {}).get("tamper-seal") or {}).get("intact")
        ),
    }
    vector = {
        "instance-identity": _check(checks["nonce-match"] and checks["ueid-registered"]),
        "hardware": _check(checks["hwmodel-known"] and checks["tamper-seal-intact"]),
        "executables": _check(checks["measres"] and checks["firmware-not-below-minimum"]),
        "configuration": _check(checks["secboot"] and checks["dbgstat-disabled"], _WARNING),
    }
    worst = max(vector.values())
    status = (
        "affirming"
        if worst < _WARNING
        else "warning"
        if worst < _CONTRAINDICATED
        else "contraindicated"
    )
    return {
        "eat_profile": EAR_PROFILE,
        "ear.verifier-id": {"developer": "computewatch", "build": "inspection/v1"},
        "submods": {
            name: {
                "ear.status": status,
                "ear.trustworthiness-vector": vector,
                "x-computewatch-checks": {
                    k: "success" if v else "failure" for k, v in checks.items()
                },
            }
        },
    }
