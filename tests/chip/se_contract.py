"""The behavioural contract every secure-element backend must pass.

A backend's test module subclasses `SecureElementContract` and provides the
`backend` fixture: a factory returning a freshly provisioned element and a
function that reopens the same element (as after a power cycle).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from computewatch.chip import SecureElement
from computewatch.errors import IntegrityError, ParameterError

Reopen = Callable[[], SecureElement]
Backend = Callable[[str], tuple[SecureElement, Reopen]]


class SecureElementContract:
    """Behaviour shared by all secure elements (file:, tpm:)."""

    def test_serial_and_key_survive_reopen(self, backend: Backend) -> None:
        se, reopen = backend("CW-CONTRACT-1")
        assert se.serial == "CW-CONTRACT-1"
        again = reopen()
        assert again.serial == se.serial
        assert again.public_key == se.public_key
        assert again.key_id == se.public_key.key_id
        assert se.uri.split(":", 1)[0] in {"file", "tpm"}

    def test_signatures_verify_and_tampering_fails(self, backend: Backend) -> None:
        se, _ = backend("CW-CONTRACT-2")
        sig = se.sign(b"log entry")
        se.public_key.verify(sig, b"log entry")
        with pytest.raises(IntegrityError):
            se.public_key.verify(sig, b"log entrY")
        bad = bytearray(sig)
        bad[len(bad) // 2] ^= 0x01
        with pytest.raises(IntegrityError):
            se.public_key.verify(bytes(bad), b"log entry")

    def test_random_bytes(self, backend: Backend) -> None:
        se, _ = backend("CW-CONTRACT-3")
        assert se.random_bytes(0) == b""
        draws = {se.random_bytes(16) for _ in range(20)}
        assert len(draws) == 20
        assert len(se.random_bytes(100)) == 100

    def test_counters_are_monotonic_and_durable(self, backend: Backend) -> None:
        se, reopen = backend("CW-CONTRACT-4")
        assert se.read_counter("log") == 0
        assert [se.increment_counter("log") for _ in range(3)] == [1, 2, 3]
        assert se.read_counter("firmware") == 0
        assert se.increment_counter("firmware") == 1
        again = reopen()
        assert again.read_counter("log") == 3
        assert again.read_counter("firmware") == 1
        assert again.increment_counter("log") == 4
        assert not hasattr(se, "decrement_counter")
        assert not hasattr(se, "set_counter")

    def test_state_round_trip_limit_and_durability(self, backend: Backend) -> None:
        se, reopen = backend("CW-CONTRACT-5")
        assert se.read_state() == b""
        blob = bytes(range(256)) + b"x" * 200
        se.write_state(blob)
        assert se.read_state() == blob
        assert reopen().read_state() == blob
        with pytest.raises(ParameterError):
            se.write_state(b"y" * (SecureElement.MAX_STATE_BYTES + 1))
        assert se.read_state() == blob
