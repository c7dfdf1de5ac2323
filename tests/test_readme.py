"""The README's command list agrees with the command line itself.

The block under "## Command line" in README.md has one entry per command:
a line ``computewatch PATH ...`` and any indented continuation lines. The
set of commands, and each command's options, are derived from the Typer/Click
tree of `computewatch.cli.app` (so a command added anywhere shows up here)
and compared with the README both ways. Two shorthands are understood:

* ``[... NAME options]`` includes the options of the entry whose command ends
  in NAME (e.g. ``[... plan options]`` for ``sampling plan``);
* ``computewatch GROUP a|b|c ...`` names a group's commands and leaves their
  options to ``computewatch GROUP COMMAND --help``.

A failure prints what the command line has, ready to paste into the README.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from computewatch.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
OPTION = re.compile(r"--[a-z0-9][a-z0-9-]*")
INCLUDE = re.compile(r"\.\.\. ([a-z0-9]+) options")


@dataclass
class Command:
    """One leaf command of the CLI: its path and long options."""

    path: tuple[str, ...]
    options: dict[str, frozenset[str]] = field(default_factory=dict)  # primary -> spellings
    arguments: tuple[str, ...] = ()

    def synopsis(self) -> str:
        parts = ["computewatch", *self.path, *self.arguments]
        parts += [f"[{min(spellings, key=len)}]" for spellings in self.options.values()]
        return " ".join(parts)


@functools.cache
def _tree() -> tuple[dict[tuple[str, ...], Command], dict[tuple[str, ...], list[str]]]:
    """Leaf commands and groups (path -> subcommand names) of the CLI."""
    root = typer.main.get_command(app)
    leaves: dict[tuple[str, ...], Command] = {}
    groups: dict[tuple[str, ...], list[str]] = {}

    def walk(cmd: Any, path: tuple[str, ...], ctx: Any) -> None:
        if hasattr(cmd, "list_commands"):
            names = list(cmd.list_commands(ctx))
            groups[path] = names
            for name in names:
                sub = cmd.get_command(ctx, name)
                walk(sub, (*path, name), type(ctx)(sub, parent=ctx, info_name=name))
            return
        command = Command(path)
        arguments = []
        for param in cmd.params:
            if param.param_type_name == "option":
                names = [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]
                if names and "--help" not in names:
                    command.options[names[0]] = frozenset(names)
            else:
                arguments.append(str(param.name).upper())
        command.arguments = tuple(arguments)
        leaves[path] = command

    walk(root, (), root.make_context("computewatch", [], resilient_parsing=True))
    return leaves, groups


def _readme_entries() -> list[str]:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Command line\n+```\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert match is not None, "README.md: no ``` block under '## Command line'"
    entries: list[str] = []
    for line in match.group(1).splitlines():
        if line.startswith("computewatch "):
            entries.append(line)
        elif line.strip():
            assert line[0].isspace(), f"README command list: stray line {line!r}"
            assert entries, f"README command list: continuation before a command: {line!r}"
            entries[-1] += " " + line.strip()
    return entries


def _path_of(entry: str, groups: dict[tuple[str, ...], list[str]]) -> tuple[str, ...]:
    path: tuple[str, ...] = ()
    for word in entry.split()[1:]:
        if path in groups and word in groups[path]:
            path = (*path, word)
        else:
            break
    return path


@dataclass
class Readme:
    """What the README says: options per leaf command, and groups left to --help."""

    options: dict[tuple[str, ...], set[str]]
    deferred: dict[tuple[str, ...], set[str]]
    unknown: list[str]


@functools.cache
def _parse_readme() -> Readme:
    leaves, groups = _tree()
    readme = Readme({}, {}, [])
    includes: dict[tuple[str, ...], list[str]] = {}
    for entry in _readme_entries():
        path = _path_of(entry, groups)
        rest = entry.split()[1 + len(path) :]
        if path in groups and rest and "|" in rest[0] and "..." in rest[1:2]:
            readme.deferred[path] = set(rest[0].split("|"))
        elif path in leaves:
            assert path not in readme.options, f"README lists {' '.join(path)} twice"
            readme.options[path] = set(OPTION.findall(entry))
            includes[path] = INCLUDE.findall(entry)
        else:
            readme.unknown.append(entry)
    for path, names in includes.items():
        for name in names:
            (source,) = [p for p in readme.options if p[-1] == name and p != path]
            readme.options[path] |= readme.options[source]
    return readme


def test_readme_names_only_real_commands() -> None:
    readme = _parse_readme()
    assert readme.unknown == [], "README lists commands the CLI does not have"
    _, groups = _tree()
    for group, names in readme.deferred.items():
        assert names == set(groups[group]), (
            f"README: computewatch {' '.join(group)} lists {sorted(names)}, "
            f"the CLI has {sorted(groups[group])}"
        )


def test_every_command_is_in_the_readme() -> None:
    leaves, _ = _tree()
    readme = _parse_readme()
    missing = [
        leaves[p].synopsis()
        for p in leaves
        if p not in readme.options and p[:-1] not in readme.deferred
    ]
    assert missing == [], "commands missing from README's command list:\n" + "\n".join(missing)


@pytest.mark.parametrize("path", sorted(_parse_readme().options), ids=" ".join)
def test_readme_options_match_the_command(path: tuple[str, ...]) -> None:
    leaves, _ = _tree()
    readme = _parse_readme()
    command = leaves[path]
    listed = readme.options[path]
    missing = [min(s, key=len) for s in command.options.values() if not s & listed]
    spelled = set().union(*command.options.values()) if command.options else set()
    extra = sorted(listed - spelled)
    assert (missing, extra) == ([], []), (
        f"README entry for computewatch {' '.join(path)}: missing {missing}, unknown {extra}; "
        f"the CLI has: {command.synopsis()}"
    )


def test_each_group_help_lists_the_commands_the_readme_checks() -> None:
    """The tree the tests read is the one `--help` prints."""
    _, groups = _tree()
    runner = CliRunner()
    for group, names in groups.items():
        result = runner.invoke(app, [*group, "--help"])
        assert result.exit_code == 0, result.output
        for name in names:
            assert re.search(rf"^\W*{re.escape(name)}\b", result.output, re.MULTILINE), (
                f"computewatch {' '.join(group)} --help does not list {name}"
            )


def test_the_parser_sees_drift() -> None:
    """The comparison can fail: an option the CLI lacks is reported."""
    leaves, groups = _tree()
    path = ("chip", "boot")
    entry = "computewatch chip boot DIR --firmware FW.json --no-such-option"
    assert _path_of(entry, groups) == path
    assert set(OPTION.findall(entry)) - set().union(*leaves[path].options.values()) == {
        "--no-such-option"
    }
