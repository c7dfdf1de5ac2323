"""The registry's HTTP service: a FastAPI app over a `Registry` (no import-time state).

`create_app(settings, store)` builds the app; its lifespan starts the
registry's writer and stops it (finishing queued writes). Serve it with
uvicorn (``computewatch registry serve``). The OpenAPI schema is at
``/openapi.json``, interactive docs at ``/docs``.

Endpoints (all JSON unless noted):

* ``POST /v1/requests``: a signed registry request (DSSE envelope) ->
  `WriteOut` once durable;
* ``POST /v1/receipts``: a chip's signed log entry -> the receipt as
  ``text/plain`` (c2sp.org/tlog-proof), once durable;
* ``GET /v1/registry``, ``/healthz``: trust roots and liveness;
* ``GET /v1/chips/{serial}``, ``/v1/chips/{serial}/history``,
  ``/v1/actors/{actor_id}``: the directory;
* ``GET /v1/chips/{serial}/region``, ``/v1/chips/{serial}/locations``:
  its licensed region and logged location checks (written as
  ``license-region`` and ``location-check`` requests, docs/location.md);
* ``GET /v1/reports/discrepancies``: the discrepancy report;
* ``GET /v1/log/checkpoint`` (``text/plain`` signed note, with the
  witnesses' cosignatures when the log is witnessed),
  ``/v1/log/entries/{index}``, ``/v1/log/receipt/{index}`` (``text/plain``),
  ``/v1/log/proof/inclusion``, ``/v1/log/proof/consistency``: the log;
* ``GET /checkpoint``, ``/tile/<L>/<N>[.p/<W>]``, ``/tile/entries/<N>[.p/<W>]``:
  the same log as c2sp.org/tlog-tiles static resources (`tile_router`).

Errors are `ErrorOut` bodies: 400 malformed (`FormatError`), 401 bad or
missing signature (`IntegrityError`), 404 unknown actor or chip, 409 replay
or custody rule broken, 503 not stored (retry); and, from the request limits
(`supplychain._limits`) before the app reads anything, 413 body too large,
414 target too long, 431 headers too large, 400 a number past 18 digits.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from computewatch import __version__
from computewatch.errors import (
    CheckUnavailable,
    ComputeWatchError,
    FormatError,
    IntegrityError,
    VerificationFailed,
)
from computewatch.supplychain._audit_routes import audit_router
from computewatch.supplychain._highwater import high_water_receipt
from computewatch.supplychain._limits import HttpLimits, install_limits
from computewatch.supplychain._model import (
    CustodyViolation,
    ReplayError,
    UnknownEntity,
    check_serial,
)
from computewatch.supplychain._registry import Acknowledgement, Registry
from computewatch.supplychain._schemas import (
    ENVELOPE_SCHEMA,
    ActorOut,
    ChipOut,
    EntryOut,
    ErrorOut,
    EventOut,
    HealthOut,
    LocationCheckOut,
    ProofOut,
    RegionOut,
    RegistryInfo,
    ReportOut,
    WriteOut,
)
from computewatch.supplychain._tileapp import tile_router
from computewatch.supplychain._witnessing import WitnessPool

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from computewatch.supplychain._settings import RegistrySettings
    from computewatch.supplychain._store import RegistryStore

__all__ = ["create_app", "status_for"]

_TEXT = "text/plain; charset=utf-8"
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Malformed request (FormatError)."},
    401: {"model": ErrorOut, "description": "Missing or bad signature (IntegrityError)."},
    404: {"model": ErrorOut, "description": "Unknown actor or chip (UnknownEntity)."},
    409: {"model": ErrorOut, "description": "Replay or custody rule broken."},
    503: {"model": ErrorOut, "description": "Not stored; retry (CheckUnavailable)."},
}


def status_for(error: ComputeWatchError) -> int:
    """The HTTP status for a refusal."""
    table: list[tuple[type[ComputeWatchError], int]] = [
        (CheckUnavailable, 503),
        (UnknownEntity, 404),
        (ReplayError, 409),
        (CustodyViolation, 409),
        (VerificationFailed, 422),
        (IntegrityError, 401),
        (FormatError, 400),
    ]
    return next((code for cls, code in table if isinstance(error, cls)), 400)


def _error_response(error: ComputeWatchError) -> JSONResponse:
    body = {
        "error": {
            "type": type(error).__name__,
            "kind": error.kind,
            "message": error.message,
            "rule": error.rule.value if isinstance(error, CustodyViolation) else None,
        }
    }
    headers = {"Retry-After": "1"} if isinstance(error, CheckUnavailable) else None
    return JSONResponse(body, status_code=status_for(error), headers=headers)


async def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


RegistryDep = Annotated[Registry, Depends(_registry)]
_BODY_DOC: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": ENVELOPE_SCHEMA}}}
}


def create_app(
    settings: RegistrySettings,
    store: RegistryStore,
    *,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """Build the registry's FastAPI app over an open store.

    Args:
        settings: The server's settings (the log key is read here).
        store: The open registry database (closed when the app stops).
        clock: Seconds since the epoch, for request freshness.

    Raises:
        FormatError: The log key is missing, unsafe or a placeholder.
        IntegrityError: The key's name is not the store's origin, or the
            stored log does not check out.
    """
    signer = settings.load_signer()
    witness_policy = settings.load_witness_policy()
    pool = (
        None
        if witness_policy is None
        else WitnessPool(witness_policy, timeout_s=settings.witness_timeout_s)
    )
    registry = Registry(
        store,
        signer,
        clock=clock,
        max_skew_s=settings.max_skew_s,
        max_batch=settings.max_batch,
        queue_limit=settings.queue_limit,
        witnesses=pool,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        registry.start()
        try:
            yield
        finally:
            await run_in_threadpool(registry.close)

    app = FastAPI(
        title="computewatch registry",
        version=__version__,
        description=(
            "Chip-owner directory, chain of custody and receipt service (Shavit 2023, §6). "
            "Every write is a signed DSSE envelope; every accepted write is appended to an "
            "RFC 9162 transparency log and answered with an offline-verifiable receipt "
            "once durable."
        ),
        lifespan=lifespan,
        responses=_ERRORS,
    )
    app.state.registry = registry
    install_limits(app, HttpLimits(max_body_bytes=settings.max_body_bytes))

    @app.exception_handler(ComputeWatchError)
    async def _on_error(_request: Request, exc: ComputeWatchError) -> JSONResponse:
        return _error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _on_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error_response(FormatError(f"request {where}: {first.get('msg', 'invalid')}"))

    _write_routes(app, settings)
    _directory_routes(app, settings, clock)
    _high_water_route(app)
    _location_routes(app)
    _log_routes(app)
    app.include_router(tile_router())
    app.include_router(audit_router())
    return app


def _write_routes(app: FastAPI, settings: RegistrySettings) -> None:
    """The two write endpoints: signed requests and chip log entries."""

    async def _write(request: Request, registry: Registry, *, entry: bool) -> Acknowledgement:
        limit = settings.max_body_bytes
        if int(request.headers.get("content-length") or 0) > limit:
            msg = f"request body: expected at most {limit} bytes"
            raise FormatError(msg)
        body = await request.body()
        if len(body) > limit:
            msg = f"request body: expected at most {limit} bytes, got {len(body)}"
            raise FormatError(msg)
        future = registry.submit(body, entry=entry)
        try:
            async with asyncio.timeout(settings.write_timeout_s):
                return await asyncio.wrap_future(future)
        except TimeoutError as e:
            msg = f"registry: not durable within {settings.write_timeout_s:g} s; retry"
            raise CheckUnavailable(msg) from e

    @app.post("/v1/requests", openapi_extra=_BODY_DOC, tags=["write"])
    async def post_request(request: Request, registry: RegistryDep) -> WriteOut:
        """Submit a signed registry request (actor registration or custody event)."""
        ack = await _write(request, registry, entry=False)
        return WriteOut(index=ack.index, receipt=ack.receipt.to_text(), duplicate=ack.duplicate)

    @app.post(
        "/v1/receipts",
        openapi_extra=_BODY_DOC,
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {}}, "description": "c2sp.org/tlog-proof"}},
        tags=["write"],
    )
    async def post_receipt(request: Request, registry: RegistryDep) -> PlainTextResponse:
        """Log a chip's signed log entry; answer with its receipt once durable."""
        ack = await _write(request, registry, entry=True)
        headers = {"X-Log-Index": str(ack.index), "X-Duplicate": str(ack.duplicate).lower()}
        return PlainTextResponse(ack.receipt.to_text(), media_type=_TEXT, headers=headers)


def _directory_routes(app: FastAPI, settings: RegistrySettings, clock: Callable[[], float]) -> None:
    """Liveness, trust roots, the directory and the discrepancy report."""

    @app.get("/healthz", tags=["meta"])
    async def healthz(registry: RegistryDep) -> HealthOut:
        """Liveness and the log size."""
        return HealthOut(status="ok", size=registry.checkpoint().checkpoint.size)

    @app.get("/v1/registry", tags=["meta"])
    async def info(registry: RegistryDep) -> RegistryInfo:
        """The registry's trust roots: log origin and key, registrar."""
        return RegistryInfo(
            origin=registry.origin,
            log_vkey=registry.verifier.vkey,
            registrar_id=registry.store.registrar.actor_id,
            registrar_key=registry.store.registrar.key.hex(),
            backend=registry.store.backend,
            size=registry.checkpoint().checkpoint.size,
        )

    @app.get("/v1/chips/{serial}", tags=["directory"])
    def get_chip(serial: str, registry: RegistryDep) -> ChipOut:
        """A chip's directory record."""
        chip = registry.store.chip(check_serial(serial))
        if chip is None:
            msg = f"chip S/N {serial} is not in the directory"
            raise UnknownEntity(msg)
        return ChipOut(**chip.to_json(), receipts=registry.store.receipt_count(serial))

    @app.get("/v1/chips/{serial}/history", tags=["directory"])
    def get_history(serial: str, registry: RegistryDep) -> list[EventOut]:
        """A chip's custody history, oldest first."""
        events = registry.store.history(check_serial(serial))
        if not events:
            msg = f"chip S/N {serial} is not in the directory"
            raise UnknownEntity(msg)
        return [EventOut(**e.to_json()) for e in events]

    @app.get("/v1/actors/{actor_id}", tags=["directory"])
    def get_actor(actor_id: str, registry: RegistryDep) -> ActorOut:
        """A registered actor."""
        actor = registry.store.actor(actor_id)
        if actor is None:
            msg = f"actor {actor_id!r:.80} is not registered"
            raise UnknownEntity(msg)
        return ActorOut(**actor.to_json())

    @app.get("/v1/reports/discrepancies", tags=["directory"])
    def get_report(
        registry: RegistryDep,
        now_us: Annotated[
            int | None, Query(ge=0, description="Report time (default: now).")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    ) -> ReportOut:
        """Gaps in the chain of custody under the server's policy."""
        now = round(clock() * 1e6) if now_us is None else now_us
        report = registry.store.discrepancies(settings.policy, now, limit=limit)
        return ReportOut(**report.to_json())


def _high_water_route(app: FastAPI) -> None:
    """A chip's high-water mark: a receipt for its newest logged entry (ADR 0029)."""

    @app.get("/v1/chips/{serial}/high-water", response_class=PlainTextResponse, tags=["directory"])
    def get_high_water(serial: str, registry: RegistryDep) -> PlainTextResponse:
        """A receipt for the chip's newest logged entry: the most the registry has seen of it."""
        receipt = high_water_receipt(registry, check_serial(serial))
        if receipt is None:
            msg = f"chip S/N {serial} has no logged entries"
            raise UnknownEntity(msg)
        return PlainTextResponse(receipt.to_text(), media_type=_TEXT)


def _location_routes(app: FastAPI) -> None:
    """Licensed regions and logged location checks (docs/location.md)."""

    @app.get("/v1/chips/{serial}/region", tags=["location"])
    def get_region(serial: str, registry: RegistryDep) -> RegionOut:
        """The region the chip is licensed to (a logged ``license-region`` request)."""
        found = registry.store.licence(check_serial(serial))
        if found is None:
            msg = f"chip S/N {serial} has no licensed region"
            raise UnknownEntity(msg)
        return RegionOut(serial=serial, region=found[0].to_json(), log_index=found[1])

    @app.get("/v1/chips/{serial}/locations", tags=["location"])
    def get_locations(
        serial: str,
        registry: RegistryDep,
        limit: Annotated[int, Query(ge=1, le=1000, description="The latest this many.")] = 100,
    ) -> list[LocationCheckOut]:
        """The chip's latest logged location checks, oldest first (empty if none)."""
        checks = registry.store.location_checks(check_serial(serial), limit=limit)
        return [LocationCheckOut(**c.to_json()) for c in checks]


def _log_routes(app: FastAPI) -> None:
    """The transparency log: checkpoint, entries, receipts and proofs."""

    @app.get("/v1/log/checkpoint", response_class=PlainTextResponse, tags=["log"])
    async def get_checkpoint(registry: RegistryDep) -> PlainTextResponse:
        """The latest signed checkpoint (C2SP signed note)."""
        return PlainTextResponse(registry.checkpoint().to_bytes().decode(), media_type=_TEXT)

    @app.get("/v1/log/entries", tags=["log"])
    def get_entries(
        registry: RegistryDep,
        start: Annotated[int, Query(ge=0)],
        end: Annotated[int, Query(ge=1, description="Exclusive; at most 1000 past start.")],
    ) -> list[EntryOut]:
        """Log entries ``start`` to ``end - 1`` (at most 1000), for audits."""
        if not start < end <= min(start + 1000, registry.size):
            msg = (
                f"log entries: expected start < end <= start + 1000 and <= {registry.size}, "
                f"got {start}..{end}"
            )
            raise FormatError(msg)
        return [
            EntryOut(index=i, entry=base64.b64encode(registry.entry(i)).decode())
            for i in range(start, end)
        ]

    @app.get("/v1/log/entries/{index}", tags=["log"])
    def get_entry(index: int, registry: RegistryDep) -> EntryOut:
        """One log entry (a signed request or chip log entry)."""
        return EntryOut(index=index, entry=base64.b64encode(registry.entry(index)).decode())

    @app.get("/v1/log/receipt/{index}", response_class=PlainTextResponse, tags=["log"])
    def get_receipt(index: int, registry: RegistryDep) -> PlainTextResponse:
        """A receipt for a log entry against the latest checkpoint."""
        return PlainTextResponse(registry.receipt(index).to_text(), media_type=_TEXT)

    @app.get("/v1/log/proof/inclusion", tags=["log"])
    def get_inclusion(
        registry: RegistryDep, index: Annotated[int, Query(ge=0)], size: Annotated[int, Query(ge=1)]
    ) -> ProofOut:
        """Inclusion proof of entry ``index`` in the tree of ``size``."""
        proof = registry.inclusion_proof(index, size)
        return ProofOut(index=index, size=size, proof=[base64.b64encode(h).decode() for h in proof])

    @app.get("/v1/log/proof/consistency", tags=["log"])
    def get_consistency(
        registry: RegistryDep, old: Annotated[int, Query(ge=1)], size: Annotated[int, Query(ge=1)]
    ) -> ProofOut:
        """Consistency proof from the tree of ``old`` to the tree of ``size``."""
        proof = registry.consistency_proof(old, size)
        return ProofOut(old=old, size=size, proof=[base64.b64encode(h).decode() for h in proof])
