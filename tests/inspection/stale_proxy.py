"""A registry operator between the Verifier and the real registry, serving a stale checkpoint.

Usage::

    with StaleProxy(server.url) as proxy:
        ...                       # plan the audit with --server proxy.url
        proxy.frozen = old_note   # from now on GET /v1/log/checkpoint answers old_note

Everything else is forwarded to the real registry on 127.0.0.1 as it is (a
real HTTP server in a thread, forwarding with httpx), so the audit talks to
a live registry whose operator rolls one answer back.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self

import httpx

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["StaleProxy"]

_CHECKPOINT = "/v1/log/checkpoint"


class StaleProxy:
    """Forwards to ``upstream``; answers `frozen` (when set) for the latest checkpoint."""

    def __init__(self, upstream: str) -> None:
        """Listen on a free port of 127.0.0.1."""
        self.upstream = upstream.rstrip("/")
        self.frozen: bytes | None = None
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if method == "GET" and self.path == _CHECKPOINT and proxy.frozen is not None:
                    self._answer(200, proxy.frozen, "text/plain; charset=utf-8")
                    return
                headers = {"content-type": self.headers.get("content-type", "application/json")}
                r = httpx.request(
                    method, proxy.upstream + self.path, content=body, headers=headers, timeout=60
                )
                self._answer(r.status_code, r.content, r.headers.get("content-type", "text/plain"))

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                del format, args

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The proxy's base URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> Self:
        """Start serving."""
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
