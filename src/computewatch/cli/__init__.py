"""The `computewatch` command line: a thin shell over the library.

Every command parses its options, calls one library function and presents
the result as a table (people) or JSON (`--json`, programs). Errors are
printed as one line; the exit status is 0 (ok / compliant), 1 (violation or
failed verification) or 2 (bad input).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from typing import Any

import typer

from computewatch import __version__
from computewatch.cli import (
    _audit,
    _bench,
    _chip,
    _cluster,
    _demo,
    _keys,
    _location,
    _registry,
    _rules,
    _sampling,
    _simulate,
    _witness,
)
from computewatch.cli._output import err_console
from computewatch.errors import ComputeWatchError

__all__ = ["app", "main"]

app = typer.Typer(
    name="computewatch",
    help="Compute monitoring for AI-training rules (Shavit, arXiv 2303.11341).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(_sampling.app, name="sampling")
app.add_typer(_keys.app, name="keys")
app.add_typer(_chip.app, name="chip")
app.add_typer(_registry.app, name="registry")
app.add_typer(_cluster.app, name="cluster")
app.add_typer(_rules.app, name="rules")
app.add_typer(_bench.app, name="bench")
app.add_typer(_witness.app, name="witness")
app.add_typer(_location.app, name="location")
app.add_typer(_audit.app, name="audit")
app.command("simulate")(_simulate.simulate_cmd)
app.command("demo")(_demo.demo_cmd)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"computewatch {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Compute monitoring for AI-training rules (Shavit, arXiv 2303.11341)."""


@functools.cache
def _command() -> Any:
    """The Click command tree of `app`, built once (building it takes most of a run)."""
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and, as a script, exit with) its status."""
    command = _command()
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 file name must not crash a print
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    try:
        status = command.main(args=argv, prog_name="computewatch", standalone_mode=False)
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
