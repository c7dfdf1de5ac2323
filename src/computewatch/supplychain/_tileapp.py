"""The registry's log as c2sp.org/tlog-tiles static resources (a FastAPI router).

* ``GET /checkpoint``: the latest checkpoint, with the witnesses'
  cosignatures (``text/plain; charset=utf-8``, cacheable for a few seconds);
* ``GET /tile/<L>/<N>[.p/<W>]``: a Merkle tree tile (``application/octet-stream``,
  immutable: ``Cache-Control: public, max-age=31536000, immutable``);
* ``GET /tile/entries/<N>[.p/<W>]``: an entry bundle (same caching).

A path that is not canonical is a 400; a tile the tree does not hold yet is
a 404. Nothing is precomputed: the store keeps every complete subtree, so a
tile is one batched read of its 1 to 256 hashes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from computewatch.crypto import TilePath, read_entry_bundle, read_tile
from computewatch.errors import FormatError

if TYPE_CHECKING:
    from computewatch.supplychain._registry import Registry

__all__ = ["tile_router"]

_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_MUTABLE = {"Cache-Control": "public, max-age=5"}
_OCTETS = "application/octet-stream"


def _text(message: str, status: int) -> PlainTextResponse:
    return PlainTextResponse(message + "\n", status_code=status)


def tile_router() -> APIRouter:
    """The tlog-tiles routes over ``request.app.state.registry``."""
    router = APIRouter(tags=["tiles"])

    @router.get("/checkpoint", response_class=PlainTextResponse)
    async def checkpoint(request: Request) -> Response:
        """The latest (cosigned) checkpoint."""
        registry: Registry = request.app.state.registry
        return Response(
            registry.checkpoint().to_bytes(),
            media_type="text/plain; charset=utf-8",
            headers=_MUTABLE,
        )

    @router.get("/tile/{path:path}")
    async def tile(path: str, request: Request) -> Response:
        """A tile or entry bundle."""
        registry: Registry = request.app.state.registry
        try:
            where = TilePath.parse(path)
        except FormatError as e:
            return _text(e.diagnostics(), 400)
        size = registry.checkpoint().checkpoint.size
        if where.span()[1] > size:
            return _text(f"{where.to_path()}: not in the tree of size {size}", 404)
        reader = read_tile if where.level is not None else read_entry_bundle

        def read() -> bytes:
            with registry.read_lock():
                return reader(registry.log, where, size)

        try:
            data = await run_in_threadpool(read)
        except FormatError as e:
            return _text(e.diagnostics(), 422)
        return Response(data, media_type=_OCTETS, headers=_IMMUTABLE)

    return router
