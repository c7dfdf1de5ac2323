"""The registry service bounds what it reads and answers bad requests with a 4xx, never a 500.

In process (Starlette's TestClient over the real app and SQLite), every route
is swept with bad path and query values; against a live server (uvicorn in a
child process, via `computewatch.testing.registry_server`), the body and
header limits are exercised over a raw socket: a declared 100 MB body, a
100 MB chunked body (refused after at most a few MiB were sent), an
oversized header block and too many header fields.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import warnings
from typing import TYPE_CHECKING

import pytest
from starlette.routing import Route

from computewatch.errors import ParameterError
from computewatch.supplychain import HttpLimits, RegistrySettings, create_app
from computewatch.testing import ORIGIN, RegistryKeys, registry_server

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

HUNDRED_MB = 100 * 1024 * 1024
CHUNK = 64 * 1024
_PARAM = re.compile(r"\{(\w+)\}")
BAD_VALUES = [
    "1" * 31,
    "-" + "9" * 31,
    "-1",
    "0",
    "abc",
    "1e309",
    "nan",
    "%00",
    "%ff%fe",
    "x" * 9000,
    "%20",
]
QUERIES = ["start", "end", "index", "size", "old", "now_us", "limit"]


@pytest.fixture
def client(keys: RegistryKeys, tmp_path: Path) -> Iterator[TestClient]:
    settings = RegistrySettings(
        db_url=f"sqlite:///{tmp_path / 'r.db'}",
        log_key_file=keys.log_key_file,
        registrar_key_file=keys.registrar_pub,
        max_body_bytes=64 * 1024,
    )
    store = settings.open_store(ORIGIN)
    with TestClient(create_app(settings, store), raise_server_exceptions=False) as c:
        yield c


def _get_routes(client: TestClient) -> list[str]:
    return [
        r.path
        for r in client.app.routes  # type: ignore[attr-defined]
        if isinstance(r, Route) and "GET" in (r.methods or set())
    ]


def test_every_get_route_answers_bad_path_and_query_values_with_a_4xx(client: TestClient) -> None:
    tried = 0
    failures = []
    routes = _get_routes(client)
    assert {"/v1/chips/{serial}/region", "/v1/chips/{serial}/locations"} <= set(routes)
    for path in routes:
        for value in BAD_VALUES:
            urls = [_PARAM.sub(value, path)] if _PARAM.search(path) else []
            urls += [f"{_PARAM.sub('0', path)}?{q}={value}" for q in QUERIES]
            for url in urls:
                r = client.get(url)
                tried += 1
                if r.status_code >= 500:
                    failures.append(f"{url[:80]}: {r.status_code}")
                elif r.status_code >= 400 and "error" not in r.json():
                    failures.append(f"{url[:80]}: {r.status_code} without an error body")
    assert not failures, failures[:20]
    assert tried > 200


def test_a_31_digit_index_is_a_400_naming_the_limit(client: TestClient) -> None:
    for url in (
        "/v1/log/entries/" + "1" * 31,
        "/v1/log/receipt/" + "1" * 31,
        "/v1/reports/discrepancies?now_us=" + "1" * 31,
        "/v1/log/proof/inclusion?index=0&size=" + "1" * 31,
    ):
        r = client.get(url)
        assert r.status_code == 400, (url, r.status_code)
        assert "at most 18 digits" in r.json()["error"]["message"]


def test_writes_refuse_a_declared_oversized_body(client: TestClient) -> None:
    r = client.post("/v1/requests", content=b"{}", headers={"content-length": str(HUNDRED_MB)})
    assert r.status_code == 413
    r = client.post("/v1/requests", content=b"x" * (65 * 1024))
    assert r.status_code == 413


def test_limits_are_validated() -> None:
    with pytest.raises(ParameterError, match="max_body_bytes"):
        HttpLimits(max_body_bytes=0)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    root = tmp_path_factory.mktemp("live-limits")
    keys = RegistryKeys.create(root / "keys")
    with registry_server(keys, f"sqlite:///{root / 'r.db'}") as server:
        yield "127.0.0.1", server.port


def _status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
    return data


def test_a_chunked_100_mb_body_is_cut_off_early(live: tuple[str, int]) -> None:
    head = (
        b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n" % CHUNK + b"x" * CHUNK + b"\r\n"
    sent = 0
    with socket.create_connection(live, timeout=30) as sock:
        sock.sendall(head)
        while sent < HUNDRED_MB:
            if select.select([sock], [], [], 0)[0]:
                break  # the server answered
            try:
                sock.sendall(chunk)
            except OSError:  # it closed on us: read what it said
                break
            sent += CHUNK
        response = _read_response(sock)
    assert _status(response) == 413, response[:200]
    assert sent < 8 * 1024 * 1024, sent  # refused after at most a few MiB, not 100 MB


def test_a_declared_100_mb_body_is_refused_unread(live: tuple[str, int]) -> None:
    head = (
        b"POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % HUNDRED_MB
    )
    with socket.create_connection(live, timeout=30) as sock:
        sock.sendall(head + b"{")
        response = _read_response(sock)
    assert _status(response) == 413, response[:200]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([b"X-Big: " + b"a" * 100_000], {400, 431}),  # h11 caps the header block
        ([b"X-Many-%d: 1" % i for i in range(300)], {431}),  # the middleware counts fields
    ],
    ids=["one 100 kB header", "300 header fields"],
)
def test_oversized_headers_are_refused(
    live: tuple[str, int], headers: list[bytes], expected: set[int]
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(h + b"\r\n" for h in headers)
    with socket.create_connection(live, timeout=30) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(request + b"\r\n")
        response = _read_response(sock)
    assert response, "the server closed without an answer"
    assert _status(response) in expected, response[:200]
