"""Public names a package's ``__init__`` loads on first use (PEP 562).

A command that needs one name of a package should not pay for the imports
of all the others: ``computewatch audit commit`` reads no database and
serves no HTTP, yet importing `computewatch.supplychain` eagerly loads
FastAPI and SQLAlchemy (about 0.4 s of every CLI call). A package lists its
public names with the submodule that defines each; the real imports stay in
an ``if TYPE_CHECKING:`` block, so type checkers and readers see them as
usual, and the package installs `lazy_exports`' ``__getattr__`` only at run
time, so a misspelt name is still a type error.

Example:
    >>> import sys, types
    >>> pkg = types.ModuleType("example_pkg")
    >>> sys.modules["example_pkg"] = pkg
    >>> pkg.__getattr__, pkg.__dir__ = lazy_exports("example_pkg", {"dumps": "json"})
    >>> pkg.dumps([1])
    '[1]'
    >>> "dumps" in vars(pkg)  # cached after the first use
    True
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import ModuleType

__all__ = ["lazy_exports", "load_all"]


def lazy_exports(
    package: str, names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` that import each name from its module on use.

    Args:
        package: the package's ``__name__``.
        names: each public name and the module that defines it (absolute, or
            relative to `package` with a leading dot).
    """

    def __getattr__(name: str) -> Any:  # noqa: N807 - the PEP 562 hook
        module = names.get(name)
        if module is None:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the PEP 562 hook
        return sorted({*names, *vars(sys.modules[package])})

    return __getattr__, __dir__


def load_all(package: ModuleType) -> None:
    """Import every public name of `package` now (a zygote preloads before it forks)."""
    for name in getattr(package, "__all__", ()):
        getattr(package, name)
