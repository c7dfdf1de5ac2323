"""The runnable examples in the supplychain modules' docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "computewatch.supplychain",
    "computewatch.supplychain._requests",
    "computewatch.supplychain._directory",
    "computewatch.supplychain._reports",
    "computewatch.supplychain._sqllog",
    "computewatch.supplychain._settings",
    "computewatch.supplychain._registry",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
