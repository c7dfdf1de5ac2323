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

    def test_raise_counter_jumps_once_and_never_lowers(self, backend: Backend) -> None:
        se, reopen = backend("CW-CONTRACT-6")
        assert se.raise_counter("firmware", 40) == 40
        assert se.raise_counter("firmware", 3) == 40  # never lowers
        assert reopen().read_counter("firmware") == 40
        huge = 40 + se.MAX_COUNTER_RAISE + 1
        if type(se).raise_counter is SecureElement.raise_counter:
            # one increment at a time: a huge jump is refused before it starts
            with pytest.raises(ParameterError, match="at most"):
                se.raise_counter("firmware", huge)
            assert se.read_counter("firmware") == 40
        else:  # the element writes the value in one step
            assert se.raise_counter("firmware", huge) == huge

    def test_clock_is_the_elements_own_and_never_goes_back(self, backend: Backend) -> None:
        se, reopen = backend("CW-CONTRACT-7")
        first = se.read_clock()
        se.increment_counter("boot")
        second = se.read_clock()
        assert second.reset_count == first.reset_count
        assert second.clock_ms >= first.clock_ms
        # what was read before the last write is never ahead of the clock after a reopen
        again = reopen().read_clock()
        assert (again.reset_count, again.clock_ms) >= (first.reset_count, first.clock_ms)
        assert set(second.to_json()) == {"clock_ms", "resets", "restarts", "safe"}

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
