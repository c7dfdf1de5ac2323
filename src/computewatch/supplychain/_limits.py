"""Request limits for computewatch's HTTP services (an ASGI middleware).

Everything a client sends is bounded before the application reads it:

* the header block: at most `HttpLimits.max_headers` fields and
  `max_header_bytes` bytes in all (431);
* the target: path and query string of at most `max_target_bytes` (414), and
  no decimal number in a path segment or query value longer than
  `max_int_digits` (400: a 31-digit index would overflow the database's
  64-bit integers and end as a 500);
* the body: a ``Content-Length`` above `max_body_bytes` is refused before a
  byte is read (413), and a chunked body is counted as it arrives and cut off
  the moment it passes the limit (413), so a 100 MB upload is never held.

Refusals are JSON bodies shaped like the registry's `ErrorOut`. Install them
on any FastAPI or Starlette app with one line::

    install_limits(app, HttpLimits(max_body_bytes=1 << 20))

`uvicorn_options()` gives the matching limits of the server itself (h11's
cap on an incomplete header block), for `uvicorn.run`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from computewatch._validate import positive_int

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, MutableMapping

    Scope = MutableMapping[str, Any]
    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["HttpLimits", "LimitsMiddleware", "install_limits", "uvicorn_options"]

_DIGITS = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class HttpLimits:
    """Bounds on one HTTP request (all positive).

    Attributes:
        max_body_bytes: Largest request body.
        max_header_bytes: Largest header block (names and values together).
        max_headers: Most header fields.
        max_target_bytes: Longest path plus query string.
        max_int_digits: Most digits of a number in the path or query (18
            keeps every value inside a signed 64-bit integer).
    """

    max_body_bytes: int = 1 << 20
    max_header_bytes: int = 16 << 10
    max_headers: int = 100
    max_target_bytes: int = 8 << 10
    max_int_digits: int = 18

    def __post_init__(self) -> None:
        """Check every bound (`ParameterError` naming the bad one)."""
        for name in (
            "max_body_bytes",
            "max_header_bytes",
            "max_headers",
            "max_target_bytes",
            "max_int_digits",
        ):
            positive_int(name, getattr(self, name))


class _BodyTooLarge(Exception):  # noqa: N818 - internal signal, never leaves the middleware
    pass


async def _refuse(send: Send, status: int, kind: str, message: str) -> None:
    body = json.dumps(
        {"error": {"type": "FormatError", "kind": kind, "message": message, "rule": None}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class LimitsMiddleware:
    """Pure ASGI middleware enforcing `HttpLimits` on every HTTP request."""

    def __init__(self, app: ASGIApp, limits: HttpLimits | None = None) -> None:
        """Wrap `app`; `limits` defaults to `HttpLimits()`."""
        self.app = app
        self.limits = limits or HttpLimits()

    def _check_head(self, scope: Scope) -> tuple[int, str] | None:
        """The (status, message) refusing this request's head, or None."""
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", ()))
        return (
            self._check_headers(headers) or self._check_target(scope) or self._check_length(headers)
        )

    def _check_headers(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        lim = self.limits
        if len(headers) > lim.max_headers:
            return 431, f"headers: expected at most {lim.max_headers} fields, got {len(headers)}"
        size = sum(len(k) + len(v) for k, v in headers)
        if size > lim.max_header_bytes:
            return 431, f"headers: expected at most {lim.max_header_bytes} bytes, got {size}"
        return None

    def _check_target(self, scope: Scope) -> tuple[int, str] | None:
        lim = self.limits
        raw_path = scope.get("raw_path") or str(scope.get("path", "")).encode()
        query: bytes = scope.get("query_string", b"")
        if len(raw_path) + len(query) > lim.max_target_bytes:
            return 414, (
                f"request target: expected at most {lim.max_target_bytes} bytes, "
                f"got {len(raw_path) + len(query)}"
            )
        values = [("path", unquote(p)) for p in str(scope.get("path", "")).split("/")]
        try:
            values += parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        except ValueError:
            return 400, "query string: malformed"
        for name, value in values:
            digits = value.strip().lstrip("+-")
            if _DIGITS.fullmatch(value.strip()) and len(digits) > lim.max_int_digits:
                where = "path segment" if name == "path" else f"query parameter {name!r:.40}"
                return 400, (
                    f"{where}: expected a number of at most {lim.max_int_digits} digits, "
                    f"got {len(digits)}"
                )
        return None

    def _check_length(self, headers: list[tuple[bytes, bytes]]) -> tuple[int, str] | None:
        limit = self.limits.max_body_bytes
        for key, value in headers:
            if key.lower() != b"content-length":
                continue
            if not value.strip().isdigit():
                return 400, f"content-length: expected a number, got {value[:40]!r}"
            if int(value) > limit:
                return 413, (
                    f"request body: expected at most {limit} bytes, "
                    f"got a content-length of {int(value)}"
                )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an over-limit request; pass any other through, counting its body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._check_head(scope)
        if refusal is not None:
            await _refuse(send, refusal[0], "bad input", refusal[1])
            return
        limit = self.limits.max_body_bytes
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _BodyTooLarge:
            if started:  # the app answered before reading it all: nothing left to say
                return
            msg = f"request body: expected at most {limit} bytes, got more (chunked)"
            await _refuse(send, 413, "bad input", msg)


def install_limits(app: Any, limits: HttpLimits | None = None) -> HttpLimits:
    """Add `LimitsMiddleware` to a FastAPI/Starlette `app`; return the limits used."""
    chosen = limits or HttpLimits()
    app.add_middleware(LimitsMiddleware, limits=chosen)
    return chosen


def uvicorn_options(limits: HttpLimits | None = None) -> dict[str, Any]:
    """Keyword arguments for `uvicorn.run` that bound what uvicorn itself buffers.

    h11 is chosen because it caps an incomplete header block
    (`h11_max_incomplete_event_size`) before the middleware ever sees it.
    """
    chosen = limits or HttpLimits()
    return {"http": "h11", "h11_max_incomplete_event_size": chosen.max_header_bytes}
