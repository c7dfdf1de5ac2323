r"""The witness's HTTP service (c2sp.org/tlog-witness) over a `Witness`: a thin shell.

Endpoints (plain text, as the spec defines them):

* ``POST /add-checkpoint``: the request body of the spec; 200 with the
  cosignature lines, or 400, 403, 404, 409 (body ``"<latest size>\\n"``,
  ``Content-Type: text/x.tlog.size``), 413 (body over the bound) or 422, each
  with a one-line reason (except 409, whose body the spec fixes);
* ``GET /<hex SHA-256 of the origin>/checkpoint``: the latest cosigned
  checkpoint of that log with the log's signature and ours (404 if none);
* ``GET /healthz``.

The body is bounded before it is read: a ``Content-Length`` over the bound
is refused at once and a streamed body is cut off at the bound.

Example:
    >>> app = create_witness_app(Witness.open("w.db", [cosigner], logs))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, Response

from computewatch import __version__
from computewatch.crypto import (
    SIZE_CONTENT_TYPE,
    CosignatureKind,
    Cosigner,
    SizeConflict,
    WitnessError,
)
from computewatch.crypto._witness import MAX_ADD_CHECKPOINT_BYTES
from computewatch.errors import ComputeWatchError, FormatError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from computewatch.crypto import Witness

__all__ = ["create_witness_app", "load_cosigner", "write_cosigner_key"]

_TEXT = "text/plain; charset=utf-8"
_MAX_KEY_FILE = 16384


class _TooLargeError(FormatError):
    """The request body is larger than the bound."""


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        msg = f"request body: expected at most {limit} bytes, Content-Length says {declared[:20]}"
        raise _TooLargeError(msg)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            msg = f"request body: expected at most {limit} bytes"
            raise _TooLargeError(msg)
        chunks.append(chunk)
    return b"".join(chunks)


def _refusal(error: ComputeWatchError) -> Response:
    if isinstance(error, SizeConflict):
        # set as a header: a media_type of text/* would get "; charset=utf-8" appended
        return Response(error.body, status_code=409, headers={"content-type": SIZE_CONTENT_TYPE})
    if isinstance(error, _TooLargeError):
        status = 413
    elif isinstance(error, WitnessError):
        status = error.status
    else:
        status = 400
    return PlainTextResponse(error.diagnostics() + "\n", status_code=status, media_type=_TEXT)


def create_witness_app(
    witness: Witness, *, max_body_bytes: int = MAX_ADD_CHECKPOINT_BYTES
) -> FastAPI:
    """Build the witness's app; the witness's store is closed when the app stops."""
    by_hash = {hashlib.sha256(o.encode()).hexdigest(): o for o in witness.logs}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            witness.close()

    app = FastAPI(
        title="computewatch witness",
        version=__version__,
        description="A C2SP tlog-witness: cosigns checkpoints consistent with all it has seen.",
        lifespan=lifespan,
        openapi_url=None,
    )

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        """Check a checkpoint against the latest cosigned one; cosign it if consistent."""
        try:
            body = await _bounded_body(request, max_body_bytes)
            lines = await run_in_threadpool(witness.add_checkpoint, body)
        except ComputeWatchError as e:
            return _refusal(e)
        return Response(lines, media_type=_TEXT)

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        """Liveness."""
        return PlainTextResponse("ok\n", media_type=_TEXT)

    @app.get("/{origin_hash}/checkpoint")
    def latest(origin_hash: str) -> Response:
        """The latest cosigned checkpoint of the log whose origin hashes to ``origin_hash``."""
        origin = by_hash.get(origin_hash)
        note = None if origin is None else witness.latest(origin)
        if note is None:
            return PlainTextResponse("no cosigned checkpoint\n", status_code=404, media_type=_TEXT)
        return Response(note, media_type=_TEXT, headers={"Cache-Control": "max-age=10"})

    return app


def load_cosigner(path: Path) -> Cosigner:
    """Read a witness's cosigning key file, refusing one readable by others.

    Raises:
        FormatError: Missing, unreadable, not mode 0600, or malformed.
    """
    try:
        info = path.stat()
        text = path.read_text(encoding="ascii")[:_MAX_KEY_FILE].strip()
    except (OSError, UnicodeDecodeError) as e:
        msg = f"witness key {path}: cannot read it ({e})"
        raise FormatError(msg) from e
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        msg = f"witness key {path}: expected permissions 0600, got {mode:04o}; chmod 600 {path}"
        raise FormatError(msg)
    return Cosigner.from_skey(text)


def write_cosigner_key(
    path: str | os.PathLike[str], name: str, kind: CosignatureKind = CosignatureKind.ED25519
) -> Cosigner:
    """Generate a cosigning key named ``name`` and write it to a new file, mode 0600.

    Raises:
        FormatError: The file exists or cannot be written, or the name is invalid.
    """
    cosigner = Cosigner.generate(name, kind)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        msg = f"witness key {path}: cannot create it ({e.strerror})"
        raise FormatError(msg) from e
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(cosigner.skey + "\n")
        f.flush()
        os.fsync(f.fileno())
    return cosigner
