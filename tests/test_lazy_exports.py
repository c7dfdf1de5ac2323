"""Packages load a public name's module on first use (ADR 0043), and every name still resolves."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

PACKAGES = [
    "analysis",
    "attacks",
    "chip",
    "crypto",
    "datacenter",
    "demo",
    "inspection",
    "rules",
    "supplychain",
    "testing",
    "verification",
]
HEAVY = ("torch", "fastapi", "sqlalchemy", "scipy", "matplotlib", "transformers")


@pytest.mark.parametrize("name", PACKAGES)
def test_every_public_name_resolves_and_lists(name: str) -> None:
    package = importlib.import_module(f"computewatch.{name}")
    for public in package.__all__:
        assert getattr(package, public) is not None
        assert public in dir(package)
    with pytest.raises(AttributeError, match="has no attribute 'not_a_name'"):
        _ = package.not_a_name


def _imported_by(code: str, names: tuple[str, ...] = HEAVY) -> list[str]:
    heavy = f"sorted(m for m in {names!r} if m in sys.modules)"
    probe = f"import sys, json\n{code}\nprint(json.dumps({heavy}))"
    run = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    return list(json.loads(run.stdout.splitlines()[-1]))


def test_a_cli_call_imports_only_what_its_command_needs() -> None:
    assert _imported_by("from computewatch.cli import main; main(['keys', '--help'])") == []
    assert _imported_by("import computewatch.supplychain, computewatch.inspection") == []
    # the whole tree (what `--help` shows) still has every command group
    groups = ("computewatch.cli._audit", "computewatch.cli._registry", "computewatch.cli._keys")
    called = _imported_by("from computewatch.cli import main; main(['keys', '--help'])", groups)
    assert called == ["computewatch.cli._keys"]
    assert _imported_by("from computewatch.cli import main; main(['--help'])", groups) == sorted(
        groups
    )
