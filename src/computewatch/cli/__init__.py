"""The `computewatch` command line: a thin shell over the library.

Every command parses its options, calls one library function and presents
the result as a table (people) or JSON (`--json`, programs). Errors are
printed as one line; the exit status is 0 (ok / compliant), 1 (violation or
failed verification) or 2 (bad input).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from typing import TYPE_CHECKING, Any

import typer

from computewatch import __version__
from computewatch.cli._output import err_console
from computewatch.errors import ComputeWatchError

__all__ = ["app", "main"]

#: The command groups in `--help` order, each the `app` of its module.
_GROUPS: dict[str, str] = {
    "sampling": "_sampling",
    "keys": "_keys",
    "chip": "_chip",
    "registry": "_registry",
    "cluster": "_cluster",
    "rules": "_rules",
    "bench": "_bench",
    "witness": "_witness",
    "location": "_location",
    "audit": "_audit",
}
#: The single commands: module and function.
_COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("_simulate", "simulate_cmd"),
    "demo": ("_demo", "demo_cmd"),
}
_HELP = "Compute monitoring for AI-training rules (Shavit, arXiv 2303.11341)."


def _version(value: bool) -> None:
    if value:
        typer.echo(f"computewatch {__version__}")
        raise typer.Exit


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Compute monitoring for AI-training rules (Shavit, arXiv 2303.11341)."""


def _module(name: str) -> Any:
    return importlib.import_module(f"{__name__}.{name}")


@functools.cache
def _typer(only: str | None = None) -> typer.Typer:
    """The CLI as a Typer app: every command, or only the one called `only`.

    A call names one command group, and importing the others' modules (the
    libraries behind them) would be most of a short call's time (ADR 0043),
    so `main` builds the tree of the command it runs.
    """
    root = typer.Typer(
        name="computewatch",
        help=_HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    for name, module in _GROUPS.items():
        if only in (None, name):
            root.add_typer(_module(module).app, name=name)
    for name, (module, function) in _COMMANDS.items():
        if only in (None, name):
            root.command(name)(getattr(_module(module), function))
    root.callback()(_root)
    return root


if TYPE_CHECKING:
    app: typer.Typer  # the whole CLI
else:

    def __getattr__(name: str) -> Any:
        if name == "app":  # the whole CLI, built on first use
            return _typer()
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)


@functools.cache
def _command(only: str | None = None) -> Any:
    """The Click command tree of `_typer(only)`, built once."""
    return typer.main.get_command(_typer(only))


def _called(argv: list[str]) -> str | None:
    """The command `argv` calls, when its first word names one; else None (the whole tree)."""
    first = argv[0] if argv else None
    return first if first in _GROUPS or first in _COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and, as a script, exit with) its status."""
    args = sys.argv[1:] if argv is None else argv
    command = _command(_called(args))
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 file name must not crash a print
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    try:
        status = command.main(args=args, prog_name="computewatch", standalone_mode=False)
    except typer.TyperException as e:  # usage errors: bad or missing options
        ctx = getattr(e, "ctx", None)
        where = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        if e.format_message():  # empty when a group was called bare and printed its help
            message = e.format_message().replace("Value error, ", "")  # pydantic's prefix
            err_console.print(f"bad usage: {message}{where}", markup=False)
        return 2
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted", markup=False)
        return 130
    except ComputeWatchError as e:
        err_console.print(e.diagnostics(), markup=False)
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except BrokenPipeError:  # `computewatch ... | head`
        return 0
    return status if isinstance(status, int) else 0


def _entry() -> None:  # pragma: no cover - exercised through the console script
    sys.exit(main())
