"""The secure-element interface: a chip's root of trust (paper §4, footnote 6).

A secure element (SE) holds what the Prover must never be able to read or
rewrite through any public API: the chip's burned-in serial, its identity
signing key, monotonic counters (anti-rollback, log length), a small sealed
state blob (the firmware's log head) and its own random number generator
(snapshot timing). Firmware is the only caller; the Prover's code sees a
`Chip`, never the SE.

Backends are chosen by URI (`open_secure_element`):

* ``file:/path/to/dir`` — sealed files. Tamper-*evident*, not secret from
  root: a Prover with root can read the key file, but any edit of the sealed
  state or counters is detected at the next open or inspection.
* ``tpm:host:port`` — a TPM 2.0 (swtpm in tests; on real hosts the host CPU's
  TPM mated to the accelerator, as §4 suggests). Keys never leave the TPM.

Every backend must pass `tests/chip/se_contract.py`, the shared behavioural
suite.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, NewType

from computewatch.errors import ParameterError

if TYPE_CHECKING:
    from computewatch.crypto import KeyID, VerifyingKey

__all__ = ["ChipSerial", "ChipTime", "SecureElement"]

#: A chip's burned-in serial number.
ChipSerial = NewType("ChipSerial", str)


@dataclass(frozen=True, slots=True)
class ChipTime:
    """The secure element's own time, as TPM2_ReadClock reports it.

    Attributes:
        clock_ms: milliseconds the element has been powered, never going
            back (the TPM's ``clock``); the host cannot set it.
        reset_count: element resets (power cycles) so far.
        restart_count: restarts since the last reset.
        safe: whether ``clock_ms`` is known not to have been reported lower
            before (the TPM's ``safe`` flag).
    """

    clock_ms: int
    reset_count: int
    restart_count: int
    safe: bool

    def to_json(self) -> dict[str, int | bool]:
        """The form logged with each entry and attested."""
        return {
            "clock_ms": self.clock_ms,
            "resets": self.reset_count,
            "restarts": self.restart_count,
            "safe": self.safe,
        }


class SecureElement(abc.ABC):
    """A chip's secure element. Only firmware talks to it."""

    #: Largest sealed state blob every backend must store.
    MAX_STATE_BYTES = 512
    #: Largest jump `raise_counter` makes (each step is one TPM command).
    MAX_COUNTER_RAISE = 1024

    @property
    @abc.abstractmethod
    def uri(self) -> str:
        """The URI this element was opened from (no secrets in it)."""

    @property
    @abc.abstractmethod
    def serial(self) -> ChipSerial:
        """The burned-in serial number; it never changes."""

    @property
    @abc.abstractmethod
    def public_key(self) -> VerifyingKey:
        """The identity public key (what the chip-owner directory records)."""

    @property
    def key_id(self) -> KeyID:
        """The `KeyID` of `public_key`."""
        return self.public_key.key_id

    @abc.abstractmethod
    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` with the identity key (the key never leaves the SE)."""

    @abc.abstractmethod
    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` bytes from the SE's own random number generator."""

    @abc.abstractmethod
    def read_clock(self) -> ChipTime:
        """Return the element's own time (nothing the host sets moves it)."""

    @abc.abstractmethod
    def read_counter(self, name: str) -> int:
        """Return monotonic counter ``name`` (0 if never incremented)."""

    @abc.abstractmethod
    def increment_counter(self, name: str) -> int:
        """Add one to counter ``name`` and return the new value; never decreases."""

    def raise_counter(self, name: str, value: int) -> int:
        """Raise counter ``name`` to at least ``value`` and return it; never lowers it.

        The generic way is one increment at a time, so the jump is bounded
        (`MAX_COUNTER_RAISE`); backends that can write the value in one
        durable step (the file element) override this.

        Raises:
            ParameterError: the jump is larger than `MAX_COUNTER_RAISE`.
        """
        current = self.read_counter(name)
        if value - current > self.MAX_COUNTER_RAISE:
            msg = (
                f"counter {name!r}: cannot raise from {current} to {value} "
                f"(at most +{self.MAX_COUNTER_RAISE} at a time)"
            )
            raise ParameterError(msg)
        while current < value:
            current = self.increment_counter(name)
        return current

    @abc.abstractmethod
    def read_state(self) -> bytes:
        """Return the sealed firmware state blob (empty if never written).

        Raises:
            IntegrityError: the stored state was modified outside the SE.
        """

    @abc.abstractmethod
    def write_state(self, data: bytes) -> None:
        """Replace the sealed state blob (at most `MAX_STATE_BYTES`)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing open
        """Release any connection the backend holds."""
