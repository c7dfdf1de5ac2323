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

from computewatch.supplychain._app import create_app, status_for
from computewatch.supplychain._audit_client import AuditQueries
from computewatch.supplychain._client import ReceiptClient, RegistryClient
from computewatch.supplychain._directory import Directory
from computewatch.supplychain._entries import check_receipt
from computewatch.supplychain._holdings import AuditView, Holding, LoggedCommitment, audit_view
from computewatch.supplychain._model import (
    Actor,
    ChipEvent,
    ChipState,
    ChipStatus,
    CustodyViolation,
    EventKind,
    ReplayError,
    Role,
    Rule,
    UnknownEntity,
)
from computewatch.supplychain._registry import Acknowledgement, Overloaded, Registry
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

__all__ = [
    "MAX_SERIALS",
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
    "Holding",
    "LoggedCommitment",
    "Overloaded",
    "ReceiptClient",
    "ReceiptEffects",
    "ReceiptRecord",
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
    "StateView",
    "UnknownEntity",
    "audit_view",
    "check_receipt",
    "check_request",
    "cosign",
    "create_app",
    "find_discrepancies",
    "make_request",
    "open_engine",
    "payload_type",
    "sign_request",
    "status_for",
    "write_log_key",
]
