"""The live registry server of the tests: now `computewatch.testing`'s (re-exported)."""

from __future__ import annotations

from computewatch.testing import (
    HOST,
    ORIGIN,
    START_TIMEOUT_S,
    RegistryKeys,
    RegistryServer,
    free_port,
    registry_server,
)

__all__ = [
    "HOST",
    "ORIGIN",
    "START_TIMEOUT_S",
    "RegistryKeys",
    "RegistryServer",
    "free_port",
    "registry_server",
]
