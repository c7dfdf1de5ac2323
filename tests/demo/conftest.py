"""The PostgreSQL fixture of the supply-chain tests, for the demo's audit on both backends."""

from tests.supplychain.conftest import postgres

__all__ = ["postgres"]
