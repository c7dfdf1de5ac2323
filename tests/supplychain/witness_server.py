"""Run live `computewatch witness serve` processes on 127.0.0.1 for tests and benchmarks.

Usage::

    with witness_servers(tmp_path, [log_signer.verifier], n=3) as witnesses:
        policy = witness_policy(log_signer.verifier, witnesses, quorum=2)

Each server is the real CLI (uvicorn, FastAPI, SQLite state); `WitnessServer.kill`
sends SIGKILL and `WitnessServer.start` starts it again on the same state file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from computewatch.supplychain import write_cosigner_key
from tests.supplychain.server import HOST, START_TIMEOUT_S, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from computewatch.crypto import Cosigner, NoteVerifier

__all__ = ["WitnessServer", "witness_policy", "witness_servers"]

#: Start-up budget: generous, the test machines are shared and loaded.
WAIT_S = START_TIMEOUT_S
_MAIN = "import sys; from computewatch.cli import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class WitnessServer:
    """A witness server child process with its key and state file."""

    name: str
    cosigner: Cosigner
    key_file: Path
    db: Path
    logs: tuple[NoteVerifier, ...]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def url(self) -> str:
        """The submission prefix."""
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        """Start the process and wait until ``/healthz`` answers.

        Raises:
            RuntimeError: It exited or did not answer in time.
        """
        self.launch()
        self.wait()

    def launch(self) -> None:
        """Start the process (without waiting for it)."""
        argv = [sys.executable, "-c", _MAIN, "witness", "serve", "--db", str(self.db)]
        argv += ["--key", str(self.key_file), "--host", HOST, "--port", str(self.port)]
        for log in self.logs:
            argv += ["--log", log.vkey]
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL)  # noqa: S603

    def wait(self) -> None:
        """Wait until ``/healthz`` answers.

        Raises:
            RuntimeError: It exited or did not answer within `WAIT_S`.
        """
        if self.proc is None:
            msg = "witness server: not launched"
            raise RuntimeError(msg)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
                msg = f"witness server exited with {self.proc.returncode}: {' | '.join(tail)}"
                raise RuntimeError(msg)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        self.kill()
        msg = f"witness server did not answer within {WAIT_S:g} s; log {self.log_path}"
        raise RuntimeError(msg)

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM, else SIGKILL."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def witness_servers(
    folder: Path, logs: Sequence[NoteVerifier], n: int = 3, *, start: bool = True
) -> Iterator[list[WitnessServer]]:
    """``n`` witness servers following ``logs``, each with a fresh Ed25519 key; always stopped."""
    servers = []
    for i in range(n):
        home = folder / f"witness-{i}"
        home.mkdir(parents=True, exist_ok=True)
        name = f"w{i}.witness.test"
        cosigner = write_cosigner_key(home / "key", name)
        servers.append(
            WitnessServer(
                name,
                cosigner,
                home / "key",
                home / "state.db",
                tuple(logs),
                free_port(),
                home / "server.log",
            )
        )
    try:
        if start:  # launched together: on a loaded machine imports dominate start-up
            for s in servers:
                s.launch()
            for s in servers:
                s.wait()
        yield servers
    finally:
        for s in servers:
            s.stop()


def witness_policy(log: NoteVerifier, witnesses: Sequence[WitnessServer], quorum: int) -> str:
    """A tlog-policy text: the log, the witnesses with their URLs, a k-of-n quorum."""
    lines = [f"log {log.vkey}"]
    lines += [f"witness {w.name} {w.cosigner.key.vkey} {w.url}" for w in witnesses]
    lines += [f"group all-witnesses {quorum} {' '.join(w.name for w in witnesses)}"]
    return "\n".join([*lines, "quorum all-witnesses"]) + "\n"
