"""The runnable examples in the witness, cosignature, policy, tiles and trust modules stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "computewatch.crypto._cosignature",
    "computewatch.crypto._cpstore",
    "computewatch.crypto._policy",
    "computewatch.crypto._tiles",
    "computewatch.crypto._trust",
    "computewatch.crypto._witness",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
