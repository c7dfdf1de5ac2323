"""Which secure element the chip-evidence attacks build their chips on: file, or a TPM each.

The attacks of issue 16 make every chip through `element_uri` (None: the
sealed-file element in the chip's folder) and move the element's own clock
through `advance_element_clock`, so one attack runs unchanged on either
backend. `use_elements` selects them for a block::

    with use_elements(TpmElements(swtpm_server)) as tpms:
        attack.detect(attack.create(workdir, 0, []), None, rng)
        tpms.close()  # stop this trial's simulators

`TpmElements` starts one TPM 2.0 simulator per chip (the caller supplies
how, e.g. ``tests.chip.swtpm.swtpm_server``: a TPM holds one identity) and
advances a TPM's clock with TPM2_ClockSet under the owner's authorization,
as simulated chip-days need.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from pathlib import Path

    from computewatch.chip import SecureElement

__all__ = ["Elements", "FileElements", "TpmElements", "current_elements", "use_elements"]


class Elements(Protocol):
    """A source of secure elements for the attacks' chips."""

    name: str

    def uri(self, folder: Path, serial: str) -> str | None:
        """The element URI for a new chip in ``folder`` (None: the file element)."""
        ...


class FileElements:
    """The sealed-file element in each chip's folder (its clock is simulated by the attack)."""

    name = "file"

    def uri(self, folder: Path, serial: str) -> str | None:
        """No URI: `Chip.provision` makes the file element."""
        del folder, serial
        return None


class TpmElements:
    """A fresh TPM 2.0 simulator for every chip, stopped by `close`."""

    name = "tpm"

    def __init__(self, server: Callable[[Path], AbstractContextManager[tuple[str, int]]]) -> None:
        """``server(state_folder)`` starts a simulator and yields its (host, port)."""
        self._server = server
        self._stack = contextlib.ExitStack()

    def uri(self, folder: Path, serial: str) -> str | None:
        """Start a simulator with its state beside the chip's folder; its ``tpm:`` URI."""
        host, port = self._stack.enter_context(self._server(folder.parent / f"tpm-{serial}"))
        return f"tpm:{host}:{port}"

    def close(self) -> None:
        """Stop every simulator started so far."""
        self._stack.close()


_CURRENT: list[Elements] = [FileElements()]


def current_elements() -> Elements:
    """The elements the attacks use now."""
    return _CURRENT[-1]


@contextlib.contextmanager
def use_elements(elements: Elements) -> Iterator[Elements]:
    """Build the attacks' chips on ``elements`` within the block."""
    _CURRENT.append(elements)
    try:
        yield elements
    finally:
        _CURRENT.pop()


def advance_element_clock(se: SecureElement, seconds: float) -> None:
    """Move a TPM's own clock forward (TPM2_ClockSet, owner authorization): simulated chip time.

    The TPM clock only moves forward, and only its owner may set it; the
    attacks use this to stand for days of chip time in a trial of seconds.
    """
    from tpm2_pytss import ESYS_TR  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: PLC0415

    esapi = se._esapi  # type: ignore[attr-defined]  # noqa: SLF001 - the TPM element's own context
    now = int(esapi.read_clock().clockInfo.clock)
    esapi.clock_set(new_time=now + round(seconds * 1000), auth=ESYS_TR.OWNER)
