r"""The TPM 2.0 secure element (URI ``tpm:HOST:PORT``).

The chip's secrets live in a TPM 2.0 reached over TCP through the ``swtpm``
TCTI of tpm2-tss (``swtpm`` in tests; the paper's §4 suggests the host CPU's
TPM mated to the accelerator). The identity key is generated inside the TPM
and never leaves it. Everything sits at fixed handles in the owner
hierarchy, so ``tpm2-tools`` can inspect it (``tpm2_nvreadpublic``,
``tpm2_readpublic -c 0x81004357``):

==========================  ====================================================
handle                      what
==========================  ====================================================
``0x81004357`` persistent   identity key: ECC NIST P-256, ECDSA/SHA-256;
                            fixedTPM, fixedParent, sensitiveDataOrigin,
                            userWithAuth, sign (a primary key of the owner
                            hierarchy made persistent with EvictControl)
``0x01004300`` NV ordinary  burned-in serial (UTF-8): WRITEDEFINE + WRITEALL,
                            written once and NV_WriteLock-ed, so it stays
                            read-only until the index is deleted
``0x01004301`` NV ordinary  sealed state: magic ``CWS1`` ‖ u32 length ‖
                            SHA-256(data) ‖ data, written in one NV_Write
``0x01004310`` NV counter   counter ``boot``
``0x01004311`` NV counter   counter ``firmware``
``0x01004312`` NV counter   counter ``log``
``0x01100000``-             any other counter name: slot
``0x011FFFFF`` NV counter   ``SHA-256("computewatch/tpm/counter\0" ‖ name)``
                            mod 2**20, defined on its first increment
==========================  ====================================================

NV indices are owner-read/owner-write (``NO_DA``; the serial and counters are
also readable with their empty index auth). Counters are TPM NV counters
(``TPMA_NV_COUNTER``): the TPM only ever adds one, and has no command that
lowers them. A counter index reads as 0 before its first increment (the TPM
reports it *uninitialized*). The TPM initialises a counter on its first
increment to one more than the highest value any *deleted* counter ever
held (TPM 2.0 Part 1, "NV Counters"), so deleting and redefining a counter
cannot roll it back. On a fresh TPM counters therefore count 1, 2, 3, ...;
on a TPM where counter indices were deleted before, a counter's first
increment may jump higher. The three named counters are defined at
provisioning and their absence is reported as tampering; the hashed slots of
other names are created on demand, so two names may (with probability about
k²/2²¹ for k names) share a counter, which can only make it larger.

What it promises: code without the owner authorization cannot change the
serial, the key, the state or the counters except through these methods;
the serial cannot be rewritten at all, and counters never decrease. Every
open re-checks the type and attributes of each object (a counter replaced by
an ordinary index, or an unlocked serial, is an `IntegrityError`). Not done
here: parameter encryption and response HMACs (a salted session bound to an
endorsement key), which a deployment on a real TPM reached over a bus the
Prover controls would add.

Authorization: by default the owner hierarchy has an empty authorization
(as swtpm starts); pass ``owner_auth`` to `TpmSecureElement.provision` and
`TpmSecureElement.open` where it has one. libtss2 logs its own errors to
stderr; this module sets ``TSS2_LOG=all+NONE`` unless ``TSS2_LOG`` is set,
because every failure is reported once, as a `TpmError`.

Example::

    se = TpmSecureElement.provision("tpm:127.0.0.1:2321", "CW-0001")
    signature = se.sign(b"hello")  # DER ECDSA over SHA-256(b"hello")
    se.increment_counter("boot")  # 1 on a fresh TPM
    se.close()
    with TpmSecureElement.open("tpm:127.0.0.1:2321") as se:
        assert se.read_counter("boot") == 1

Not thread-safe: give each thread its own element.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import struct
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from tpm2_pytss import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    ESAPI,
    ESYS_TR,
    TPM2_ALG,
    TPM2_CAP,
    TPM2_ECC,
    TPM2_NT,
    TPM2_PT_NV,
    TPM2_SU,
    TPM2B_NV_PUBLIC,
    TPM2B_PUBLIC,
    TPMA_NV,
    TPMA_OBJECT,
    TPMS_NV_PUBLIC,
    TPMT_PUBLIC,
    TPMT_SIG_SCHEME,
)
from tpm2_pytss.TSS2_Exception import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    TSS2_Exception,
)

from computewatch.chip._interface import ChipSerial, SecureElement
from computewatch.crypto import VerifyingKey
from computewatch.errors import ComputeWatchError, FormatError, IntegrityError, ParameterError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from types import TracebackType

__all__ = ["TpmError", "TpmSecureElement"]

#: Persistent handle of the identity key (owner range; "CW" = 0x43 0x57).
KEY_HANDLE: Final = 0x8100_4357
#: NV index of the burned-in serial.
SERIAL_NV_INDEX: Final = 0x0100_4300
#: NV index of the sealed state blob.
STATE_NV_INDEX: Final = 0x0100_4301
#: NV counter indices of the counters defined at provisioning.
COUNTER_NV_INDICES: Final[Mapping[str, int]] = MappingProxyType(
    {"boot": 0x0100_4310, "firmware": 0x0100_4311, "log": 0x0100_4312}
)
#: First NV index of the hashed counter slots (other counter names).
HASHED_COUNTER_BASE: Final = 0x0110_0000
_HASHED_COUNTER_SLOTS = 1 << 20
_COUNTER_DOMAIN = b"computewatch/tpm/counter\x00"
_MAX_COUNTER_NAME = 32  # as the file backend

_MAX_SERIAL_CHARS = 64
_STATE_MAGIC = b"CWS1"
_STATE_HEADER = struct.Struct(">4sI32s")
_STATE_INDEX_SIZE = _STATE_HEADER.size + SecureElement.MAX_STATE_BYTES
_COUNTER_BYTES = 8
_MAX_RANDOM_BYTES = 1 << 20
_RANDOM_CHUNK = 64  # a TPM returns at most its largest digest size per call; the loop takes less

_URI_RE = re.compile(
    r"tpm:(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?):(?P<port>\d{1,5})"
)
_MAX_PORT = 65534  # the swtpm TCTI also uses PORT + 1 (the control channel)
#: Default for how long `open` and `provision` wait for the TPM to connect and answer.
CONNECT_TIMEOUT_S: Final = 5.0
# TPM2_GetRandom(8) without sessions: tag ST_NO_SESSIONS, size 12, CC 0x17B.
_PROBE_COMMAND = struct.pack(">HIIH", 0x8001, 12, 0x0000_017B, 8)
_RESPONSE_HEADER = struct.Struct(">HII")
_MAX_RESPONSE_BYTES = 4096
_RC_SUCCESS = 0x000
_RC_INITIALIZE = 0x100  # TPM_RC_INITIALIZE: TPM2_Startup has not run
_TPM_TAGS = (0x8001, 0x8002)

_NV_BASE_ATTRS = TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.NO_DA
_NT_SHIFT = int(TPMA_NV.TPM2_NT_SHIFT)
_COUNTER_ATTRS = _NV_BASE_ATTRS | TPMA_NV.AUTHREAD | (TPM2_NT.COUNTER << _NT_SHIFT)
_STATE_ATTRS = _NV_BASE_ATTRS | (TPM2_NT.ORDINARY << _NT_SHIFT)
_SERIAL_ATTRS = (
    _NV_BASE_ATTRS
    | TPMA_NV.AUTHREAD
    | TPMA_NV.WRITEDEFINE
    | TPMA_NV.WRITEALL
    | (TPM2_NT.ORDINARY << _NT_SHIFT)
)
_KEY_ATTRS = (
    TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.SIGN_ENCRYPT
)


class TpmError(ComputeWatchError):
    """The TPM could not be reached, or refused or failed a command."""

    kind = "TPM error"


@dataclass(frozen=True, slots=True)
class _Endpoint:
    """Where the TPM listens: ``host:port`` (commands) and ``port + 1`` (control)."""

    host: str
    port: int

    @classmethod
    def parse(cls, uri: object) -> _Endpoint:
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


def _probe(endpoint: _Endpoint, timeout: float) -> int:
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


@contextlib.contextmanager
def _tpm_call(endpoint: _Endpoint, what: str) -> Iterator[None]:
    """Turn a tpm2-tss failure inside the block into a one-line `TpmError`."""
    try:
        yield
    except TSS2_Exception as e:
        msg = f"TPM at {endpoint}: {what} failed ({e})"
        raise TpmError(msg) from e


def _connect(endpoint: _Endpoint, owner_auth: bytes, timeout: float) -> Any:
    """Return an ESAPI context on ``endpoint``, started and with ``owner_auth`` set."""
    os.environ.setdefault("TSS2_LOG", "all+NONE")  # errors surface as TpmError instead
    rc = _probe(endpoint, timeout)
    if rc not in {_RC_SUCCESS, _RC_INITIALIZE}:
        msg = f"TPM at {endpoint}: TPM2_GetRandom answered with error {rc:#x}"
        raise TpmError(msg)
    with _tpm_call(endpoint, f"connecting through TCTI {endpoint.tcti!r}"):
        esapi = ESAPI(endpoint.tcti)
    try:
        with _tpm_call(endpoint, "TPM2_Startup"):
            if rc == _RC_INITIALIZE:
                esapi.startup(TPM2_SU.CLEAR)
            if owner_auth:
                esapi.tr_set_auth(ESYS_TR.OWNER, bytes(owner_auth))
    except BaseException:
        esapi.close()
        raise
    return esapi


def _check_serial(serial: object) -> bytes:
    if not (
        isinstance(serial, str)
        and 0 < len(serial) <= _MAX_SERIAL_CHARS
        and serial.isprintable()
        and serial.strip() == serial
    ):
        msg = f"chip serial: expected 1-{_MAX_SERIAL_CHARS} printable characters, got {serial!r}"
        raise FormatError(msg)
    return serial.encode()


def _counter_index(name: object) -> int:
    """The NV index of counter ``name`` (see the module docs).

    Raises:
        ParameterError: ``name`` is not an identifier of at most 32 characters.
    """
    if not (isinstance(name, str) and 0 < len(name) <= _MAX_COUNTER_NAME and name.isidentifier()):
        msg = (
            f"counter name: expected an identifier of at most {_MAX_COUNTER_NAME} chars, "
            f"got {name!r}"
        )
        raise ParameterError(msg)
    if name in COUNTER_NV_INDICES:
        return COUNTER_NV_INDICES[name]
    digest = hashlib.sha256(_COUNTER_DOMAIN + name.encode()).digest()
    return HASHED_COUNTER_BASE + int.from_bytes(digest[:4], "big") % _HASHED_COUNTER_SLOTS


def _as_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        msg = f"{what}: expected bytes, got {type(value).__name__}"
        raise ParameterError(msg)
    return bytes(value)


def _check_count(n: object) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= _MAX_RANDOM_BYTES:
        msg = f"random_bytes: expected a count in 0..{_MAX_RANDOM_BYTES}, got {n!r}"
        raise ParameterError(msg)
    return n


def _key_template() -> Any:
    """The TPM2B_PUBLIC template of the identity key."""
    public = TPM2B_PUBLIC(
        TPMT_PUBLIC(type=TPM2_ALG.ECC, nameAlg=TPM2_ALG.SHA256, objectAttributes=_KEY_ATTRS)
    )
    ecc = public.publicArea.parameters.eccDetail
    ecc.symmetric.algorithm = TPM2_ALG.NULL
    ecc.scheme.scheme = TPM2_ALG.ECDSA
    ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG.SHA256
    ecc.curveID = TPM2_ECC.NIST_P256
    ecc.kdf.scheme = TPM2_ALG.NULL
    return public


def _nv_template(index: int, attributes: int, size: int) -> Any:
    return TPM2B_NV_PUBLIC(
        nvPublic=TPMS_NV_PUBLIC(
            nvIndex=index, nameAlg=TPM2_ALG.SHA256, attributes=attributes, dataSize=size
        )
    )


class TpmSecureElement(SecureElement):
    """A secure element in a TPM 2.0 (see the module docs for the layout).

    Use `provision` once per TPM, then `open`. The element holds one
    connection; `close` it, or use it as a context manager.
    """

    KEY_HANDLE = KEY_HANDLE
    SERIAL_NV_INDEX = SERIAL_NV_INDEX
    STATE_NV_INDEX = STATE_NV_INDEX
    COUNTER_NV_INDICES = COUNTER_NV_INDICES

    def __init__(self, esapi: Any, endpoint: _Endpoint) -> None:
        """Use `provision` or `open`; this adopts an open ESAPI context and verifies the TPM.

        Raises:
            FormatError: The TPM is not provisioned.
            IntegrityError: An object is missing or has the wrong type or
                attributes.
            TpmError: A TPM command failed.
        """
        self._esapi: Any = esapi
        self._endpoint = endpoint
        self._handles: dict[int, Any] = {}
        with self._call("reading the provisioned objects"):
            if not self._exists(SERIAL_NV_INDEX):
                msg = (
                    f"TPM at {endpoint}: not provisioned (no serial at NV index "
                    f"{SERIAL_NV_INDEX:#010x}); call TpmSecureElement.provision first"
                )
                raise FormatError(msg)
            self._serial = self._read_serial()
            self._public_pem = self._read_public_key()
            self._nv_public(STATE_NV_INDEX, _STATE_ATTRS, _STATE_INDEX_SIZE, required=True)
            for index in COUNTER_NV_INDICES.values():
                self._nv_public(index, _COUNTER_ATTRS, _COUNTER_BYTES, required=True)

    # -- lifecycle ---------------------------------------------------------

    @classmethod
    def provision(
        cls,
        uri: str,
        serial: str,
        *,
        owner_auth: bytes = b"",
        connect_timeout: float = CONNECT_TIMEOUT_S,
    ) -> Self:
        """Create the identity key, serial, state and counters in a blank TPM.

        Args:
            uri: ``tpm:HOST:PORT``.
            serial: The burned-in serial: 1-64 printable characters.
            owner_auth: The owner hierarchy's authorization value.
            connect_timeout: Seconds to wait for the TPM to accept the
                connection and answer a first command.

        Returns:
            The element, open.

        Raises:
            FormatError: A bad URI or serial, or the TPM is already
                (even partly) provisioned.
            TpmError: The TPM is unreachable, its NV buffer is too small, or
                a command failed.
        """
        endpoint = _Endpoint.parse(uri)
        serial_bytes = _check_serial(serial)
        esapi = _connect(endpoint, owner_auth, connect_timeout)
        try:
            with _tpm_call(endpoint, "provisioning"):
                _provision(esapi, endpoint, serial_bytes)
            return cls(esapi, endpoint)
        except BaseException:
            esapi.close()
            raise

    @classmethod
    def open(
        cls, uri: str, *, owner_auth: bytes = b"", connect_timeout: float = CONNECT_TIMEOUT_S
    ) -> Self:
        """Connect to a provisioned TPM and check its objects.

        Args:
            uri: ``tpm:HOST:PORT``.
            owner_auth: The owner hierarchy's authorization value.
            connect_timeout: Seconds to wait for the TPM to accept the
                connection and answer a first command.

        Returns:
            The element, open.

        Raises:
            FormatError: A bad URI, or the TPM is not provisioned.
            IntegrityError: A provisioned object is missing or was replaced.
            TpmError: The TPM is unreachable or silent (reported after at
                most ``connect_timeout``), or a command failed.
        """
        endpoint = _Endpoint.parse(uri)
        esapi = _connect(endpoint, owner_auth, connect_timeout)
        try:
            return cls(esapi, endpoint)
        except BaseException:
            esapi.close()
            raise

    def close(self) -> None:
        """Close the connection (idempotent)."""
        esapi, self._esapi = self._esapi, None
        if esapi is not None:
            esapi.close()

    def __enter__(self) -> Self:
        """Return the element itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the connection."""
        self.close()

    def __repr__(self) -> str:
        """``TpmSecureElement(uri=..., serial=...)``."""
        return f"TpmSecureElement(uri={self.uri!r}, serial={self._serial!r})"

    # -- SecureElement -----------------------------------------------------

    @property
    def uri(self) -> str:
        """``tpm:HOST:PORT``."""
        return self._endpoint.uri

    @property
    def serial(self) -> ChipSerial:
        """The burned-in serial (read, and checked write-locked, at open)."""
        return self._serial

    @property
    def public_key(self) -> VerifyingKey:
        """The identity public key (P-256), as a `VerifyingKey`."""
        return VerifyingKey.from_pem(self._public_pem)

    def public_key_pem(self) -> bytes:
        """The identity public key as SubjectPublicKeyInfo PEM (ECC NIST P-256)."""
        return self._public_pem

    def sign(self, message: bytes) -> bytes:
        """Sign SHA-256(``message``) with the identity key inside the TPM.

        Returns:
            A DER ECDSA signature: ``public_key.verify(sig, message,
            ec.ECDSA(hashes.SHA256()))`` accepts it.
        """
        digest = hashlib.sha256(_as_bytes(message, "sign: message")).digest()
        with self._call("TPM2_Sign"):
            signature = self._esapi.sign(
                self._handle(KEY_HANDLE), digest, TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL)
            )
        if signature.sigAlg != TPM2_ALG.ECDSA:
            msg = f"TPM at {self._endpoint}: expected an ECDSA signature, got {signature.sigAlg}"
            raise IntegrityError(msg)
        ecdsa = signature.signature.ecdsa
        r = int.from_bytes(bytes(ecdsa.signatureR), "big")
        s = int.from_bytes(bytes(ecdsa.signatureS), "big")
        return encode_dss_signature(r, s)

    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` bytes from the TPM's RNG (TPM2_GetRandom, in chunks).

        Raises:
            ParameterError: ``n`` is not an int in 0..2**20.
        """
        n = _check_count(n)
        out = bytearray()
        with self._call("TPM2_GetRandom"):
            while len(out) < n:
                chunk = bytes(self._esapi.get_random(min(_RANDOM_CHUNK, n - len(out))))
                if not chunk:
                    msg = f"TPM at {self._endpoint}: TPM2_GetRandom returned no bytes"
                    raise TpmError(msg)
                out += chunk
        return bytes(out[:n])

    def read_counter(self, name: str) -> int:
        """Return counter ``name``; 0 before its first increment.

        Raises:
            ParameterError: A bad counter name.
            IntegrityError: The counter's NV index is missing (for a named
                counter) or is not an NV counter.
        """
        index = _counter_index(name)
        with self._call(f"reading counter {name!r}"):
            public = self._nv_public(
                index, _COUNTER_ATTRS, _COUNTER_BYTES, required=name in COUNTER_NV_INDICES
            )
            if public is None or not public.attributes & TPMA_NV.WRITTEN:
                return 0
            data = self._esapi.nv_read(self._handle(index), _COUNTER_BYTES, 0, ESYS_TR.OWNER)
        return int.from_bytes(bytes(data), "big")

    def increment_counter(self, name: str) -> int:
        """Add one to counter ``name`` (TPM2_NV_Increment) and return the new value.

        Raises:
            ParameterError: A bad counter name.
            IntegrityError: As for `read_counter`.
        """
        index = _counter_index(name)
        with self._call(f"incrementing counter {name!r}"):
            public = self._nv_public(
                index, _COUNTER_ATTRS, _COUNTER_BYTES, required=name in COUNTER_NV_INDICES
            )
            if public is None:
                self._handles[index] = self._esapi.nv_define_space(
                    None, _nv_template(index, _COUNTER_ATTRS, _COUNTER_BYTES)
                )
            self._esapi.nv_increment(self._handle(index), ESYS_TR.OWNER)
        return self.read_counter(name)

    def read_state(self) -> bytes:
        """Return the sealed state blob (``b""`` if never written).

        Raises:
            IntegrityError: The stored blob is malformed or its digest does
                not match.
        """
        where = f"TPM at {self._endpoint}: sealed state (NV index {STATE_NV_INDEX:#010x})"
        with self._call("reading the sealed state"):
            public = self._nv_public(STATE_NV_INDEX, _STATE_ATTRS, _STATE_INDEX_SIZE, required=True)
            if not public.attributes & TPMA_NV.WRITTEN:
                return b""
            blob = bytes(
                self._esapi.nv_read(
                    self._handle(STATE_NV_INDEX), _STATE_INDEX_SIZE, 0, ESYS_TR.OWNER
                )
            )
        magic, length, digest = _STATE_HEADER.unpack_from(blob)
        if magic != _STATE_MAGIC or length > self.MAX_STATE_BYTES:
            msg = f"{where}: malformed header (magic {magic!r}, length {length})"
            raise IntegrityError(msg)
        data = blob[_STATE_HEADER.size : _STATE_HEADER.size + length]
        actual = hashlib.sha256(data).digest()
        if actual != digest:
            msg = (
                f"{where}: digest mismatch (expected sha256:{digest.hex()}, "
                f"got sha256:{actual.hex()})"
            )
            raise IntegrityError(msg)
        return data

    def write_state(self, data: bytes) -> None:
        """Replace the sealed state blob in one NV_Write (so never half-written).

        Raises:
            ParameterError: ``data`` is longer than `MAX_STATE_BYTES`.
        """
        data = _as_bytes(data, "sealed state")
        if len(data) > self.MAX_STATE_BYTES:
            msg = f"sealed state: expected at most {self.MAX_STATE_BYTES} bytes, got {len(data)}"
            raise ParameterError(msg)
        blob = _STATE_HEADER.pack(_STATE_MAGIC, len(data), hashlib.sha256(data).digest()) + data
        with self._call("writing the sealed state"):
            self._nv_public(STATE_NV_INDEX, _STATE_ATTRS, _STATE_INDEX_SIZE, required=True)
            self._esapi.nv_write(self._handle(STATE_NV_INDEX), blob, 0, ESYS_TR.OWNER)

    # -- helpers -------------------------------------------------------------

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        if self._esapi is None:
            msg = f"TPM at {self._endpoint}: {what}: the element is closed"
            raise TpmError(msg)
        with _tpm_call(self._endpoint, what):
            yield

    def _exists(self, handle: int) -> bool:
        return _handle_exists(self._esapi, handle)

    def _handle(self, handle: int) -> Any:
        """The ESYS_TR of a persistent object or NV index, cached."""
        if handle not in self._handles:
            self._handles[handle] = self._esapi.tr_from_tpmpublic(handle)
        return self._handles[handle]

    def _nv_public(self, index: int, attributes: int, size: int, *, required: bool) -> Any:
        """Return the TPMS_NV_PUBLIC of ``index`` after checking its shape.

        Returns None if the index does not exist and is not ``required``.

        Raises:
            IntegrityError: The index is missing but required, or its type,
                attributes or size are not the ones provisioning gave it.
        """
        where = f"TPM at {self._endpoint}: NV index {index:#010x}"
        if not self._exists(index):
            if not required:
                return None
            msg = f"{where}: missing (deleted after provisioning?)"
            raise IntegrityError(msg)
        public = self._esapi.nv_read_public(self._handle(index))[0].nvPublic
        # WRITTEN, WRITELOCKED and the other state bits change; the rest must not.
        state_bits = TPMA_NV.WRITTEN | TPMA_NV.WRITELOCKED | TPMA_NV.READLOCKED
        got = int(public.attributes) & ~int(state_bits)
        if got != int(attributes) or int(public.dataSize) != size:
            msg = (
                f"{where}: expected attributes {TPMA_NV(attributes)} and size {size}, "
                f"got {TPMA_NV(got)} and size {int(public.dataSize)} (replaced?)"
            )
            raise IntegrityError(msg)
        return public

    def _read_serial(self) -> ChipSerial:
        where = f"TPM at {self._endpoint}: serial (NV index {SERIAL_NV_INDEX:#010x})"
        tr = self._handle(SERIAL_NV_INDEX)
        public = self._esapi.nv_read_public(tr)[0].nvPublic
        size = int(public.dataSize)
        self._nv_public(SERIAL_NV_INDEX, _SERIAL_ATTRS, size, required=True)
        locked = TPMA_NV.WRITTEN | TPMA_NV.WRITELOCKED
        if public.attributes & locked != locked:
            msg = f"{where}: not written and write-locked (provisioning incomplete?)"
            raise IntegrityError(msg)
        raw = bytes(self._esapi.nv_read(tr, size, 0, ESYS_TR.OWNER))
        try:
            return ChipSerial(raw.decode())
        except UnicodeDecodeError as e:
            msg = f"{where}: not UTF-8 ({raw!r})"
            raise IntegrityError(msg) from e

    def _read_public_key(self) -> bytes:
        where = f"TPM at {self._endpoint}: identity key (handle {KEY_HANDLE:#010x})"
        if not self._exists(KEY_HANDLE):
            msg = f"{where}: missing (evicted after provisioning?)"
            raise IntegrityError(msg)
        area = self._esapi.read_public(self._handle(KEY_HANDLE))[0].publicArea
        ecc = area.parameters.eccDetail
        if (
            area.type != TPM2_ALG.ECC
            or ecc.curveID != TPM2_ECC.NIST_P256
            or ecc.scheme.scheme != TPM2_ALG.ECDSA
            or ecc.scheme.details.ecdsa.hashAlg != TPM2_ALG.SHA256
            or int(area.objectAttributes) != int(_KEY_ATTRS)
        ):
            msg = (
                f"{where}: expected an ECDSA-SHA256 P-256 key with attributes "
                f"{TPMA_OBJECT(_KEY_ATTRS)}, got {area.type} key with {area.objectAttributes}"
            )
            raise IntegrityError(msg)
        x = int.from_bytes(bytes(area.unique.ecc.x), "big")
        y = int.from_bytes(bytes(area.unique.ecc.y), "big")
        try:
            key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        except ValueError as e:
            msg = f"{where}: public point is not on P-256"
            raise IntegrityError(msg) from e
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _handle_exists(esapi: Any, handle: int) -> bool:
    """Whether the TPM has a persistent object or NV index at ``handle``."""
    _, data = esapi.get_capability(TPM2_CAP.HANDLES, handle, 1)
    return handle in {int(h) for h in data.data.handles}


def _provision(esapi: Any, endpoint: _Endpoint, serial: bytes) -> None:
    """Create every object of the layout; the serial last, as "provisioning done"."""
    handles = [KEY_HANDLE, SERIAL_NV_INDEX, STATE_NV_INDEX, *COUNTER_NV_INDICES.values()]
    taken = [h for h in handles if _handle_exists(esapi, h)]
    if taken:
        msg = (
            f"TPM at {endpoint}: already provisioned (handles "
            f"{', '.join(f'{h:#010x}' for h in taken)} exist); refusing to overwrite it"
        )
        raise FormatError(msg)
    _, data = esapi.get_capability(TPM2_CAP.TPM_PROPERTIES, TPM2_PT_NV.BUFFER_MAX, 1)
    buffer_max = {int(p.property): int(p.value) for p in data.data.tpmProperties}.get(
        int(TPM2_PT_NV.BUFFER_MAX), 0
    )
    if buffer_max < _STATE_INDEX_SIZE:
        msg = (
            f"TPM at {endpoint}: NV buffer holds {buffer_max} bytes; the sealed state "
            f"needs {_STATE_INDEX_SIZE} in one NV_Write"
        )
        raise TpmError(msg)

    transient = esapi.create_primary(None, _key_template(), ESYS_TR.OWNER)[0]
    try:
        esapi.evict_control(ESYS_TR.OWNER, transient, KEY_HANDLE)
    finally:
        esapi.flush_context(transient)
    esapi.nv_define_space(None, _nv_template(STATE_NV_INDEX, _STATE_ATTRS, _STATE_INDEX_SIZE))
    for index in COUNTER_NV_INDICES.values():
        esapi.nv_define_space(None, _nv_template(index, _COUNTER_ATTRS, _COUNTER_BYTES))
    tr = esapi.nv_define_space(None, _nv_template(SERIAL_NV_INDEX, _SERIAL_ATTRS, len(serial)))
    esapi.nv_write(tr, serial, 0, ESYS_TR.OWNER)
    esapi.nv_write_lock(tr, ESYS_TR.OWNER)
