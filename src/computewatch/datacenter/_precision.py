"""Mixed precision as part of the run: the autocast a run's loss is computed under.

A run that trains under ``torch.autocast`` computes its forward in a lower
precision, and its replay must do the same to reproduce it. The precision
is a field of the run's configuration, ``config["autocast"]`` (absent or
None: full float32; ``"bfloat16"``), so the manifest commits to it and every
replay reads it from there (`autocast_for`). Nothing about the replay's
tolerance comes from it: on a pinned CPU environment a bf16 replay is
bitwise equal to the original like any other, and elsewhere the tolerance
comes from the Verifier's own replays (ADR 0041).

float16 is refused: it trains with a dynamic loss scaler whose skipped
steps the replay does not reproduce.

Example::

    >>> import torch
    >>> with autocast_for({"autocast": "bfloat16"}):
    ...     y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    >>> y.dtype
    torch.bfloat16
    >>> with autocast_for({}):
    ...     y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    >>> y.dtype
    torch.float32
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from computewatch.errors import FormatError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["AUTOCAST_DTYPES", "autocast_for", "autocast_name"]

#: The autocast precisions a run may declare.
AUTOCAST_DTYPES = ("bfloat16",)


def autocast_name(config: Mapping[str, Any]) -> str | None:
    """The run's declared autocast dtype, or None (float32).

    Raises:
        FormatError: ``config["autocast"]`` is neither absent, None nor one of
            `AUTOCAST_DTYPES` (the manifest is the Prover's: checked, not trusted).
    """
    value = config.get("autocast")
    if value is None:
        return None
    if not isinstance(value, str) or value not in AUTOCAST_DTYPES:
        msg = f"config field 'autocast': expected one of {AUTOCAST_DTYPES} or null, got {value!r}"
        raise FormatError(msg)
    return value


def autocast_for(
    config: Mapping[str, Any], device_type: str = "cpu"
) -> contextlib.AbstractContextManager[Any]:
    """The context a run's forward and loss run under (a no-op for float32 runs)."""
    name = autocast_name(config)
    if name is None:
        return contextlib.nullcontext()
    import torch  # noqa: PLC0415

    return torch.autocast(device_type=device_type, dtype=getattr(torch, name))
