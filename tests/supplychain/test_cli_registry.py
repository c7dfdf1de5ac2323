"""`computewatch registry ...` end to end against a live server (itself `registry serve`)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from computewatch.cli import main
from tests.supplychain.server import ORIGIN, RegistryKeys, registry_server

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def served(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[str, Path]]:
    keys = RegistryKeys.create(tmp_path / "keys")
    keys.registrar.save(tmp_path / "registrar.key")
    for name in ("fab", "own", "chip", "chip2"):
        assert run(capsys, "keys", "generate", str(tmp_path / f"{name}.key"))[0] == 0
    (tmp_path / "log.vkey").write_text(keys.log.verifier.vkey + "\n")
    with registry_server(keys, f"sqlite:///{tmp_path / 'r.db'}") as server:
        yield server.url, tmp_path


def test_cli_registry_workflow(
    served: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    url, d = served
    srv = ["--server", url, "--log-key", str(d / "log.vkey")]
    common = ["--origin", ORIGIN, *srv]

    def register(actor: str, role: str, key: str) -> None:
        code, out, err = run(
            capsys, "registry", "request", "register-actor", "--actor", "registrar",
            "--key", str(d / "registrar.key"), "--cosign", str(d / f"{key}.key"), "--id", actor,
            "--role", role, "--new-key", str(d / f"{key}.key.pub"), *common,
        )  # fmt: skip
        assert code == 0, err
        assert "logged at index" in out

    register("fab-1", "fab", "fab")
    register("own-1", "owner", "own")
    code, out, err = run(
        capsys, "registry", "request", "fabricate", "--actor", "fab-1", "--key", str(d / "fab.key"),
        "--chip", f"CLI-1={d / 'chip.key.pub'}", "--chip", f"CLI-2={d / 'chip2.key.pub'}",
        "--model", "cw-x", *common,
    )  # fmt: skip
    assert code == 0, err
    req = d / "transfer.json"
    code, out, err = run(
        capsys, "registry", "request", "transfer", "--actor", "fab-1", "--key", str(d / "fab.key"),
        "--serial", "CLI-1", "--to", "own-1", "--origin", ORIGIN, "--out", str(req),
    )  # fmt: skip
    assert code == 0, err
    code, _, err = run(capsys, "registry", "submit", str(req), *srv)
    assert code == 1
    assert "needs the signatures of fab-1 and own-1" in err
    assert run(capsys, "registry", "cosign", str(req), "--key", str(d / "own.key"))[0] == 0
    code, out, err = run(capsys, "registry", "submit", str(req), *srv, "--json")
    assert code == 0, err
    assert json.loads(out)["receipt"].startswith("c2sp.org/tlog-proof@v1")
    code, _, err = run(capsys, "registry", "submit", str(req), *srv)
    assert (code, err.splitlines()[0].split(":")[0]) == (1, "replay refused")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(
        capsys, "registry", "request", "register-owner", "--actor", "own-1",
        "--key", str(d / "own.key"), "--serial", "CLI-1", *common,
    )  # fmt: skip
    assert code == 1
    assert err.startswith("custody rule broken: rule not-in-transit")
    code, _, err = run(
        capsys, "registry", "request", "receive", "--actor", "own-1", "--key", str(d / "own.key"),
        "--serial", "CLI-1", *common,
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = run(capsys, "registry", "chip", "CLI-1", *srv, "--json")
    doc = json.loads(out)
    assert (doc["chip"]["holder"], doc["chip"]["status"]) == ("own-1", "held")
    assert [e["kind"] for e in doc["history"]] == ["fabricated", "transferred", "received"]
    assert "received by own-1" in run(capsys, "registry", "chip", "CLI-1", *srv)[1]
    assert "fab-1: fab" in run(capsys, "registry", "actor", "fab-1", *srv)[1]
    code, out, _ = run(capsys, "registry", "checkpoint", *srv, "--save", str(d / "cp.txt"))
    assert (code, "signature verified" in out) == (0, True)
    code, _, err = run(
        capsys, "registry", "request", "register-owner", "--actor", "own-1",
        "--key", str(d / "own.key"), "--serial", "CLI-1", "--site", "dc-1", *common,
    )  # fmt: skip
    assert code == 0, err
    code, out, _ = run(capsys, "registry", "checkpoint", *srv, "--since", str(d / "cp.txt"))
    assert code == 0
    assert "consistent with the saved size" in out
    assert run(capsys, "registry", "prove", "2", *srv)[0] == 0
    assert run(capsys, "registry", "report", *srv)[:2] == (0, "no discrepancies\n")
    assert (
        run(capsys, "registry", "audit", *srv, "--registrar", str(d / "keys" / "registrar.pub"))[0]
        == 0
    )
    later = str(round((time.time() + 10 * 365 * 86400) * 1e6))
    code, out, _ = run(capsys, "registry", "report", *srv, "--now-us", later, "--json")
    assert code == 1  # CLI-2 was fabricated and never registered to an owner
    items = json.loads(out)["items"]
    assert [(i["kind"], i["serials"], i["responsible"]) for i in items] == [
        ("fabricated-never-registered", ["CLI-2"], "fab-1")
    ]


def test_cli_registry_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "keys", "generate", str(tmp_path / "a.key"))[0] == 0
    key = str(tmp_path / "a.key")
    code, _, err = run(
        capsys, "registry", "request", "teleport", "--actor", "a", "--key", key, "--origin", "o"
    )
    assert code == 2
    assert err.startswith("bad input: request kind")
    code, _, err = run(
        capsys, "registry", "chip", "X", "--server", "http://127.0.0.1:9", "--log-key", "nope"
    )
    assert code == 2
    assert "--log-key" in err
    code, out, _ = run(
        capsys, "registry", "keygen", "--out", str(tmp_path / "log.skey"), "--origin", "t/log"
    )
    assert code == 0
    assert "t/log+" in out
    assert (tmp_path / "log.skey").stat().st_mode & 0o777 == 0o600
    code, _, err = run(
        capsys, "registry", "keygen", "--out", str(tmp_path / "log.skey"), "--origin", "t/log"
    )
    assert code == 2
    vkey = out.split("key: ")[1].strip()
    code, _, err = run(
        capsys, "registry", "report", "--server", "http://127.0.0.1:9", "--log-key", vkey
    )
    assert code == 1
    assert err.startswith("check unavailable: registry")
