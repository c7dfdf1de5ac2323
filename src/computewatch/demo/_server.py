"""The demo's live registry: ``computewatch registry serve`` in a child process on 127.0.0.1.

The demo runs the audit against a real registry service (FastAPI on
uvicorn over SQLite), as a regulator would: keys are generated into the
registry's folder, the server is started on a free port, and it is always
stopped (SIGTERM, queued writes finish) when the demo ends.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from computewatch.crypto import SigningKey
from computewatch.errors import CheckUnavailable
from computewatch.supplychain import write_log_key

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from computewatch.crypto import NoteVerifier

__all__ = ["DemoServer", "registry_process"]

ORIGIN = "computewatch.example/demo-registry"
_HOST = "127.0.0.1"
_START_TIMEOUT_S = 60.0
_MAIN = "import sys; from computewatch.cli import main; sys.exit(main(sys.argv[1:]))"


@dataclass(frozen=True)
class DemoServer:
    """A running registry: its URL, log key and registrar key."""

    url: str
    verifier: NoteVerifier
    registrar: SigningKey


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((_HOST, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def registry_process(folder: Path) -> Iterator[DemoServer]:
    """Generate keys in `folder`, serve ``folder/registry.sqlite``; stop it on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    log = write_log_key(folder / "log.skey", ORIGIN)
    registrar = SigningKey.generate()
    registrar.save(folder / "registrar.key")
    registrar.verifying_key.save(folder / "registrar.pub")
    port = _free_port()
    argv = [
        sys.executable, "-c", _MAIN, "registry", "serve",
        "--db", f"sqlite:///{folder / 'registry.sqlite'}",
        "--key", str(folder / "log.skey"), "--registrar", str(folder / "registrar.pub"),
        "--host", _HOST, "--port", str(port),
    ]  # fmt: skip
    url = f"http://{_HOST}:{port}"
    with (folder / "server.log").open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)  # noqa: S603
    try:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                msg = f"demo registry exited with {proc.returncode}; see {folder / 'server.log'}"
                raise CheckUnavailable(msg)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:  # noqa: PLR2004
                    break
            if time.monotonic() > deadline:
                msg = f"demo registry did not answer within {_START_TIMEOUT_S:g} s"
                raise CheckUnavailable(msg)
            time.sleep(0.1)
        yield DemoServer(url, log.verifier, registrar)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
