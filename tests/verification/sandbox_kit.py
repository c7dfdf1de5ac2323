"""Helpers shared by the sandbox tests (`test_sandbox.py`, `test_sandbox_setup.py`)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["missing_unshare", "py"]


def py(code: str, *args: str) -> list[str]:
    """``python -c CODE ARGS...`` with this interpreter."""
    return [sys.executable, "-c", code, *args]


def missing_unshare(tmp_path: Path) -> Path:
    """A path where no unshare(1) is."""
    return tmp_path / "no-such-dir" / "unshare"
