"""The connection to a TPM 2.0 over TCP (the ``swtpm`` TCTI of tpm2-tss).

`Endpoint` parses ``tpm:HOST:PORT``; `connect` probes the port with one raw
TPM2_GetRandom within a bounded time (tpm2-tss itself waits forever), runs
TPM2_Startup if the TPM needs it and returns an ESAPI context; `tpm_call`
turns a tpm2-tss failure into a one-line `TpmError`. libtss2 logs its own
errors to stderr: `connect` sets ``TSS2_LOG=all+NONE`` unless ``TSS2_LOG``
is set, because every failure is reported once, as a `TpmError`.

The context talks to the TPM through `StreamTcti`. Like tpm2-tss's own
swtpm TCTI it connects afresh for every command (swtpm serves one
connection at a time, so two contexts on one TPM must take turns), but it
closes each connection with a reset once the answer is read: tpm2-tss's
orderly close left a TIME-WAIT socket behind every command (a trial of a
thousand steps left ~4,000 and the host ran short of ports). It also
bounds every answer's wait (`COMMAND_TIMEOUT_S`) and size.

What a TPM holds and how it is checked is in `computewatch.chip._tpm_layout`;
the secure element over both is `computewatch.chip._tpm.TpmSecureElement`.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import struct
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from tpm2_pytss import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    ESAPI,
    ESYS_TR,
    TPM2_SU,
)
from tpm2_pytss.TCTI import PyTCTI  # type: ignore[import-untyped,import-not-found,unused-ignore]
from tpm2_pytss.TSS2_Exception import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    TSS2_Exception,
)

from computewatch.errors import ComputeWatchError, FormatError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "COMMAND_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "Endpoint",
    "StreamTcti",
    "TpmError",
    "connect",
    "tpm_call",
]

_URI_RE = re.compile(
    r"tpm:(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?):(?P<port>\d{1,5})"
)
_MAX_PORT = 65534  # the swtpm TCTI also uses PORT + 1 (the control channel)
#: Default for how long `open` and `provision` wait for the TPM to connect and answer.
CONNECT_TIMEOUT_S: Final = 5.0
#: How long one TPM command may take to answer (key generation on a slow TPM: seconds).
COMMAND_TIMEOUT_S: Final = 60.0
# TPM2_GetRandom(8) without sessions: tag ST_NO_SESSIONS, size 12, CC 0x17B.
_PROBE_COMMAND = struct.pack(">HIIH", 0x8001, 12, 0x0000_017B, 8)
_RESPONSE_HEADER = struct.Struct(">HII")
_MAX_RESPONSE_BYTES = 4096
_RC_SUCCESS = 0x000
_RC_INITIALIZE = 0x100  # TPM_RC_INITIALIZE: TPM2_Startup has not run
_TPM_TAGS = (0x8001, 0x8002)


class TpmError(ComputeWatchError):
    """The TPM could not be reached, or refused or failed a command."""

    kind = "TPM error"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the TPM listens: ``host:port`` (commands) and ``port + 1`` (control)."""

    host: str
    port: int

    @classmethod
    def parse(cls, uri: object) -> Endpoint:
        """Parse ``tpm:HOST:PORT``.

        Raises:
            FormatError: Anything else.
        """
        match = _URI_RE.fullmatch(uri) if isinstance(uri, str) else None
        if match is None:
            msg = f"TPM URI {uri!r}: expected tpm:HOST:PORT (e.g. tpm:127.0.0.1:2321)"
            raise FormatError(msg)
        port = int(match["port"])
        if not 1 <= port <= _MAX_PORT:
            msg = f"TPM URI {uri!r}: expected a port in 1..{_MAX_PORT}, got {port}"
            raise FormatError(msg)
        return cls(match["host"], port)

    @property
    def uri(self) -> str:
        """The canonical URI."""
        return f"tpm:{self.host}:{self.port}"

    @property
    def tcti(self) -> str:
        """The tpm2-tss TCTI configuration string."""
        return f"swtpm:host={self.host},port={self.port}"

    def __str__(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"


def _recv_exact(sock: socket.socket, n: int, where: str) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            msg = f"{where}: connection closed after {len(data)} of {n} bytes (not a TPM?)"
            raise TpmError(msg)
        data += chunk
    return data


def probe(endpoint: Endpoint, timeout: float) -> int:
    """Send one raw TPM2_GetRandom and return the response code, within a bounded time.

    tpm2-tss waits forever for an answer; this check makes `open` fail fast
    on a port where nothing listens or something other than a TPM does.

    Raises:
        TpmError: No connection, no answer in time, or not a TPM 2.0 answer.
    """
    where = f"TPM at {endpoint}"
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as sock:
            sock.sendall(_PROBE_COMMAND)
            tag, size, rc = _RESPONSE_HEADER.unpack(_recv_exact(sock, _RESPONSE_HEADER.size, where))
            if tag not in _TPM_TAGS or not _RESPONSE_HEADER.size <= size <= _MAX_RESPONSE_BYTES:
                msg = f"{where}: not a TPM 2.0 (got response tag {tag:#06x}, size {size})"
                raise TpmError(msg)
            _recv_exact(sock, size - _RESPONSE_HEADER.size, where)
    except TimeoutError as e:
        msg = f"{where}: no answer within {timeout:g} s (is a TPM listening there?)"
        raise TpmError(msg) from e
    except OSError as e:
        msg = f"{where}: cannot connect ({e.strerror or e})"
        raise TpmError(msg) from e
    return int(rc)


#: What a `StreamTcti` callback raised in this thread, for `tpm_call` to raise in its place.
_RAISED = threading.local()


def _pending() -> BaseException | None:
    e: BaseException | None = getattr(_RAISED, "error", None)
    _RAISED.error = None
    return e


@contextlib.contextmanager
def tpm_call(endpoint: Endpoint, what: str) -> Iterator[None]:
    """Turn a tpm2-tss failure inside the block into a one-line `TpmError`.

    A failure of the link itself surfaces as its own `TpmError`, and a
    Ctrl-C or SIGTERM that arrived in the link's callback (where cffi
    would drop it) is raised here, after the command.
    """
    _pending()
    try:
        yield
    except TSS2_Exception as e:
        raised = _pending()
        if raised is not None and not isinstance(raised, TpmError):
            raise raised from e
        cause = e if raised is None else raised.message.removeprefix(f"TPM at {endpoint}: ")
        msg = f"TPM at {endpoint}: {what} failed ({cause})"
        raise TpmError(msg) from e
    raised = _pending()
    if raised is not None:
        raise raised


def _keep(e: BaseException) -> TpmError:
    """Keep what a callback raised for `tpm_call`; a `TpmError` for tpm2-tss to fail with."""
    _RAISED.error = e
    return e if isinstance(e, TpmError) else TpmError(f"interrupted ({type(e).__name__})")


class StreamTcti(PyTCTI):  # type: ignore[misc,unused-ignore]
    """A TCTI that sends each command over its own TCP connection, reset after (module docs)."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        """Commands go to ``endpoint``; each connection is made within ``timeout`` seconds."""
        super().__init__(max_size=_MAX_RESPONSE_BYTES)
        self._endpoint = endpoint
        self._where = f"TPM at {endpoint}"
        self._timeout = timeout
        self._sock: socket.socket | None = None

    def do_transmit(self, command: bytes) -> None:
        """Connect and send one command (what it raises waits for `tpm_call`)."""
        try:
            self._transmit(command)
        except BaseException as e:  # noqa: BLE001 - kept, and raised by tpm_call
            raise _keep(e) from None

    def do_receive(self, timeout: int) -> bytes:
        """Read one response (what it raises waits for `tpm_call`)."""
        del timeout  # ours is bounded (`COMMAND_TIMEOUT_S`) whatever the caller asks
        try:
            return self._receive()
        except BaseException as e:  # noqa: BLE001 - kept, and raised by tpm_call
            raise _keep(e) from None

    def _transmit(self, command: bytes) -> None:
        self.do_finalize()
        try:
            sock = socket.create_connection(
                (self._endpoint.host, self._endpoint.port), timeout=self._timeout
            )
        except OSError as e:
            msg = f"{self._where}: cannot connect ({e.strerror or e})"
            raise TpmError(msg) from e
        self._sock = sock
        sock.settimeout(COMMAND_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # closed with a reset once the answer is read: no TIME-WAIT socket left behind
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            sock.sendall(bytes(command))
        except OSError as e:
            self.do_finalize()
            msg = f"{self._where}: sending a command failed ({e.strerror or e})"
            raise TpmError(msg) from e

    def _receive(self) -> bytes:
        """One response (header, then the size it names), within `COMMAND_TIMEOUT_S`."""
        sock = self._sock
        if sock is None:
            msg = f"{self._where}: a response asked for with no command sent"
            raise TpmError(msg)
        try:
            header = _recv_exact(sock, _RESPONSE_HEADER.size, self._where)
            tag, size, _ = _RESPONSE_HEADER.unpack(header)
            if tag not in _TPM_TAGS or not _RESPONSE_HEADER.size <= size <= _MAX_RESPONSE_BYTES:
                msg = f"{self._where}: not a TPM 2.0 response (tag {tag:#06x}, size {size})"
                raise TpmError(msg)
            return header + _recv_exact(sock, size - _RESPONSE_HEADER.size, self._where)
        except TimeoutError as e:
            msg = f"{self._where}: no answer within {COMMAND_TIMEOUT_S:g} s"
            raise TpmError(msg) from e
        except OSError as e:
            msg = f"{self._where}: receiving a response failed ({e.strerror or e})"
            raise TpmError(msg) from e
        finally:
            self.do_finalize()

    def do_finalize(self) -> None:
        """Close the connection of the command in flight, if any."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class _Esapi(ESAPI):  # type: ignore[misc,unused-ignore]
    """An ESAPI context that closes its `StreamTcti` with it."""

    def __init__(self, tcti: StreamTcti) -> None:
        super().__init__(tcti)
        self._stream = tcti

    def close(self) -> None:
        super().close()
        self._stream.do_finalize()


def connect(endpoint: Endpoint, owner_auth: bytes, timeout: float) -> Any:
    """Return an ESAPI context on ``endpoint``, started and with ``owner_auth`` set."""
    os.environ.setdefault("TSS2_LOG", "all+NONE")  # errors surface as TpmError instead
    rc = probe(endpoint, timeout)
    if rc not in {_RC_SUCCESS, _RC_INITIALIZE}:
        msg = f"TPM at {endpoint}: TPM2_GetRandom answered with error {rc:#x}"
        raise TpmError(msg)
    with tpm_call(endpoint, "opening an ESAPI context"):
        esapi = _Esapi(StreamTcti(endpoint, timeout))
    try:
        with tpm_call(endpoint, "TPM2_Startup"):
            if rc == _RC_INITIALIZE:
                esapi.startup(TPM2_SU.CLEAR)
            if owner_auth:
                esapi.tr_set_auth(ESYS_TR.OWNER, bytes(owner_auth))
    except BaseException:
        esapi.close()
        raise
    return esapi
