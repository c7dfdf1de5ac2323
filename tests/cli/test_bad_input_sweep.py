"""Every CLI command, fed bad input, ends in one line and exit 2, or a bounded answer.

The cases come from `tests.cli.sweep` (derived from the Click tree, so new
commands are swept too). Each runs in-process through `computewatch.cli.main`
with a real world behind it (keys, chips, firmware, a live registry server on
127.0.0.1), inside its own empty working folder and under a per-case alarm: a
hang is a failure, never a stuck suite.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
import shutil
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import uvicorn
from tests.cli.sweep import Case, annotation, cases, commands, path_role
from tests.rules.facts import EXAMPLE_RULES, demo_facts

from computewatch.cli import main
from computewatch.supplychain import RegistrySettings, create_app
from computewatch.testing import ORIGIN, RegistryKeys

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

#: Seconds one case may take; past it the case counts as a hang (generous: the
#: suite shares two cores, and a bounded case takes well under a second of CPU).
CASE_LIMIT_S = 60
#: Size of the sparse "huge" input file: more than any reader may take whole.
HUGE_BYTES = 1 << 30
#: The sweep must try at least this many cases.
MIN_CASES = 1000

CASES = cases()
_NAN_OR_INF = re.compile(r"(?<![\w.])-?(nan|inf|infinity)(?![\w.])", re.IGNORECASE)


class Hang(BaseException):
    """A case ran past `CASE_LIMIT_S`."""


@dataclass(frozen=True)
class Outcome:
    """What one CLI run did."""

    code: int | None
    out: str
    err: str
    crash: str | None  # an exception that escaped main(), or a hang


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ok(*argv: str) -> None:
    outcome = _run(list(argv))
    assert outcome.code == 0, (argv, outcome)


def _write_bad_files(root: Path, w: dict[str, str]) -> None:
    (root / "dir").mkdir()
    (root / "dir" / "inside").write_bytes(b"x")
    (root / "file").write_bytes(b"a file\n")
    (root / "empty").write_bytes(b"")
    (root / "garbage").write_bytes(bytes(range(256)) * 4)
    (root / "truncated").write_bytes(b'{"payloadType": "application/vnd.in-toto+json", "pay')
    (root / "non-utf8").write_bytes(b"\xff\xfe{\x80\x81}")
    with (root / "huge").open("wb") as f:  # sparse: no disk, but 1 GiB to read
        f.truncate(HUGE_BYTES)
    for name in ("dir", "file", "empty", "garbage", "huge"):
        w[name] = str(root / name)
    w["truncated_json"], w["non_utf8"] = str(root / "truncated"), str(root / "non-utf8")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Real files and a live registry for the cases' templates."""
    root = tmp_path_factory.mktemp("sweep")
    # import the heavy stacks now: a case's alarm must never interrupt an import of torch
    importlib.import_module("computewatch.attacks")
    importlib.import_module("computewatch.demo")
    importlib.import_module("matplotlib.pyplot")
    w = {"origin": ORIGIN, "rules": str(EXAMPLE_RULES)}
    _ok("keys", "generate", str(root / "maker.key"))
    w["maker_key"], w["maker_pub"] = str(root / "maker.key"), str(root / "maker.key.pub")
    (root / "code.bin").write_bytes(b"firmware code")
    w["code"], w["fw"] = str(root / "code.bin"), str(root / "fw.json")
    _ok(
        *("chip", "firmware", "--chipmaker-key", w["maker_key"], "--code", w["code"]),
        *("--version", "1", "--out", w["fw"]),
    )
    w["chip"], w["fresh_chip"] = str(root / "chip"), str(root / "fresh")
    _ok("chip", "create", w["chip"], "--serial", "CW-1", "--chipmaker", w["maker_pub"])
    shutil.copytree(w["chip"], w["fresh_chip"])
    _ok("chip", "boot", w["chip"], "--firmware", w["fw"])
    bad = root / "bad-chip"
    shutil.copytree(w["chip"], bad)
    log = bad / "nvram.log"
    log.write_bytes(log.read_bytes()[:-7])  # a truncated log: tampering
    w["bad_chip"] = str(bad)
    w["request"] = str(root / "req.json")
    _ok(
        *("registry", "request", "damage", "--actor", "lab", "--key", w["maker_key"]),
        *("--origin", ORIGIN, "--serial", "CW-1", "--out", w["request"]),
    )
    (root / "facts.json").write_text(json.dumps(demo_facts().to_dict()), encoding="utf-8")
    w["facts"] = str(root / "facts.json")
    (root / "transcript").mkdir()
    (root / "report.json").write_text("{}", encoding="utf-8")
    w["transcript"], w["report"] = str(root / "transcript"), str(root / "report.json")
    _write_bad_files(root, w)
    keys = RegistryKeys.create(root / "registry")
    w["log_skey"], w["registrar_pub"] = str(keys.log_key_file), str(keys.registrar_pub)
    w["vkey"] = keys.log.verifier.vkey
    w["port"] = str(_free_port())
    with _registry_in_thread(keys, root / "registry" / "r.db") as url:
        w["server"] = url
        yield w


@contextlib.contextmanager
def _registry_in_thread(keys: RegistryKeys, db: Path) -> Iterator[str]:
    """The real registry app on uvicorn, in a thread of this process (fast to start)."""
    settings = RegistrySettings(
        db_url=f"sqlite:///{db}",
        log_key_file=keys.log_key_file,
        registrar_key_file=keys.registrar_pub,
    )
    store = settings.open_store(ORIGIN)
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings, store), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the registry server thread died"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise Hang


@contextlib.contextmanager
def _bounded(seconds: int) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _run(argv: list[str]) -> Outcome:
    """Run the CLI in-process with a strict UTF-8 stdout, as a terminal has."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace")
    crash = None
    code = None
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        with _bounded(CASE_LIMIT_S):
            code = main(argv)
    except Hang:
        crash = f"hang: still running after {CASE_LIMIT_S} s"
    except BaseException as e:  # noqa: BLE001 - anything escaping main() is the failure
        crash = f"traceback: {type(e).__name__}: {e!s:.300}"
    finally:
        sys.stdout, sys.stderr = saved
    texts = []
    for stream in (out, err):
        with contextlib.suppress(ValueError, UnicodeError):
            stream.flush()
        raw = stream.buffer
        assert isinstance(raw, io.BytesIO)
        texts.append(raw.getvalue().decode("utf-8", "backslashreplace"))
    return Outcome(code, texts[0], texts[1], crash)


def _fill(template: str, world: dict[str, str], new: Path) -> str:
    if "{chip_copy}" in template:
        shutil.copytree(world["fresh_chip"], new / "chip-copy")
        world = {**world, "chip_copy": str(new / "chip-copy")}
    if "{request_copy}" in template:
        shutil.copy(world["request"], new / "req-copy.json")
        world = {**world, "request_copy": str(new / "req-copy.json")}
    for key, value in {**world, "new": str(new)}.items():
        template = template.replace("{" + key + "}", value)
    return template


def _exists(path: str) -> bool:
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def problems(case: Case, outcome: Outcome, output: str | None) -> list[str]:
    """What is wrong with an outcome (empty: nothing)."""
    if outcome.crash is not None:
        return [outcome.crash]
    found = []
    if "Traceback" in outcome.out + outcome.err:
        found.append("a traceback was printed")
    err_lines = [line for line in outcome.err.splitlines() if line.strip()]
    tampering = bool(err_lines) and err_lines[-1].startswith("tampering detected")
    refused = outcome.code == 2 or (outcome.code == 1 and (tampering or case.verdict))
    if outcome.code == 2 and len(err_lines) != 1:
        found.append(f"refused with {len(err_lines)} lines on stderr, expected 1")
    if case.must_refuse and not refused:
        found.append(f"accepted: exit {outcome.code}, expected 2 (bad input)")
    if outcome.code not in {0, 1, 2}:
        found.append(f"exit {outcome.code}, expected 0, 1 or 2")
    if case.numeric and outcome.code in {0, 1} and _NAN_OR_INF.search(outcome.out):
        found.append("NaN or infinity in the answer")
    if output is not None and outcome.code == 0 and not _exists(output):
        found.append(f"exit 0 but the output {output!r:.80} was not written")
    return found


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    case: Case, world: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative path ("", ".") lands here, never in the repo
    argv = [*case.command.split(), *(_fill(a, world, tmp_path) for a in case.argv)]
    output = _fill(case.output, world, tmp_path) if case.output is not None else None
    outcome = _run(argv)
    found = problems(case, outcome, output)
    assert not found, (
        f"{case.id}: {'; '.join(found)}\n"
        f"stdout: {outcome.out[-400:]!r}\nstderr: {outcome.err[-400:]!r}"
    )


def test_sweep_covers_every_command_with_many_cases() -> None:
    assert {c.command for c in CASES} == set(commands())
    assert len(CASES) >= MIN_CASES, len(CASES)


def test_every_path_option_declares_what_it_is_for() -> None:
    undeclared = [
        f"{name} {param.name}"
        for name, command in commands().items()
        for param in command.params
        if annotation(param) is Path and path_role(param) is None
    ]
    assert not undeclared, f"give these a parser from computewatch.cli._paths: {undeclared}"


def test_constants_checked_before_the_slow_imports_match_their_sources() -> None:
    from computewatch.attacks import SCALES  # noqa: PLC0415 - heavy
    from computewatch.cli import _bench, _demo  # noqa: PLC0415
    from computewatch.demo import _scenario  # noqa: PLC0415 - heavy

    assert set(_bench.SCALE_NAMES) == set(SCALES)
    assert _demo.DEMO_MARKER == _scenario.MARKER


@pytest.mark.parametrize("port", ["65536", "0", "-1", str(10**30), "http"])
def test_registry_serve_refuses_a_bad_port_before_listening(
    port: str, world: dict[str, str], tmp_path: Path
) -> None:
    outcome = _run(
        [
            *("registry", "serve", "--db", f"sqlite:///{tmp_path / 'r.db'}"),
            *("--key", world["log_skey"], "--registrar", world["registrar_pub"], "--port", port),
        ]
    )
    assert outcome.crash is None, outcome.crash
    assert outcome.code == 2
    assert "--port" in outcome.err
    assert len(outcome.err.strip().splitlines()) == 1
    assert not (tmp_path / "r.db").exists()  # refused before the database was opened
