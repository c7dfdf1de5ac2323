"""A live registry server process on 127.0.0.1, for tests and benchmarks (private).

Usage::

    from computewatch.testing import RegistryKeys, registry_server

    keys = RegistryKeys.create(tmp_path)
    with registry_server(keys, "sqlite:///" + str(tmp_path / "r.db")) as server:
        client = RegistryClient(server.url, keys.log.verifier)

The server is ``computewatch registry serve`` in a child process (the real
CLI, uvicorn and FastAPI); `RegistryServer.kill` sends it SIGKILL and
`RegistryServer.start` starts it again on the same database and port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from computewatch.crypto import NoteSigner, SigningKey
from computewatch.supplychain import write_log_key

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = [
    "HOST",
    "ORIGIN",
    "START_TIMEOUT_S",
    "RegistryKeys",
    "RegistryServer",
    "free_port",
    "registry_server",
]

HOST = "127.0.0.1"
ORIGIN = "registry.test.computewatch/log"
START_TIMEOUT_S = 120.0  # generous: a loaded CI machine imports slowly
_OK = 200
_MAIN = "import sys; from computewatch.cli import main; sys.exit(main(sys.argv[1:]))"


@dataclass(frozen=True)
class RegistryKeys:
    """The registry's key files: its log note key and the registrar's key pair."""

    folder: Path
    log: NoteSigner
    registrar: SigningKey

    @property
    def log_key_file(self) -> Path:
        """The note key file (0600)."""
        return self.folder / "log.skey"

    @property
    def registrar_pub(self) -> Path:
        """The registrar's public key PEM."""
        return self.folder / "registrar.pub"

    @classmethod
    def create(cls, folder: Path, origin: str = ORIGIN) -> RegistryKeys:
        """Generate fresh keys into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        log = write_log_key(folder / "log.skey", origin)
        registrar = SigningKey.generate()
        registrar.verifying_key.save(folder / "registrar.pub")
        return cls(folder, log, registrar)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a server a test starts)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class RegistryServer:
    """A registry server child process."""

    keys: RegistryKeys
    db_url: str
    port: int
    log_path: Path
    args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Start the process and wait until ``/healthz`` answers.

        Raises:
            RuntimeError: It exited or did not answer within `START_TIMEOUT_S`.
        """
        argv = [
            sys.executable,
            "-c",
            _MAIN,
            "registry",
            "serve",
            "--db",
            self.db_url,
            "--key",
            str(self.keys.log_key_file),
            "--registrar",
            str(self.keys.registrar_pub),
            "--host",
            HOST,
            "--port",
            str(self.port),
            *self.args,
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)  # noqa: S603
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                msg = f"registry server exited with {self.proc.returncode}: {' | '.join(tail)}"
                raise RuntimeError(msg)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == _OK:
                    return
            time.sleep(0.05)
        self.kill()
        msg = f"registry server did not answer within {START_TIMEOUT_S:g} s; log {self.log_path}"
        raise RuntimeError(msg)

    def kill(self) -> None:
        """SIGKILL the process (no shutdown, no flushing) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """Stop the process gracefully (SIGTERM: queued writes finish), else SIGKILL."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def registry_server(
    keys: RegistryKeys, db_url: str, *, args: tuple[str, ...] = ()
) -> Iterator[RegistryServer]:
    """Run a registry server on a free port of 127.0.0.1; always stop it."""
    server = RegistryServer(keys, db_url, free_port(), keys.folder / "server.log", args)
    server.start()
    try:
        yield server
    finally:
        server.stop()
