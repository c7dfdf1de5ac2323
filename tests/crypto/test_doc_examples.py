"""The runnable examples in the crypto modules' docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "computewatch.crypto._canonical",
    "computewatch.crypto._digest",
    "computewatch.crypto._dsse",
    "computewatch.crypto._keys",
    "computewatch.crypto._shard",
    "computewatch.crypto.hazmat",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
