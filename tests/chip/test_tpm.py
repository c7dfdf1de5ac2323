"""The TPM 2.0 secure element against a real TPM simulator (swtpm).

Every test that talks to a TPM starts its own swtpm on 127.0.0.1 (marked
slow). Where a test plays the attacker it drives the TPM directly through
tpm2-pytss with the owner authorization, as a Prover holding it could.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.chip.se_contract import Backend, Reopen, SecureElementContract
from tests.chip.swtpm import require_tpm_stack, swtpm_server

require_tpm_stack()

from tpm2_pytss import (  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: E402
    ESAPI,
    ESYS_TR,
    TPM2_ALG,
    TPM2B_NV_PUBLIC,
    TPMA_NV,
    TPMS_NV_PUBLIC,
)
from tpm2_pytss.TSS2_Exception import (  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: E402
    TSS2_Exception,
)

from computewatch.chip import (  # noqa: E402
    SecureElement,
    open_secure_element,
    provision_secure_element,
)
from computewatch.chip._tpm import TpmError, TpmSecureElement  # noqa: E402
from computewatch.chip._tpm_layout import (  # noqa: E402
    COUNTER_NV_INDICES,
    KEY_HANDLE,
    SERIAL_NV_INDEX,
    STATE_NV_INDEX,
)
from computewatch.crypto import VerifyingKey  # noqa: E402
from computewatch.errors import (  # noqa: E402
    FormatError,
    IntegrityError,
    ParameterError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

SERIAL = "CW-0001"
slow = pytest.mark.slow


@pytest.fixture
def tpm_uri(tmp_path: Path) -> Iterator[str]:
    with swtpm_server(tmp_path / "tpm") as (host, port):
        yield f"tpm:{host}:{port}"


@pytest.fixture
def se(tpm_uri: str) -> Iterator[TpmSecureElement]:
    element = TpmSecureElement.provision(tpm_uri, SERIAL)
    yield element
    element.close()


@contextmanager
def raw_tpm(uri: str) -> Iterator[Any]:
    """An ESAPI context on the TPM at ``uri``: the attacker's direct access."""
    _, host, port = uri.split(":")
    esapi = ESAPI(f"swtpm:host={host},port={port}")
    try:
        yield esapi
    finally:
        esapi.close()


def verify_p256(pem: bytes, signature: bytes, message: bytes) -> None:
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert isinstance(key.curve, ec.SECP256R1)
    key.verify(signature, message, ec.ECDSA(hashes.SHA256()))


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    """The shared contract's factory: provision on a fresh swtpm, reopen over a new connection."""
    opened: list[SecureElement] = []
    with swtpm_server(tmp_path / "tpm") as (host, port):
        uri = f"tpm:{host}:{port}"

        def make(serial: str) -> tuple[SecureElement, Reopen]:
            se = TpmSecureElement.provision(uri, serial)
            opened.append(se)

            def reopen() -> SecureElement:
                again = TpmSecureElement.open(uri)
                opened.append(again)
                return again

            return se, reopen

        try:
            yield make
        finally:
            for se in opened:
                se.close()


@slow
class TestTpmSecureElement(SecureElementContract):
    """The behaviour every secure element shares, on a TPM."""


# -- provisioning ---------------------------------------------------------------------------


@slow
def test_provision_then_reopen_gives_same_identity(tpm_uri: str) -> None:
    with TpmSecureElement.provision(tpm_uri, SERIAL) as first:
        serial, pem = first.serial, first.public_key_pem()
        assert first.uri == tpm_uri
        assert SERIAL in repr(first)
    with TpmSecureElement.open(tpm_uri) as again:
        assert again.serial == serial == SERIAL
        assert again.public_key_pem() == pem
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")


@slow
def test_registry_routes_tpm_uris_here(tpm_uri: str) -> None:
    element = provision_secure_element(tpm_uri, SERIAL)
    element.close()
    reopened = open_secure_element(tpm_uri)
    try:
        assert isinstance(reopened, TpmSecureElement)
        assert reopened.serial == SERIAL
    finally:
        reopened.close()


@slow
@pytest.mark.usefixtures("se")
def test_second_provision_is_refused(tpm_uri: str) -> None:
    with pytest.raises(FormatError, match="already provisioned"):
        TpmSecureElement.provision(tpm_uri, "CW-0002")
    with TpmSecureElement.open(tpm_uri) as again:
        assert again.serial == SERIAL


@slow
def test_open_unprovisioned_tpm_is_refused(tpm_uri: str) -> None:
    with pytest.raises(FormatError, match="not provisioned"):
        TpmSecureElement.open(tpm_uri)


@slow
@pytest.mark.parametrize("serial", ["", " CW", "CW\n1", "x" * 65])
def test_bad_serial_is_refused_before_touching_the_tpm(tpm_uri: str, serial: str) -> None:
    with pytest.raises(FormatError, match="chip serial"):
        TpmSecureElement.provision(tpm_uri, serial)
    TpmSecureElement.provision(tpm_uri, SERIAL).close()  # the TPM is still blank


@slow
@pytest.mark.usefixtures("se")
def test_serial_is_write_locked(tpm_uri: str) -> None:
    with raw_tpm(tpm_uri) as tpm:
        index = tpm.tr_from_tpmpublic(SERIAL_NV_INDEX)
        public = tpm.nv_read_public(index)[0].nvPublic
        assert public.attributes & TPMA_NV.WRITELOCKED
        with pytest.raises(TSS2_Exception, match="locked"):
            tpm.nv_write(index, b"EVIL-01", 0, ESYS_TR.OWNER)
    with TpmSecureElement.open(tpm_uri) as again:
        assert again.serial == SERIAL


@slow
def test_power_cycle_keeps_everything(tmp_path: Path) -> None:
    state = tmp_path / "tpm"
    with (
        swtpm_server(state) as (host, port),
        TpmSecureElement.provision(f"tpm:{host}:{port}", SERIAL) as se,
    ):
        pem = se.public_key_pem()
        se.increment_counter("log")
        se.increment_counter("custom")
        se.write_state(b"log head")
    with swtpm_server(state) as (host, port), TpmSecureElement.open(f"tpm:{host}:{port}") as se:
        assert se.serial == SERIAL
        assert se.public_key_pem() == pem
        assert se.read_counter("log") == 1
        assert se.read_counter("custom") == 1
        assert se.read_state() == b"log head"
        verify_p256(pem, se.sign(b"after reboot"), b"after reboot")


@slow
def test_tpm_awaiting_startup_is_started(tmp_path: Path) -> None:
    with (
        swtpm_server(tmp_path / "tpm", flags="not-need-init") as (host, port),
        TpmSecureElement.provision(f"tpm:{host}:{port}", SERIAL) as se,
    ):
        assert se.increment_counter("boot") == 1


@slow
def test_unlocked_serial_is_tampering(se: TpmSecureElement, tpm_uri: str) -> None:
    se.close()
    with raw_tpm(tpm_uri) as tpm:
        index = tpm.tr_from_tpmpublic(SERIAL_NV_INDEX)
        public = tpm.nv_read_public(index)[0]
        tpm.nv_undefine_space(index)
        public.nvPublic.attributes &= ~(TPMA_NV.WRITTEN | TPMA_NV.WRITELOCKED)
        forged = tpm.nv_define_space(None, public)
        tpm.nv_write(forged, b"EVIL-01", 0, ESYS_TR.OWNER)  # same size, never locked
    with pytest.raises(IntegrityError, match="not written and write-locked"):
        TpmSecureElement.open(tpm_uri)


@slow
def test_swapped_key_type_is_tampering(se: TpmSecureElement, tpm_uri: str) -> None:
    se.close()
    with raw_tpm(tpm_uri) as tpm:
        tpm.evict_control(ESYS_TR.OWNER, tpm.tr_from_tpmpublic(KEY_HANDLE), KEY_HANDLE)
        other = tpm.create_primary(None, "ecc256:aes128cfb")[0]  # a storage key
        tpm.evict_control(ESYS_TR.OWNER, other, KEY_HANDLE)
    with pytest.raises(IntegrityError, match="expected an ECDSA-SHA256 P-256 key"):
        TpmSecureElement.open(tpm_uri)


@slow
def test_owner_authorization_is_used(tpm_uri: str) -> None:
    with raw_tpm(tpm_uri) as tpm:
        tpm.hierarchy_change_auth(ESYS_TR.OWNER, b"owner-secret")
    with pytest.raises(TpmError, match="provisioning failed"):
        TpmSecureElement.provision(tpm_uri, SERIAL)
    TpmSecureElement.provision(tpm_uri, SERIAL, owner_auth=b"owner-secret").close()
    with TpmSecureElement.open(tpm_uri, owner_auth=b"owner-secret") as se:
        assert se.increment_counter("boot") == 1
        se.write_state(b"x")
        assert se.read_state() == b"x"


# -- signing and randomness -----------------------------------------------------------------


@slow
def test_sign_verifies_and_tampering_does_not(se: TpmSecureElement) -> None:
    message = b"chip log entry 17"
    signature = se.sign(message)
    pem = se.public_key_pem()
    verify_p256(pem, signature, message)
    for i in range(len(message)):
        flipped = bytearray(message)
        flipped[i] ^= 0x01
        with pytest.raises(InvalidSignature):
            verify_p256(pem, signature, bytes(flipped))
    bad_signature = bytearray(signature)
    bad_signature[-1] ^= 0x01
    with pytest.raises(InvalidSignature):
        verify_p256(pem, bytes(bad_signature), message)
    assert se.sign(message) != signature  # ECDSA draws a fresh nonce
    verify_p256(pem, se.sign(b""), b"")


@slow
def test_non_bytes_are_refused_not_coerced(se: TpmSecureElement) -> None:
    with pytest.raises(ParameterError, match="sign: message: expected bytes, got int"):
        se.sign(5)  # type: ignore[arg-type]  # bytes(5) would be five zero bytes
    with pytest.raises(ParameterError, match="sealed state: expected bytes, got str"):
        se.write_state("text")  # type: ignore[arg-type]
    se.write_state(bytearray(b"ok"))  # type: ignore[arg-type]  # bytes-like is fine at run time
    assert se.read_state() == b"ok"


@slow
def test_public_key_is_a_verifying_key(se: TpmSecureElement) -> None:
    key = se.public_key
    assert isinstance(key, VerifyingKey)
    assert key.to_pem() == se.public_key_pem()
    key.verify(se.sign(b"m"), b"m")
    assert se.key_id == key.key_id


@slow
def test_random_bytes_lengths_and_no_repeats(se: TpmSecureElement) -> None:
    for n in (0, 1, 31, 32, 33, 64, 65, 1000):
        assert len(se.random_bytes(n)) == n
    draws = {se.random_bytes(16) for _ in range(50)}
    assert len(draws) == 50
    big = se.random_bytes(4096)
    assert len(set(big)) > 200  # all 256 byte values are near-certain in 4 KiB


@slow
@pytest.mark.parametrize("n", [-1, 1.5, True, "8", 2**20 + 1])
def test_random_bytes_bad_count(se: TpmSecureElement, n: Any) -> None:
    with pytest.raises(ParameterError, match="random_bytes"):
        se.random_bytes(n)


# -- counters -------------------------------------------------------------------------------


@slow
def test_counters_start_at_zero_and_count_up(se: TpmSecureElement, tpm_uri: str) -> None:
    for name in (*COUNTER_NV_INDICES, "snapshots"):
        assert se.read_counter(name) == 0
    assert [se.increment_counter("log") for _ in range(5)] == [1, 2, 3, 4, 5]
    assert se.read_counter("log") == 5
    assert se.increment_counter("snapshots") == 1
    assert se.read_counter("boot") == 0  # counters are independent
    se.close()
    with TpmSecureElement.open(tpm_uri) as again:
        assert again.read_counter("log") == 5
        assert again.read_counter("snapshots") == 1
        assert again.increment_counter("log") == 6


@slow
@pytest.mark.parametrize("name", ["", "1st", "has space", "a-b", "x" * 33, None, 3])
def test_bad_counter_name(se: TpmSecureElement, name: Any) -> None:
    with pytest.raises(ParameterError, match="counter name"):
        se.read_counter(name)
    with pytest.raises(ParameterError, match="counter name"):
        se.increment_counter(name)


@slow
def test_counters_cannot_go_back(se: TpmSecureElement, tpm_uri: str) -> None:
    for _ in range(3):
        se.increment_counter("firmware")
        se.increment_counter("snapshots")
    se.close()
    public_api = {name for name in dir(TpmSecureElement) if not name.startswith("_")}
    assert not {n for n in public_api if "counter" in n} - {
        "read_counter",
        "increment_counter",
        "raise_counter",  # increments only, bounded (the generic one)
        "COUNTER_NV_INDICES",
    }
    assert TpmSecureElement.raise_counter is SecureElement.raise_counter
    with raw_tpm(tpm_uri) as tpm:
        firmware = tpm.tr_from_tpmpublic(COUNTER_NV_INDICES["firmware"])
        # NV_Write on a counter index is refused by the TPM itself.
        with pytest.raises(TSS2_Exception):
            tpm.nv_write(firmware, bytes(8), 0, ESYS_TR.OWNER)
        # Deleting and redefining it (a named counter) is detected at open ...
        tpm.nv_undefine_space(firmware)
        public = TPM2B_NV_PUBLIC(
            nvPublic=TPMS_NV_PUBLIC(
                nvIndex=COUNTER_NV_INDICES["firmware"],
                nameAlg=TPM2_ALG.SHA256,
                attributes=TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.NO_DA,
                dataSize=8,
            )
        )
        ordinary = tpm.nv_define_space(None, public)
        tpm.nv_write(ordinary, bytes(8), 0, ESYS_TR.OWNER)
    with pytest.raises(IntegrityError, match=r"0x01004311.*replaced"):
        TpmSecureElement.open(tpm_uri)
    with raw_tpm(tpm_uri) as tpm:
        # ... and a counter redefined as a counter resumes above its old value.
        tpm.nv_undefine_space(tpm.tr_from_tpmpublic(COUNTER_NV_INDICES["firmware"]))
        public.nvPublic.attributes |= TPMA_NV.AUTHREAD | (1 << TPMA_NV.TPM2_NT_SHIFT)
        tpm.nv_define_space(None, public)
    with TpmSecureElement.open(tpm_uri) as again:
        assert again.read_counter("firmware") == 0  # defined, not yet incremented
        assert again.increment_counter("firmware") > 3
        assert again.read_counter("snapshots") == 3


@slow
def test_missing_named_counter_is_tampering(se: TpmSecureElement, tpm_uri: str) -> None:
    with raw_tpm(tpm_uri) as tpm:
        tpm.nv_undefine_space(tpm.tr_from_tpmpublic(COUNTER_NV_INDICES["log"]))
    with pytest.raises(IntegrityError, match="missing"):
        se.read_counter("log")
    with pytest.raises(IntegrityError, match="missing"):
        se.increment_counter("log")
    se.close()
    with pytest.raises(IntegrityError, match=r"0x01004312: missing"):
        TpmSecureElement.open(tpm_uri)


@slow
def test_evicted_key_is_tampering(se: TpmSecureElement, tpm_uri: str) -> None:
    se.close()
    with raw_tpm(tpm_uri) as tpm:
        tpm.evict_control(ESYS_TR.OWNER, tpm.tr_from_tpmpublic(KEY_HANDLE), KEY_HANDLE)
    with pytest.raises(IntegrityError, match="identity key"):
        TpmSecureElement.open(tpm_uri)


# -- sealed state ---------------------------------------------------------------------------


@slow
def test_state_round_trip_and_persistence(se: TpmSecureElement, tpm_uri: str) -> None:
    assert se.read_state() == b""
    for blob in (b"head-1", bytes(range(256)) * 2, b"", b"short"):
        se.write_state(blob)
        assert se.read_state() == blob
    se.write_state(bytes(TpmSecureElement.MAX_STATE_BYTES))
    assert se.read_state() == bytes(TpmSecureElement.MAX_STATE_BYTES)
    se.write_state(b"final")
    se.close()
    with TpmSecureElement.open(tpm_uri) as again:
        assert again.read_state() == b"final"


@slow
def test_state_size_limit(se: TpmSecureElement) -> None:
    se.write_state(b"kept")
    with pytest.raises(ParameterError, match="at most 512 bytes, got 513"):
        se.write_state(bytes(TpmSecureElement.MAX_STATE_BYTES + 1))
    assert se.read_state() == b"kept"


@slow
@pytest.mark.parametrize(
    ("offset", "patch", "match"),
    [(0, b"XXXX", "malformed"), (4, b"\xff", "malformed"), (40, b"H", "digest mismatch")],
)
def test_state_edited_outside_is_tampering(
    se: TpmSecureElement, tpm_uri: str, offset: int, patch: bytes, match: str
) -> None:
    se.write_state(b"head")
    with raw_tpm(tpm_uri) as tpm:
        tpm.nv_write(tpm.tr_from_tpmpublic(STATE_NV_INDEX), patch, offset, ESYS_TR.OWNER)
    with pytest.raises(IntegrityError, match=match):
        se.read_state()


# -- lifecycle ------------------------------------------------------------------------------


@slow
def test_closed_element_refuses_with_a_clear_error(se: TpmSecureElement) -> None:
    se.close()
    se.close()  # idempotent
    with pytest.raises(TpmError, match="closed"):
        se.sign(b"m")
    with pytest.raises(TpmError, match="closed"):
        se.read_counter("boot")
    assert se.serial == SERIAL  # cached at open; no TPM needed


@slow
def test_tpm_gone_mid_session_is_a_tpm_error(tmp_path: Path) -> None:
    with swtpm_server(tmp_path / "tpm") as (host, port):
        se = TpmSecureElement.provision(f"tpm:{host}:{port}", SERIAL)
    try:
        with pytest.raises(TpmError, match="TPM2_Sign failed"):
            se.sign(b"m")
    finally:
        se.close()
