"""The live registry server of the tests: now `computewatch.testing`'s (re-exported)."""

from __future__ import annotations

from computewatch.testing import (
    HOST,
    ORIGIN,
    RegistryKeys,
    RegistryServer,
    registry_server,
)

__all__ = ["HOST", "ORIGIN", "RegistryKeys", "RegistryServer", "registry_server"]
