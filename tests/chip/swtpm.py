"""Run a throwaway swtpm TPM 2.0 simulator on 127.0.0.1 for tests.

Usage in a test module::

    from tests.chip.swtpm import require_tpm_stack, swtpm_server

    require_tpm_stack()  # skip (or, under CI=true, fail) if swtpm or tpm2-pytss is missing


    @pytest.fixture
    def tpm_uri(tmp_path):
        with swtpm_server(tmp_path / "tpm") as (host, port):
            yield f"tpm:{host}:{port}"

`swtpm_server` starts ``swtpm socket --tpm2`` on two free consecutive ports
(commands on PORT, control on PORT + 1, as the swtpm TCTI expects), waits
until it answers a TPM command, and always stops it. The state folder
survives, so a second `swtpm_server` on the same folder is the same TPM
after a power cycle.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import struct
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

__all__ = ["HOST", "SwtpmError", "require_tpm_stack", "swtpm_server"]

HOST = "127.0.0.1"
#: How long to wait for swtpm to answer before giving up.
START_TIMEOUT_S = 10.0
#: How long to wait for swtpm to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT_S = 5.0
_START_ATTEMPTS = 5  # a port taken between our check and swtpm's bind: retry
# TPM2_GetRandom(8) without sessions; any well-formed answer means "ready".
_GET_RANDOM = struct.pack(">HIIH", 0x8001, 12, 0x0000_017B, 8)
_TPM_TAGS = (0x8001, 0x8002)
_HEADER_BYTES = 10


class SwtpmError(RuntimeError):
    """swtpm did not start, or did not answer in time."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1", "yes"}


def require_tpm_stack() -> None:
    """Skip the calling test module if swtpm or tpm2-pytss is missing.

    Under CI (``CI=true``) a missing install fails instead, so the TPM tests
    can never pass by not running. Install with
    ``scripts/install-system-deps.sh`` and the ``tpm`` extra.
    """
    missing = []
    if shutil.which("swtpm") is None:
        missing.append("the swtpm binary (apt-get install swtpm)")
    if importlib.util.find_spec("tpm2_pytss") is None:
        missing.append("the tpm2-pytss package (pip install 'computewatch[tpm]')")
    if not missing:
        return
    reason = f"TPM tests need {' and '.join(missing)}; see scripts/install-system-deps.sh"
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: refusing to skip)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def _free_port_pair() -> int:
    """Return a port P such that P and P + 1 are both free on `HOST` right now."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind((HOST, 0))
            port = int(first.getsockname()[1])
            if port >= 65535:  # P + 1 must be a port too
                continue
            with socket.socket() as second:
                try:
                    second.bind((HOST, port + 1))
                except OSError:
                    continue
                return port
    msg = f"no two consecutive free TCP ports on {HOST}"
    raise SwtpmError(msg)


def _answers(port: int) -> bool:
    """Whether a TPM on ``port`` answers TPM2_GetRandom (False if not yet listening)."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.sendall(_GET_RANDOM)
            header = b""
            while len(header) < _HEADER_BYTES:
                chunk = sock.recv(_HEADER_BYTES - len(header))
                if not chunk:
                    return False
                header += chunk
    except OSError:
        return False
    tag, _, _ = struct.unpack(">HII", header)
    return tag in _TPM_TAGS


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start(state_dir: Path, log: Path, flags: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start swtpm on fresh ports and wait until it answers; return it and its port."""
    swtpm = shutil.which("swtpm")
    if swtpm is None:
        msg = "swtpm is not installed (apt-get install swtpm)"
        raise SwtpmError(msg)
    last = ""
    for _ in range(_START_ATTEMPTS):
        port = _free_port_pair()
        argv = [
            swtpm,
            "socket",
            "--tpm2",
            "--server",
            f"type=tcp,port={port},bindaddr={HOST}",
            "--ctrl",
            f"type=tcp,port={port + 1},bindaddr={HOST}",
            "--tpmstate",
            f"dir={state_dir}",
            "--flags",
            flags,
            "--log",
            f"file={log},level=1",
        ]
        with log.open("ab") as err:
            proc = subprocess.Popen(argv, stdout=err, stderr=err, stdin=subprocess.DEVNULL)  # noqa: S603 - fixed argv
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break  # exited: most likely a port race; try other ports
            if _answers(port):
                return proc, port
            time.sleep(0.02)
        else:
            _stop(proc)
            msg = f"swtpm on {HOST}:{port} did not answer within {START_TIMEOUT_S:g} s; log {log}"
            raise SwtpmError(msg)
        lines = log.read_text(errors="replace").strip().splitlines()
        last = lines[-1] if lines else f"exit status {proc.returncode}"
    msg = f"swtpm failed to start {_START_ATTEMPTS} times; last error: {last} (log {log})"
    raise SwtpmError(msg)


@contextlib.contextmanager
def swtpm_server(
    state_dir: Path, *, flags: str = "not-need-init,startup-clear"
) -> Iterator[tuple[str, int]]:
    """Run swtpm with its TPM state in ``state_dir``; yield ``(host, port)``.

    The process is always stopped on exit (SIGTERM, then SIGKILL after
    `STOP_TIMEOUT_S`). ``state_dir`` is created if needed and kept.
    ``flags`` go to ``swtpm --flags``; ``"not-need-init"`` alone gives a
    TPM that still needs TPM2_Startup, as after a real power-on.

    Raises:
        SwtpmError: swtpm is missing, cannot start, or does not answer
            within `START_TIMEOUT_S`.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    proc, port = _start(state_dir, state_dir.parent / f"{state_dir.name}.swtpm.log", flags)
    try:
        yield HOST, port
    finally:
        _stop(proc)
