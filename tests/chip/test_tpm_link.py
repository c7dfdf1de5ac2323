"""Reaching a TPM: URIs, refused and silent ports, and answers that are not a TPM's.

No TPM is needed: each test talks to a closed port, a silent listener or a
one-shot fake server on 127.0.0.1 (`computewatch.chip._tpm_link`).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pytest

from tests.chip.swtpm import require_tpm_stack, swtpm_server

require_tpm_stack()

from computewatch.chip._tpm import TpmError, TpmSecureElement  # noqa: E402
from computewatch.chip._tpm_link import StreamTcti  # noqa: E402
from computewatch.errors import FormatError  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "tpm:",
        "tpm:127.0.0.1",
        "tpm:127.0.0.1:",
        "tpm::2321",
        "tpm:127.0.0.1:port",
        "tpm:127.0.0.1:0",
        "tpm:127.0.0.1:65535",
        "tpm:127.0.0.1:99999",
        "tpm://127.0.0.1:2321",
        "tpm:127.0.0.1:2321/x",
        "tpm:host,port=1:2321",
        "tpm:-bad:2321",
        "file:/tmp/x",
        "127.0.0.1:2321",
    ],
)
def test_bad_uri_is_format_error(uri: str) -> None:
    with pytest.raises(FormatError, match="expected") as info:
        TpmSecureElement.open(uri)
    assert "\n" not in info.value.diagnostics()


def test_non_string_uri_is_format_error() -> None:
    with pytest.raises(FormatError):
        TpmSecureElement.open(2321)  # type: ignore[arg-type]


def test_nothing_listening_fails_fast_with_one_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        started = time.monotonic()
        with pytest.raises(TpmError, match="cannot connect") as info:
            TpmSecureElement.open(f"tpm:127.0.0.1:{port}")
    assert time.monotonic() - started < 3
    assert info.value.diagnostics().count("\n") == 0


def test_silent_listener_times_out_instead_of_hanging() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(TpmError, match=r"no answer within 0\.5 s"):
            TpmSecureElement.open(f"tpm:127.0.0.1:{port}", connect_timeout=0.5)
    assert time.monotonic() - started < 3


@contextmanager
def fake_server(reply: bytes) -> Iterator[int]:
    """A one-shot TCP server on 127.0.0.1 that reads a little, sends ``reply`` and hangs up."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer() -> None:
            peer, _ = server.accept()
            with peer:
                peer.recv(64)
                peer.sendall(reply)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        yield server.getsockname()[1]
        thread.join(timeout=5)


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (b"", r"connection closed after 0 of 10 bytes \(not a TPM\?\)"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", r"not a TPM 2\.0 \(got response tag 0x4854"),
        (struct.pack(">HII", 0x8001, 10, 0x101), r"TPM2_GetRandom answered with error 0x101"),
        (struct.pack(">HII", 0x8001, 14, 0), r"connection closed after 0 of 4 bytes"),
    ],
)
def test_something_other_than_a_working_tpm_is_rejected(reply: bytes, match: str) -> None:
    with fake_server(reply) as port, pytest.raises(TpmError, match=match) as info:
        TpmSecureElement.open(f"tpm:127.0.0.1:{port}", connect_timeout=2)
    assert info.value.diagnostics().startswith(f"TPM error: TPM at 127.0.0.1:{port}: ")


@contextmanager
def fake_tpm(reply: bytes) -> Iterator[int]:
    """A server that answers the probe as a TPM would, then every later command with ``reply``."""
    probe_answer = struct.pack(">HIIH", 0x8001, 20, 0, 8) + bytes(8)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.05)
        done = threading.Event()

        def answer() -> None:
            n = 0  # the probe, then what ESAPI sends (one command is enough)
            deadline = time.monotonic() + 10
            while n < 3 and not done.is_set() and time.monotonic() < deadline:
                try:
                    peer, _ = server.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                with peer:
                    peer.settimeout(5)
                    peer.recv(4096)
                    peer.sendall(probe_answer if n == 0 else reply)
                n += 1

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        try:
            yield server.getsockname()[1]
        finally:
            done.set()  # the link may send fewer commands than the server would answer
            thread.join(timeout=10)


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (b"garbage!!!", r"not a TPM 2\.0 response \(tag 0x6761"),
        (struct.pack(">HII", 0x8001, 1 << 20, 0), r"size 1048576"),
        (struct.pack(">HII", 0x8001, 30, 0), r"connection closed after 0 of 20 bytes"),
    ],
)
def test_a_bad_answer_after_the_probe_is_the_links_own_one_line_error(
    reply: bytes, match: str
) -> None:
    with fake_tpm(reply) as port, pytest.raises(TpmError, match=match) as info:
        TpmSecureElement.open(f"tpm:127.0.0.1:{port}", connect_timeout=2)
    assert info.value.diagnostics().count("\n") == 0


def test_an_interrupt_inside_the_link_is_raised_after_the_command_not_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with swtpm_server(tmp_path / "tpm") as (host, port):
        se = TpmSecureElement.provision(f"tpm:{host}:{port}", "CW-INT-1")
        try:
            before = se.read_clock()

            def interrupted(_: StreamTcti) -> bytes:
                raise KeyboardInterrupt

            monkeypatch.setattr(StreamTcti, "_receive", interrupted)
            with pytest.raises(KeyboardInterrupt):
                se.read_clock()
            monkeypatch.undo()
            with pytest.raises(TpmError, match="TPM2_ReadClock failed"):  # ESAPI wants a reopen
                se.read_clock()
        finally:
            se.close()
        with TpmSecureElement.open(f"tpm:{host}:{port}") as again:
            assert again.read_clock().clock_ms >= before.clock_ms
