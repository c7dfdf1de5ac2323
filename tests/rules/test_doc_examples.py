"""The runnable examples in the rules modules' docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "computewatch.rules",
    "computewatch.rules._benchmarks",
    "computewatch.rules._estimate",
    "computewatch.rules._evaluate",
    "computewatch.rules._expr",
    "computewatch.rules._facts",
    "computewatch.rules._ruleset",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
