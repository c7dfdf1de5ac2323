"""Presentation helpers shared by the CLI commands (private)."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from rich.console import Console

#: Human output (tables, messages) goes to stdout; JSON is written raw, not through Rich.
console = Console(highlight=False)
#: Diagnostics and progress bars go to stderr so `--json` output stays clean.
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def emit_json(doc: Any) -> None:
    """Write `doc` as indented JSON to stdout (no Rich markup or wrapping)."""
    sys.stdout.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    sys.stdout.flush()


_PLAIN_BELOW = 1000  # the paper prints counts below 1000 in full


def sig3(x: float | None) -> str:
    """Format like the paper's tables: integers below 1000, else `2.43e4`."""
    if x is None:
        return "—"
    if abs(x) < _PLAIN_BELOW and float(x).is_integer():
        return str(int(x))
    if abs(x) < _PLAIN_BELOW:
        return f"{x:.3g}"
    exponent = math.floor(math.log10(abs(x)))
    mantissa = round(x / 10**exponent, 2)
    if abs(mantissa) >= 10:  # noqa: PLR2004 - rounding carried into the next power
        mantissa /= 10
        exponent += 1
    text = f"{mantissa:.2f}".rstrip("0").rstrip(".")
    return f"{text}e{exponent}"


def say(text: str) -> None:
    """Print one message line to stdout without wrapping it."""
    console.print(text, soft_wrap=True)
