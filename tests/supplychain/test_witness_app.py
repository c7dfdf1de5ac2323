"""The witness's HTTP shell in-process: each tlog-witness status code through real HTTP handling.

`tests/supplychain/test_witness_service.py` runs `computewatch witness serve`
as a process (and kills it); this drives the same app through FastAPI's test
client, so each refusal's status, content type and body, the body bound and
the checkpoint endpoint are checked where the measurement reaches them.
"""

from __future__ import annotations

import hashlib
import os
import stat
import warnings
from typing import TYPE_CHECKING

import pytest

from computewatch.crypto import SIZE_CONTENT_TYPE, CosignatureKind, NoteSigner, add_checkpoint_body
from computewatch.errors import FormatError
from computewatch.supplychain import create_witness_app, load_cosigner, write_cosigner_key
from tests.crypto.test_witness import ORIGIN, _Setup

with warnings.catch_warnings():
    # Starlette's TestClient would rather use httpx2, a dependency we do not take for tests alone.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[_Setup, TestClient]]:
    setup = _Setup(tmp_path)
    with TestClient(create_witness_app(setup.witness, max_body_bytes=4096)) as client:
        yield setup, client


def _origin_path() -> str:
    return f"/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint"


def test_a_consistent_checkpoint_is_cosigned_and_served(
    served: tuple[_Setup, TestClient],
) -> None:
    setup, client = served
    assert client.get("/healthz").text == "ok\n"
    assert client.get(_origin_path()).status_code == 404  # nothing cosigned yet
    first = setup.grow(3)
    answer = client.post("/add-checkpoint", content=setup.body(0, first))
    assert answer.status_code == 200, answer.text
    assert answer.text.startswith("— witness.test/w1 ")
    second = setup.grow(5)
    assert client.post("/add-checkpoint", content=setup.body(3, second)).status_code == 200
    latest = client.get(_origin_path())
    assert latest.status_code == 200
    assert latest.headers["cache-control"] == "max-age=10"
    assert second.checkpoint.to_text() in latest.text


def test_each_refusal_has_the_specs_status(served: tuple[_Setup, TestClient]) -> None:
    setup, client = served
    first = setup.grow(3)
    assert client.post("/add-checkpoint", content=setup.body(0, first)).status_code == 200
    # 409: an old size other than the latest cosigned one; the body says the latest size
    stale = setup.grow(2)
    conflict = client.post("/add-checkpoint", content=setup.body(1, stale))
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == SIZE_CONTENT_TYPE
    assert conflict.text == "3\n"
    # 422: a consistency proof that does not prove
    bad = client.post("/add-checkpoint", content=setup.body(3, stale, (b"\x00" * 32,)))
    assert bad.status_code == 422
    # 404: a log the witness does not know
    other = NoteSigner.generate("log.test/other")
    unknown = setup.log.checkpoint(other)
    assert (
        client.post("/add-checkpoint", content=add_checkpoint_body(0, (), unknown.to_bytes()))
    ).status_code == 404
    # 400: a body that is no add-checkpoint request
    malformed = client.post("/add-checkpoint", content=b"old x\n\nnot a note\n")
    assert malformed.status_code == 400
    assert malformed.text.endswith("\n")
    assert len(malformed.text.strip().splitlines()) == 1


def test_the_body_is_bounded_before_it_is_read(served: tuple[_Setup, TestClient]) -> None:
    _, client = served
    declared = client.post("/add-checkpoint", content=b"x" * 5000)
    assert declared.status_code == 413

    def stream() -> Iterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000

    streamed = client.post("/add-checkpoint", content=stream())
    assert streamed.status_code == 413


def test_cosigner_key_files_must_be_private(tmp_path: Path) -> None:
    path = tmp_path / "w.key"
    write_cosigner_key(path, "witness.test/w9", CosignatureKind.ED25519)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_cosigner(path).name == "witness.test/w9"
    os.chmod(path, 0o644)  # noqa: PTH101 - the mode is what is tested
    with pytest.raises(FormatError, match="0600"):
        load_cosigner(path)
    with pytest.raises(FormatError):
        load_cosigner(tmp_path / "missing.key")
