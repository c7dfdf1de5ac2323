"""The chip-owner directory, chain of custody, and registry and receipt service (paper §6).

The Verifier can sample a Prover's chips only if it knows which chips exist
and who holds them; custody must be continuous so that a missing chip is
its last holder's responsibility; and chips need a Verifier-trusted server
that acknowledges their snapshot entries (§4). This package provides:

* the rules of custody (`check_request`), applied to signed requests of
  registered actors (fabs, packagers, carriers, owners, verifiers);
* the directory derived from the custody events (`Directory` in memory,
  `RegistryStore` in SQLite or PostgreSQL), every accepted request appended
  to an RFC 9162 transparency log in the same database transaction, so
  anyone can fetch checkpoints and proofs and re-derive the directory
  (`Directory.replay`);
* discrepancy reports (`find_discrepancies`);
* the service: `Registry` (group-committing writer; acknowledges only
  durable writes), `create_app` (FastAPI), `RegistryClient`, and
  `ReceiptClient`, the chip's ``receipts=`` callback.

Example:
    >>> from computewatch.crypto import SigningKey
    >>> from computewatch.supplychain import Directory, RequestKind, make_request, sign_request
    >>> registrar, fab = SigningKey.from_seed(bytes(32)), SigningKey.from_seed(bytes(range(32)))
    >>> d = Directory("example/log", "registrar", registrar.verifying_key)
    >>> body = {"id": "fab-1", "role": "fab", "key": fab.verifying_key.raw.hex()}
    >>> req = make_request(RequestKind.REGISTER_ACTOR, registry="example/log", actor="registrar",
    ...                    counter=1, time_us=1, body=body)
    >>> d.submit(sign_request(req, [registrar, fab]).to_json())
    0
    >>> d.actor("fab-1").role.value
    'fab'
"""

from typing import TYPE_CHECKING

from computewatch._lazy import lazy_exports

if TYPE_CHECKING:
    from computewatch.supplychain._app import create_app, status_for
    from computewatch.supplychain._audit_client import AuditQueries
    from computewatch.supplychain._client import RegistryClient
    from computewatch.supplychain._directory import Directory
    from computewatch.supplychain._entries import check_receipt
    from computewatch.supplychain._highwater import HighWater, high_water_receipt
    from computewatch.supplychain._holdings import AuditView, Holding, LoggedCommitment, audit_view
    from computewatch.supplychain._limits import (
        HttpLimits,
        LimitsMiddleware,
        install_limits,
        uvicorn_options,
    )
    from computewatch.supplychain._location import (
        CHECK_RECORD_TYPE,
        LandmarkResult,
        LocationCheck,
        LocationLog,
        LocationPolicy,
        LocationStatus,
        check_location,
        schedule_checks,
        verify_location,
    )
    from computewatch.supplychain._location_geo import (
        FIBRE_KM_PER_MS_RTT,
        VACUUM_KM_PER_MS_RTT,
        Landmark,
        LicensedRegion,
        RegionConstraint,
        great_circle_km,
        rtt_bound_km,
    )
    from computewatch.supplychain._location_landmark import (
        MEASUREMENT_TYPE,
        LandmarkCore,
        LandmarkServer,
        measure_at,
        parse_address,
    )
    from computewatch.supplychain._location_record import parse_check, parse_region
    from computewatch.supplychain._location_sim import (
        OPTIMAL_FIBRE,
        LatencyModel,
        Site,
        calibrate_radius,
        destination,
        one_sided_rate,
        run_campaign,
        simulate_check,
    )
    from computewatch.supplychain._model import (
        Actor,
        ChipEvent,
        ChipState,
        ChipStatus,
        CustodyViolation,
        EventKind,
        Overloaded,
        ReplayError,
        Role,
        Rule,
        UnknownEntity,
    )
    from computewatch.supplychain._receipt_client import ReceiptClient
    from computewatch.supplychain._registry import Acknowledgement, Registry
    from computewatch.supplychain._reports import (
        Discrepancy,
        DiscrepancyKind,
        DiscrepancyReport,
        ReportPolicy,
        find_discrepancies,
    )
    from computewatch.supplychain._requests import (
        MAX_SERIALS,
        Request,
        RequestKind,
        cosign,
        make_request,
        payload_type,
        sign_request,
    )
    from computewatch.supplychain._rules import (
        Effects,
        ReceiptEffects,
        ReceiptRecord,
        StateView,
        check_request,
    )
    from computewatch.supplychain._settings import RegistrySettings, write_log_key
    from computewatch.supplychain._sqllog import SQLLogStore
    from computewatch.supplychain._store import RegistryStore
    from computewatch.supplychain._tables import open_engine
    from computewatch.supplychain._tileapp import tile_router
    from computewatch.supplychain._witnessapp import (
        create_witness_app,
        load_cosigner,
        write_cosigner_key,
    )
    from computewatch.supplychain._witnessing import WitnessPool, WitnessStats

if not TYPE_CHECKING:  # every name is imported from its module on first use (ADR 0043)
    __getattr__, __dir__ = lazy_exports(
        __name__,
        {
            "create_app": "computewatch.supplychain._app",
            "status_for": "computewatch.supplychain._app",
            "AuditQueries": "computewatch.supplychain._audit_client",
            "RegistryClient": "computewatch.supplychain._client",
            "Directory": "computewatch.supplychain._directory",
            "check_receipt": "computewatch.supplychain._entries",
            "HighWater": "computewatch.supplychain._highwater",
            "high_water_receipt": "computewatch.supplychain._highwater",
            "AuditView": "computewatch.supplychain._holdings",
            "Holding": "computewatch.supplychain._holdings",
            "LoggedCommitment": "computewatch.supplychain._holdings",
            "audit_view": "computewatch.supplychain._holdings",
            "HttpLimits": "computewatch.supplychain._limits",
            "LimitsMiddleware": "computewatch.supplychain._limits",
            "install_limits": "computewatch.supplychain._limits",
            "uvicorn_options": "computewatch.supplychain._limits",
            "CHECK_RECORD_TYPE": "computewatch.supplychain._location",
            "LandmarkResult": "computewatch.supplychain._location",
            "LocationCheck": "computewatch.supplychain._location",
            "LocationLog": "computewatch.supplychain._location",
            "LocationPolicy": "computewatch.supplychain._location",
            "LocationStatus": "computewatch.supplychain._location",
            "check_location": "computewatch.supplychain._location",
            "schedule_checks": "computewatch.supplychain._location",
            "verify_location": "computewatch.supplychain._location",
            "FIBRE_KM_PER_MS_RTT": "computewatch.supplychain._location_geo",
            "VACUUM_KM_PER_MS_RTT": "computewatch.supplychain._location_geo",
            "Landmark": "computewatch.supplychain._location_geo",
            "LicensedRegion": "computewatch.supplychain._location_geo",
            "RegionConstraint": "computewatch.supplychain._location_geo",
            "great_circle_km": "computewatch.supplychain._location_geo",
            "rtt_bound_km": "computewatch.supplychain._location_geo",
            "MEASUREMENT_TYPE": "computewatch.supplychain._location_landmark",
            "LandmarkCore": "computewatch.supplychain._location_landmark",
            "LandmarkServer": "computewatch.supplychain._location_landmark",
            "measure_at": "computewatch.supplychain._location_landmark",
            "parse_address": "computewatch.supplychain._location_landmark",
            "parse_check": "computewatch.supplychain._location_record",
            "parse_region": "computewatch.supplychain._location_record",
            "OPTIMAL_FIBRE": "computewatch.supplychain._location_sim",
            "LatencyModel": "computewatch.supplychain._location_sim",
            "Site": "computewatch.supplychain._location_sim",
            "calibrate_radius": "computewatch.supplychain._location_sim",
            "destination": "computewatch.supplychain._location_sim",
            "one_sided_rate": "computewatch.supplychain._location_sim",
            "run_campaign": "computewatch.supplychain._location_sim",
            "simulate_check": "computewatch.supplychain._location_sim",
            "Actor": "computewatch.supplychain._model",
            "ChipEvent": "computewatch.supplychain._model",
            "ChipState": "computewatch.supplychain._model",
            "ChipStatus": "computewatch.supplychain._model",
            "CustodyViolation": "computewatch.supplychain._model",
            "EventKind": "computewatch.supplychain._model",
            "ReplayError": "computewatch.supplychain._model",
            "Role": "computewatch.supplychain._model",
            "Rule": "computewatch.supplychain._model",
            "UnknownEntity": "computewatch.supplychain._model",
            "ReceiptClient": "computewatch.supplychain._receipt_client",
            "Acknowledgement": "computewatch.supplychain._registry",
            "Overloaded": "computewatch.supplychain._model",
            "Registry": "computewatch.supplychain._registry",
            "Discrepancy": "computewatch.supplychain._reports",
            "DiscrepancyKind": "computewatch.supplychain._reports",
            "DiscrepancyReport": "computewatch.supplychain._reports",
            "ReportPolicy": "computewatch.supplychain._reports",
            "find_discrepancies": "computewatch.supplychain._reports",
            "MAX_SERIALS": "computewatch.supplychain._requests",
            "Request": "computewatch.supplychain._requests",
            "RequestKind": "computewatch.supplychain._requests",
            "cosign": "computewatch.supplychain._requests",
            "make_request": "computewatch.supplychain._requests",
            "payload_type": "computewatch.supplychain._requests",
            "sign_request": "computewatch.supplychain._requests",
            "Effects": "computewatch.supplychain._rules",
            "ReceiptEffects": "computewatch.supplychain._rules",
            "ReceiptRecord": "computewatch.supplychain._rules",
            "StateView": "computewatch.supplychain._rules",
            "check_request": "computewatch.supplychain._rules",
            "RegistrySettings": "computewatch.supplychain._settings",
            "write_log_key": "computewatch.supplychain._settings",
            "SQLLogStore": "computewatch.supplychain._sqllog",
            "RegistryStore": "computewatch.supplychain._store",
            "open_engine": "computewatch.supplychain._tables",
            "tile_router": "computewatch.supplychain._tileapp",
            "create_witness_app": "computewatch.supplychain._witnessapp",
            "load_cosigner": "computewatch.supplychain._witnessapp",
            "write_cosigner_key": "computewatch.supplychain._witnessapp",
            "WitnessPool": "computewatch.supplychain._witnessing",
            "WitnessStats": "computewatch.supplychain._witnessing",
        },
    )

__all__ = [
    "CHECK_RECORD_TYPE",
    "FIBRE_KM_PER_MS_RTT",
    "MAX_SERIALS",
    "MEASUREMENT_TYPE",
    "OPTIMAL_FIBRE",
    "VACUUM_KM_PER_MS_RTT",
    "Acknowledgement",
    "Actor",
    "AuditQueries",
    "AuditView",
    "ChipEvent",
    "ChipState",
    "ChipStatus",
    "CustodyViolation",
    "Directory",
    "Discrepancy",
    "DiscrepancyKind",
    "DiscrepancyReport",
    "Effects",
    "EventKind",
    "HighWater",
    "Holding",
    "HttpLimits",
    "Landmark",
    "LandmarkCore",
    "LandmarkResult",
    "LandmarkServer",
    "LatencyModel",
    "LicensedRegion",
    "LimitsMiddleware",
    "LocationCheck",
    "LocationLog",
    "LocationPolicy",
    "LocationStatus",
    "LoggedCommitment",
    "Overloaded",
    "ReceiptClient",
    "ReceiptEffects",
    "ReceiptRecord",
    "RegionConstraint",
    "Registry",
    "RegistryClient",
    "RegistrySettings",
    "RegistryStore",
    "ReplayError",
    "ReportPolicy",
    "Request",
    "RequestKind",
    "Role",
    "Rule",
    "SQLLogStore",
    "Site",
    "StateView",
    "UnknownEntity",
    "WitnessPool",
    "WitnessStats",
    "audit_view",
    "calibrate_radius",
    "check_location",
    "check_receipt",
    "check_request",
    "cosign",
    "create_app",
    "create_witness_app",
    "destination",
    "find_discrepancies",
    "great_circle_km",
    "high_water_receipt",
    "install_limits",
    "load_cosigner",
    "make_request",
    "measure_at",
    "one_sided_rate",
    "open_engine",
    "parse_address",
    "parse_check",
    "parse_region",
    "payload_type",
    "rtt_bound_km",
    "run_campaign",
    "schedule_checks",
    "sign_request",
    "simulate_check",
    "status_for",
    "tile_router",
    "uvicorn_options",
    "verify_location",
    "write_cosigner_key",
    "write_log_key",
]
