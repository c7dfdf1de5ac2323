"""Bad-input cases for every CLI command, derived from the Click tree.

`cases()` walks `typer.main.get_command(computewatch.cli.app)`, so a command
added later is swept without editing this file: each option gets the bad
values of its type (numbers: empty, text, negative, zero, NaN, infinities,
huge, denormal, non-UTF-8; text: empty, control characters, non-UTF-8, a
100 kB; paths: by the role their parser declares, see
`computewatch.cli._paths`). A case either *must be refused*
(exit 2, or 1 for evidence shown to be tampered, with one line on stderr) or
*may be answered*, boundedly and correctly (no traceback, no NaN or infinity
printed, an output reported as written exists).

Values are templates: ``{name}`` is filled in by the test's world (real keys,
chips, a registry server) and ``{new}`` is a fresh empty folder per case.
"""

from __future__ import annotations

import enum
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from computewatch.cli import app
from computewatch.cli._paths import PathRole, role_of

__all__ = ["BASE", "EXPENSIVE", "Case", "annotation", "cases", "commands", "path_role"]


#: Valid arguments per command; a mutated option replaces its entry here.
BASE: dict[str, list[str]] = {
    "simulate": ["--trials", "200", "--seed", "1"],
    "location simulate": ["--trials", "20"],  # the default 300 is seconds a case
    "demo": ["--out", "{new}/demo", "--no-strict"],
    "sampling table1": [],
    "sampling plan": ["--flops", "1e25", "--chips", "100000"],
    "sampling inspectors": [],
    "sampling pool": ["--prover", "a=1000", "--flops", "1e25"],
    "sampling figure2": ["--out", "{new}/f.png"],
    "sampling theorem1": [],
    "keys generate": ["{new}/k"],
    "chip create": ["{new}/c", "--serial", "CW-9", "--chipmaker", "{maker_pub}"],
    "chip firmware": [
        *("--chipmaker-key", "{maker_key}", "--code", "{code}"),
        *("--version", "1", "--out", "{new}/fw.json"),
    ],
    "chip boot": ["{chip_copy}", "--firmware", "{fw}"],
    "chip log": ["{chip}"],
    "chip verify": ["{chip}"],
    "chip attest": ["{chip}", "--nonce", "00" * 16],
    "registry keygen": ["--out", "{new}/log.skey", "--origin", "example.org/log"],
    "registry serve": [
        *("--db", "sqlite:///{new}/r.db", "--key", "{log_skey}"),
        *("--registrar", "{registrar_pub}", "--port", "{port}"),
    ],
    "registry request": [
        *("damage", "--actor", "lab", "--key", "{maker_key}"),
        *("--origin", "{origin}", "--serial", "CW-1", "--out", "{new}/req.json"),
    ],
    "registry cosign": ["{request_copy}", "--key", "{maker_key}"],
    "registry submit": ["{request}", "--server", "{server}", "--log-key", "{vkey}"],
    "registry chip": ["CW-1", "--server", "{server}", "--log-key", "{vkey}"],
    "registry actor": ["registrar", "--server", "{server}", "--log-key", "{vkey}"],
    "registry checkpoint": ["--server", "{server}", "--log-key", "{vkey}"],
    "registry prove": ["0", "--server", "{server}", "--log-key", "{vkey}"],
    "registry report": ["--server", "{server}", "--log-key", "{vkey}"],
    "registry audit": [
        *("--server", "{server}", "--log-key", "{vkey}", "--registrar", "{registrar_pub}"),
    ],
    "cluster verify": [
        *("--transcript", "{transcript}", "--report", "{report}"),
        *("--key", "{maker_key}", "--out", "{new}/verdict.json", "--no-strict"),
    ],
    "rules check": ["{rules}"],
    "rules eval": ["{rules}", "--facts", "{facts}"],
    "bench attacks": ["--trials", "1"],
}

#: Commands whose valid run is long or never ends (a server): only cases that
#: must be refused (up front) run, and the valid base is never run.
EXPENSIVE = frozenset({"demo", "registry serve", "cluster verify", "bench attacks"})

#: Numeric options for which 0 is a meaningful value.
ZERO_OK = frozenset(
    {
        ("simulate", "seed"),
        ("location simulate", "seed"),
        ("simulate", "offset_days"),
        ("cluster verify", "seed"),
        ("registry prove", "index"),
        ("registry report", "now_us"),
    }
)
#: Evidence options whose bad content is answered by a signed FAIL verdict (exit 1):
#: the Verifier needs that verdict, so it is the correct answer, not a crash. The
#: Prover's step-audit answers are evidence too: a bad folder fails its audits.
VERDICT_ANSWERS = frozenset(
    {
        ("cluster verify", "report"),
        ("cluster verify", "transcript"),
        ("cluster verify", "answers"),
    }
)
#: Chip folders whose tampered log is reported, not refused: an attestation is
#: the secure element's own count, the very evidence that shows the log cut short.
TAMPERED_CHIP_ANSWERED = frozenset({("chip attest", "folder")})
#: Text options for which the empty string is a meaningful value.
EMPTY_OK: frozenset[tuple[str, str]] = frozenset()

_HUGE_TEXT = "x" * 100_000
_NON_UTF8 = "\udcff\udcfe"  # what Python makes of argv bytes 0xff 0xfe
_NUMBER_REFUSED = ["", "abc", "nan", "inf", "-inf", "1e400", _NON_UTF8, "0x10"]
_NUMBER_ANSWERED = ["1e308", "5e-324"]
_INT_REFUSED = ["", "abc", "nan", "inf", "1.5", "1e3", _NON_UTF8]
_INT_ANSWERED = [str(10**30)]
_PATH_REFUSED = ["", "{new}/a\x00b", "{new}/" + "n" * 300, "{file}/x"]
_ROLE_REFUSED: dict[PathRole | None, list[str]] = {
    PathRole.INPUT_FILE: [
        *("{new}/missing/x", "{dir}", "{empty}", "{garbage}"),
        *("{truncated_json}", "{non_utf8}", "{huge}"),
    ],
    PathRole.INPUT_BYTES: ["{new}/missing/x", "{dir}", "{huge}"],
    PathRole.INPUT_FOLDER: ["{new}/missing/x", "{file}", "{dir}", "{bad_chip}"],
    PathRole.OUTPUT_FILE: ["{dir}", "{new}/missing/x"],
    PathRole.OUTPUT_FOLDER: ["{file}", "{dir}"],
    None: [],  # a path option that declares no role: only what is bad for every path
}
_ROLE_ANSWERED: dict[PathRole | None, list[str]] = {
    PathRole.OUTPUT_FILE: ["{new}/" + _NON_UTF8],
    PathRole.OUTPUT_FOLDER: ["{new}/missing/x"],
}
_OUTPUTS = {PathRole.OUTPUT_FILE, PathRole.OUTPUT_FOLDER}


@dataclass(frozen=True)
class Case:
    """One bad invocation and what must come of it."""

    command: str
    label: str
    argv: tuple[str, ...]
    must_refuse: bool
    #: A path template that must exist if the command exits 0 (an output).
    output: str | None = None
    #: The printed answer must not hold NaN or infinity (a numeric option).
    numeric: bool = False
    #: Exit 1 (a verdict of failure) also counts as refusing this value.
    verdict: bool = False

    @property
    def id(self) -> str:
        """A short, printable test id."""
        shown = self.label.replace("x" * 20, "").replace("n" * 20, "")
        shown = shown.encode("ascii", "backslashreplace").decode()[:60]
        return f"{self.command} {shown}"


def commands() -> dict[str, Any]:
    """Every leaf command of the CLI by its full name ("chip boot")."""
    out: dict[str, Any] = {}

    def walk(command: Any, path: list[str]) -> None:
        subs = getattr(command, "commands", None)
        if subs is not None:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            out[" ".join(path)] = command

    walk(typer.main.get_command(app), [])
    return out


def path_role(param: Any) -> PathRole | None:
    """What a path option declares it is for (its `computewatch.cli._paths` parser)."""
    return role_of(param.type_descriptor.parameter_info.parser)


def annotation(param: Any) -> Any:
    hint = param.type_descriptor.annotation
    if typing.get_origin(hint) is list:
        return typing.get_args(hint)[0]
    return hint


def _default_base(command: Any) -> list[str]:
    """Valid-looking arguments for a command this file does not know yet."""
    argv: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        kind = annotation(param)
        value = "{new}/x" if kind is Path else "1" if kind in {int, float} else "x"
        argv.extend([value] if param.param_type_name == "argument" else [param.opts[0], value])
    return argv


def _replace(base: list[str], command: Any, param: Any, value: str | None) -> list[str]:
    """`base` with `param` of `command` set to `value` (None: left out)."""
    argv = list(base)
    if param.param_type_name == "argument":
        # arguments are the base's leading bare words, in declaration order
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        position = arguments.index(param)
        if value is None:
            del argv[position]
        else:
            argv[position] = value
        return argv
    while any(o in argv for o in param.opts):  # drop every occurrence
        i = next(i for i, a in enumerate(argv) if a in param.opts)
        del argv[i : i + 2]
    return argv if value is None else [*argv, param.opts[0], value]


def _values(name: str, param: Any) -> list[tuple[str, bool, bool]]:
    """(value, must_refuse, numeric) for one option."""
    kind = annotation(param)
    key = (name, param.name)
    if kind is bool:
        return []
    if kind in {int, float}:
        refused = list(_INT_REFUSED if kind is int else _NUMBER_REFUSED)
        answered = list(_INT_ANSWERED if kind is int else _NUMBER_ANSWERED)
        (answered if key in ZERO_OK else refused).append("0")
        refused.append("-1")
        return [(v, True, True) for v in refused] + [(v, False, True) for v in answered]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return [(v, True, False) for v in ("", "no-such-choice", _NON_UTF8)]
    if kind is Path:
        role = path_role(param)
        refused = [*_PATH_REFUSED, *_ROLE_REFUSED[role]]
        answered = list(_ROLE_ANSWERED.get(role, []))
        if key in TAMPERED_CHIP_ANSWERED:
            refused.remove("{bad_chip}")
            answered.append("{bad_chip}")
        return [(v, True, False) for v in refused] + [(v, False, False) for v in answered]
    return [
        ("", key not in EMPTY_OK, False),
        ("a\nb\x1b[2J", False, False),
        (_NON_UTF8, False, False),
        (_HUGE_TEXT, False, False),
    ]


def cases() -> list[Case]:
    """Every bad-input case of every command."""
    out: list[Case] = []
    for name, command in commands().items():
        base = BASE.get(name) or _default_base(command)
        expensive = name in EXPENSIVE
        if not expensive:
            out.append(Case(name, "valid base", tuple(base), must_refuse=False))
        for param in command.params:
            flag = param.opts[0] if param.opts else param.name
            if param.required:
                argv = tuple(_replace(base, command, param, None))
                out.append(Case(name, f"{param.name} missing", argv, must_refuse=True))
            if param.param_type_name == "option" and not getattr(param, "is_flag", False):
                bare = (*_replace(base, command, param, None), flag)
                out.append(Case(name, f"{flag} without a value", bare, must_refuse=True))
            role = path_role(param)
            for value, refuse, numeric in _values(name, param):
                if expensive and not refuse:
                    continue
                output = value if role in _OUTPUTS else None
                argv = tuple(_replace(base, command, param, value))
                verdict = (name, param.name) in VERDICT_ANSWERS
                label = f"{flag}={value!r}"
                out.append(Case(name, label, argv, refuse, output, numeric, verdict))
    return out
