r"""What a TPM 2.0 secure element holds, where, and with which attributes.

The identity key is generated inside the TPM and never leaves it. Everything
sits at fixed handles in the owner hierarchy, so ``tpm2-tools`` can inspect
it (``tpm2_nvreadpublic``, ``tpm2_readpublic -c 0x81004357``):

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

`provision_layout` creates these objects in a blank TPM (the serial last, as
"provisioning done"); the attribute and size constants are what
`computewatch.chip._tpm.TpmSecureElement` re-checks at every open.
"""

from __future__ import annotations

import hashlib
import struct
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from tpm2_pytss import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
    ESYS_TR,
    TPM2_ALG,
    TPM2_CAP,
    TPM2_ECC,
    TPM2_NT,
    TPM2_PT_NV,
    TPM2B_NV_PUBLIC,
    TPM2B_PUBLIC,
    TPMA_NV,
    TPMA_OBJECT,
    TPMS_NV_PUBLIC,
    TPMT_PUBLIC,
)

from computewatch.chip._interface import SecureElement
from computewatch.chip._tpm_link import TpmError
from computewatch.errors import FormatError, ParameterError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from computewatch.chip._tpm_link import Endpoint

__all__ = [
    "COUNTER_ATTRS",
    "COUNTER_BYTES",
    "COUNTER_NV_INDICES",
    "HASHED_COUNTER_BASE",
    "KEY_ATTRS",
    "KEY_HANDLE",
    "SERIAL_ATTRS",
    "SERIAL_NV_INDEX",
    "STATE_ATTRS",
    "STATE_HEADER",
    "STATE_INDEX_SIZE",
    "STATE_MAGIC",
    "STATE_NV_INDEX",
    "check_serial",
    "counter_index",
    "handle_exists",
    "nv_template",
    "provision_layout",
]

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
STATE_MAGIC = b"CWS1"
STATE_HEADER = struct.Struct(">4sI32s")
STATE_INDEX_SIZE = STATE_HEADER.size + SecureElement.MAX_STATE_BYTES
COUNTER_BYTES = 8

_NV_BASE_ATTRS = TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.NO_DA
_NT_SHIFT = int(TPMA_NV.TPM2_NT_SHIFT)
COUNTER_ATTRS = _NV_BASE_ATTRS | TPMA_NV.AUTHREAD | (TPM2_NT.COUNTER << _NT_SHIFT)
STATE_ATTRS = _NV_BASE_ATTRS | (TPM2_NT.ORDINARY << _NT_SHIFT)
SERIAL_ATTRS = (
    _NV_BASE_ATTRS
    | TPMA_NV.AUTHREAD
    | TPMA_NV.WRITEDEFINE
    | TPMA_NV.WRITEALL
    | (TPM2_NT.ORDINARY << _NT_SHIFT)
)
KEY_ATTRS = (
    TPMA_OBJECT.FIXEDTPM
    | TPMA_OBJECT.FIXEDPARENT
    | TPMA_OBJECT.SENSITIVEDATAORIGIN
    | TPMA_OBJECT.USERWITHAUTH
    | TPMA_OBJECT.SIGN_ENCRYPT
)


def check_serial(serial: object) -> bytes:
    if not (
        isinstance(serial, str)
        and 0 < len(serial) <= _MAX_SERIAL_CHARS
        and serial.isprintable()
        and serial.strip() == serial
    ):
        msg = f"chip serial: expected 1-{_MAX_SERIAL_CHARS} printable characters, got {serial!r}"
        raise FormatError(msg)
    return serial.encode()


def counter_index(name: object) -> int:
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


def key_template() -> Any:
    """The TPM2B_PUBLIC template of the identity key."""
    public = TPM2B_PUBLIC(
        TPMT_PUBLIC(type=TPM2_ALG.ECC, nameAlg=TPM2_ALG.SHA256, objectAttributes=KEY_ATTRS)
    )
    ecc = public.publicArea.parameters.eccDetail
    ecc.symmetric.algorithm = TPM2_ALG.NULL
    ecc.scheme.scheme = TPM2_ALG.ECDSA
    ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG.SHA256
    ecc.curveID = TPM2_ECC.NIST_P256
    ecc.kdf.scheme = TPM2_ALG.NULL
    return public


def nv_template(index: int, attributes: int, size: int) -> Any:
    return TPM2B_NV_PUBLIC(
        nvPublic=TPMS_NV_PUBLIC(
            nvIndex=index, nameAlg=TPM2_ALG.SHA256, attributes=attributes, dataSize=size
        )
    )


def handle_exists(esapi: Any, handle: int) -> bool:
    """Whether the TPM has a persistent object or NV index at ``handle``."""
    _, data = esapi.get_capability(TPM2_CAP.HANDLES, handle, 1)
    return handle in {int(h) for h in data.data.handles}


def provision_layout(esapi: Any, endpoint: Endpoint, serial: bytes) -> None:
    """Create every object of the layout; the serial last, as "provisioning done"."""
    handles = [KEY_HANDLE, SERIAL_NV_INDEX, STATE_NV_INDEX, *COUNTER_NV_INDICES.values()]
    taken = [h for h in handles if handle_exists(esapi, h)]
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
    if buffer_max < STATE_INDEX_SIZE:
        msg = (
            f"TPM at {endpoint}: NV buffer holds {buffer_max} bytes; the sealed state "
            f"needs {STATE_INDEX_SIZE} in one NV_Write"
        )
        raise TpmError(msg)

    transient = esapi.create_primary(None, key_template(), ESYS_TR.OWNER)[0]
    try:
        esapi.evict_control(ESYS_TR.OWNER, transient, KEY_HANDLE)
    finally:
        esapi.flush_context(transient)
    esapi.nv_define_space(None, nv_template(STATE_NV_INDEX, STATE_ATTRS, STATE_INDEX_SIZE))
    for index in COUNTER_NV_INDICES.values():
        esapi.nv_define_space(None, nv_template(index, COUNTER_ATTRS, COUNTER_BYTES))
    tr = esapi.nv_define_space(None, nv_template(SERIAL_NV_INDEX, SERIAL_ATTRS, len(serial)))
    esapi.nv_write(tr, serial, 0, ESYS_TR.OWNER)
    esapi.nv_write_lock(tr, ESYS_TR.OWNER)
