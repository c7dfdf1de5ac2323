"""The registry service's audit queries (an APIRouter that `create_app` includes).

* ``GET /v1/audit/holdings/{actor}?size=N``: the chips ``actor`` held at
  tree size ``N`` (a checkpoint the auditor holds), each with its last
  custody event's log entry and inclusion proof in the tree of ``N``;
* ``GET /v1/audit/commitments?period=P&size=N``: the sampling commitments
  and reveals logged for period ``P`` in the first ``N`` entries, each with
  its entry and inclusion proof.

Both replay the log's first ``N`` entries (`audit_view`): the work is one
pass over the log, bounded by its size. Clients check every proof
(`AuditQueries`), and an auditor who wants completeness too replays the
entries itself.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from computewatch.crypto import VerifyingKey
from computewatch.errors import FormatError
from computewatch.supplychain._holdings import AuditView, audit_view
from computewatch.supplychain._model import check_actor_id

if TYPE_CHECKING:
    from computewatch.supplychain._registry import Registry

__all__ = ["audit_router"]


def _view(registry: Registry, size: int) -> AuditView:
    if not 1 <= size <= registry.size:
        msg = f"audit query size: expected 1 to {registry.size} (the log's size), got {size}"
        raise FormatError(msg)
    entries = [registry.entry(i) for i in range(size)]
    registrar = registry.store.registrar
    return audit_view(
        entries, registry.origin, registrar.actor_id, VerifyingKey.from_raw(registrar.key)
    )


def _proved(registry: Registry, index: int, size: int) -> dict[str, Any]:
    return {
        "entry": base64.b64encode(registry.entry(index)).decode(),
        "proof": [base64.b64encode(h).decode() for h in registry.inclusion_proof(index, size)],
    }


def audit_router() -> APIRouter:
    """The audit queries' routes."""
    router = APIRouter(prefix="/v1/audit", tags=["audit"])

    @router.get("/holdings/{actor_id}")
    async def get_holdings(
        actor_id: str, request: Request, size: Annotated[int, Query(ge=1)]
    ) -> dict[str, Any]:
        """The chips ``actor_id`` held at tree size ``size``, with proofs."""
        registry: Registry = request.app.state.registry
        check_actor_id(actor_id, "audit query actor")

        def answer() -> dict[str, Any]:
            view = _view(registry, size)
            chips = [
                h.to_json() | _proved(registry, h.last_index, size) for h in view.holdings(actor_id)
            ]
            return {"actor": actor_id, "size": size, "chips": chips}

        return await run_in_threadpool(answer)

    @router.get("/commitments")
    async def get_commitments(
        request: Request,
        period: Annotated[str, Query(min_length=1, max_length=64)],
        size: Annotated[int, Query(ge=1)],
    ) -> dict[str, Any]:
        """The sampling commitments and reveals for ``period`` in the first ``size`` entries."""
        registry: Registry = request.app.state.registry

        def answer() -> dict[str, Any]:
            view = _view(registry, size)
            items = [
                c.to_json() | _proved(registry, c.index, size) for c in view.for_period(period)
            ]
            return {"period": period, "size": size, "commitments": items}

        return await run_in_threadpool(answer)

    return router
