"""The TPM 2.0 secure element (URI ``tpm:HOST:PORT``).

The chip's secrets live in a TPM 2.0 reached over TCP through the ``swtpm``
TCTI of tpm2-tss (``swtpm`` in tests; the paper's §4 suggests the host CPU's
TPM mated to the accelerator). The identity key is generated inside the TPM
and never leaves it. Which objects sit at which handles, and their
attributes, is documented in `computewatch.chip._tpm_layout`; the
connection (URI, bounded probe, startup) in `computewatch.chip._tpm_link`.

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
`TpmSecureElement.open` where it has one.

Example (needs a TPM listening, e.g. ``swtpm socket --tpm2 --server port=2321
--ctrl type=tcp,port=2322 --flags startup-clear``)::

    >>> se = TpmSecureElement.provision("tpm:127.0.0.1:2321", "CW-0001")  # doctest: +SKIP
    >>> signature = se.sign(b"hello")  # DER ECDSA over SHA-256(b"hello")  # doctest: +SKIP
    >>> se.increment_counter("boot")  # doctest: +SKIP
    1
    >>> se.close()  # doctest: +SKIP
    >>> with TpmSecureElement.open("tpm:127.0.0.1:2321") as se:  # doctest: +SKIP
    ...     se.read_counter("boot")
    1

Not thread-safe: give each thread its own element.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import TYPE_CHECKING, Any, Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from tpm2_pytss import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    ESYS_TR,
    TPM2_ALG,
    TPM2_ECC,
    TPMA_NV,
    TPMA_OBJECT,
    TPMT_SIG_SCHEME,
)

from computewatch.chip._interface import ChipSerial, ChipTime, SecureElement
from computewatch.chip._tpm_layout import (
    COUNTER_ATTRS,
    COUNTER_BYTES,
    COUNTER_NV_INDICES,
    KEY_ATTRS,
    KEY_HANDLE,
    SERIAL_ATTRS,
    SERIAL_NV_INDEX,
    STATE_ATTRS,
    STATE_HEADER,
    STATE_INDEX_SIZE,
    STATE_MAGIC,
    STATE_NV_INDEX,
    check_serial,
    counter_index,
    handle_exists,
    nv_template,
    provision_layout,
)
from computewatch.chip._tpm_link import CONNECT_TIMEOUT_S, Endpoint, TpmError, connect, tpm_call
from computewatch.crypto import VerifyingKey
from computewatch.errors import FormatError, IntegrityError, ParameterError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

__all__ = ["TpmError", "TpmSecureElement"]

_MAX_RANDOM_BYTES = 1 << 20
_RANDOM_CHUNK = 64  # a TPM returns at most its largest digest size per call; the loop takes less


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


class TpmSecureElement(SecureElement):
    """A secure element in a TPM 2.0 (see the module docs for the layout).

    Use `provision` once per TPM, then `open`. The element holds one
    connection; `close` it, or use it as a context manager.
    """

    KEY_HANDLE = KEY_HANDLE
    SERIAL_NV_INDEX = SERIAL_NV_INDEX
    STATE_NV_INDEX = STATE_NV_INDEX
    COUNTER_NV_INDICES = COUNTER_NV_INDICES

    def __init__(self, esapi: Any, endpoint: Endpoint) -> None:
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
            self._nv_public(STATE_NV_INDEX, STATE_ATTRS, STATE_INDEX_SIZE, required=True)
            for index in COUNTER_NV_INDICES.values():
                self._nv_public(index, COUNTER_ATTRS, COUNTER_BYTES, required=True)

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
        endpoint = Endpoint.parse(uri)
        serial_bytes = check_serial(serial)
        esapi = connect(endpoint, owner_auth, connect_timeout)
        try:
            with tpm_call(endpoint, "provisioning"):
                provision_layout(esapi, endpoint, serial_bytes)
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
        endpoint = Endpoint.parse(uri)
        esapi = connect(endpoint, owner_auth, connect_timeout)
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

    def read_clock(self) -> ChipTime:
        """The TPM's own clock, reset and restart counts and safe flag (TPM2_ReadClock)."""
        with self._call("TPM2_ReadClock"):
            info = self._esapi.read_clock().clockInfo
        return ChipTime(
            int(info.clock), int(info.resetCount), int(info.restartCount), bool(info.safe)
        )

    def read_counter(self, name: str) -> int:
        """Return counter ``name``; 0 before its first increment.

        Raises:
            ParameterError: A bad counter name.
            IntegrityError: The counter's NV index is missing (for a named
                counter) or is not an NV counter.
        """
        index = counter_index(name)
        with self._call(f"reading counter {name!r}"):
            public = self._nv_public(
                index, COUNTER_ATTRS, COUNTER_BYTES, required=name in COUNTER_NV_INDICES
            )
            if public is None or not public.attributes & TPMA_NV.WRITTEN:
                return 0
            data = self._esapi.nv_read(self._handle(index), COUNTER_BYTES, 0, ESYS_TR.OWNER)
        return int.from_bytes(bytes(data), "big")

    def increment_counter(self, name: str) -> int:
        """Add one to counter ``name`` (TPM2_NV_Increment) and return the new value.

        Raises:
            ParameterError: A bad counter name.
            IntegrityError: As for `read_counter`.
        """
        index = counter_index(name)
        with self._call(f"incrementing counter {name!r}"):
            public = self._nv_public(
                index, COUNTER_ATTRS, COUNTER_BYTES, required=name in COUNTER_NV_INDICES
            )
            if public is None:
                self._handles[index] = self._esapi.nv_define_space(
                    None, nv_template(index, COUNTER_ATTRS, COUNTER_BYTES)
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
            public = self._nv_public(STATE_NV_INDEX, STATE_ATTRS, STATE_INDEX_SIZE, required=True)
            if not public.attributes & TPMA_NV.WRITTEN:
                return b""
            blob = bytes(
                self._esapi.nv_read(
                    self._handle(STATE_NV_INDEX), STATE_INDEX_SIZE, 0, ESYS_TR.OWNER
                )
            )
        magic, length, digest = STATE_HEADER.unpack_from(blob)
        if magic != STATE_MAGIC or length > self.MAX_STATE_BYTES:
            msg = f"{where}: malformed header (magic {magic!r}, length {length})"
            raise IntegrityError(msg)
        data = blob[STATE_HEADER.size : STATE_HEADER.size + length]
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
        blob = STATE_HEADER.pack(STATE_MAGIC, len(data), hashlib.sha256(data).digest()) + data
        with self._call("writing the sealed state"):
            self._nv_public(STATE_NV_INDEX, STATE_ATTRS, STATE_INDEX_SIZE, required=True)
            self._esapi.nv_write(self._handle(STATE_NV_INDEX), blob, 0, ESYS_TR.OWNER)

    # -- helpers -------------------------------------------------------------

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        if self._esapi is None:
            msg = f"TPM at {self._endpoint}: {what}: the element is closed"
            raise TpmError(msg)
        with tpm_call(self._endpoint, what):
            yield

    def _exists(self, handle: int) -> bool:
        return handle_exists(self._esapi, handle)

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
        self._nv_public(SERIAL_NV_INDEX, SERIAL_ATTRS, size, required=True)
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
            or int(area.objectAttributes) != int(KEY_ATTRS)
        ):
            msg = (
                f"{where}: expected an ECDSA-SHA256 P-256 key with attributes "
                f"{TPMA_OBJECT(KEY_ATTRS)}, got {area.type} key with {area.objectAttributes}"
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
