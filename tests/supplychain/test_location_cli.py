"""`computewatch location ...`, end to end on real files and a real UDP landmark."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from computewatch.chip import Chip
from computewatch.cli import main
from computewatch.crypto import MerkleLog, SigningKey, VerifyingKey
from computewatch.supplychain import (
    Landmark,
    LandmarkCore,
    LandmarkServer,
    LicensedRegion,
    LocationLog,
    RegionConstraint,
    RegistryClient,
)
from tests.supplychain.server import ORIGIN, RegistryKeys, registry_server
from tests.supplychain.world import World

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    maker = SigningKey.from_seed(b"M" * 32)
    with Chip.provision(tmp_path / "chip", "CW-CLI-1", maker.verifying_key) as chip:
        chip.public_key.save(tmp_path / "chip.pub")
    lm_key = SigningKey.from_seed(b"L" * 32)
    lm_key.save(tmp_path / "lm.key")
    checker = SigningKey.from_seed(b"C" * 32)
    checker.save(tmp_path / "checker.key")
    (tmp_path / "landmarks.json").write_text(
        json.dumps([Landmark("lm-cli", 50.1, 8.7, lm_key.verifying_key).to_json()])
    )
    region = LicensedRegion("cli-site", (RegionConstraint("lm-cli", 40_000.0),))
    (tmp_path / "region.json").write_text(json.dumps(region.to_json()))
    with LandmarkServer(LandmarkCore("lm-cli", lm_key)) as server:
        host, port = server.address
        yield tmp_path, f"{host}:{port}"


def _check_args(d: Path, *extra: str) -> list[str]:
    return [
        "location", "check", "--serial", "CW-CLI-1", "--chip-key", str(d / "chip.pub"),
        "--region", str(d / "region.json"), "--landmarks", str(d / "landmarks.json"),
        "--measurements", str(d / "m.json"), *extra,
    ]  # fmt: skip


def test_answer_then_check_logs_an_inside_check(
    files: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    d, address = files
    code, out, err = run(
        capsys, "location", "answer", "--chip", str(d / "chip"),
        "--landmark", f"lm-cli={address}", "--out", str(d / "m.json"),
    )  # fmt: skip
    assert code == 0, err
    assert "3 measurements" in out
    log_args = ("--log", str(d / "loc.db"), "--log-key", str(d / "checker.key"), "--json")
    code, out, err = run(capsys, *_check_args(d, *log_args))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["status"] == "inside"
    assert doc["log_index"] == 0
    checker = SigningKey.load(d / "checker.key").verifying_key
    with MerkleLog.open(d / "loc.db") as merkle:
        [logged] = LocationLog(merkle, checker).checks()
    assert logged.inside
    # the same measurements again, against a tiny radius: outside, exit 1
    (d / "region.json").write_text(
        json.dumps({"id": "cli-site", "within": [{"landmark": "lm-cli", "radius_km": 1e-6}]})
    )
    code, out, _ = run(capsys, *_check_args(d))
    assert code == 1
    assert "outside cli-site" in out


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"m.json": "{"}, "--measurements"),
        ({"m.json": '{"measurements": [1]}'}, "--measurements"),
        ({"region.json": '{"within": []}'}, "licensed region"),
        ({"landmarks.json": "[{}]"}, "landmark"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    files: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    needle: str,
) -> None:
    d, _ = files
    (d / "m.json").write_text('{"measurements": []}')
    for name, text in change.items():
        (d / name).write_text(text)
    code, out, err = run(capsys, *_check_args(d))
    assert code == 2, out + err
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_answer_and_landmark_refuse_bad_options(
    files: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    d, _ = files
    code, _, err = run(
        capsys, "location", "answer", "--chip", str(d / "chip"),
        "--landmark", "nohost", "--out", str(d / "m.json"),
    )  # fmt: skip
    assert code == 2
    assert "ID=HOST:PORT" in err
    code, _, err = run(
        capsys, "location", "landmark", "--id", "x", "--key", str(d / "lm.key"), "--bind", "bad"
    )
    assert code == 2
    assert "HOST:PORT" in err
    ready = d / "ready"
    code, out, _ = run(
        capsys, "location", "landmark", "--id", "lm-x", "--key", str(d / "lm.key"),
        "--bind", "127.0.0.1:0", "--ready-file", str(ready), "--serve-for", "0.2",
    )  # fmt: skip
    assert code == 0
    assert ready.read_text().startswith("127.0.0.1:")
    assert "serving on udp" in out


def test_simulate_writes_the_campaign(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "location", "simulate", "--trials", "5", "--out", str(tmp_path / "c.json")
    )
    assert code == 0
    assert json.loads(out)["diverted_flagged"]["trials"] == 5
    assert json.loads((tmp_path / "c.json").read_text())["honest_false_flags"]["trials"] == 5
    code, _, err = run(capsys, "location", "simulate", "--trials", "0")
    assert code == 2
    assert "--trials" in err


def test_checks_go_to_the_registry_and_back(
    files: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`registry request license-region / location-check`, `registry locations`, `report`."""
    d, address = files
    keys = RegistryKeys.create(d / "keys")
    keys.registrar.save(d / "registrar.key")
    world = World(ORIGIN, keys.registrar)
    world.key("insp-1").save(d / "insp.key")
    chip_key = VerifyingKey.load(d / "chip.pub")
    code, _, err = run(
        capsys, "location", "answer", "--chip", str(d / "chip"),
        "--landmark", f"lm-cli={address}", "--out", str(d / "m.json"),
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run(capsys, *_check_args(d, "--json"))
    assert code == 0, err
    (d / "check.json").write_text(out)
    with registry_server(keys, f"sqlite:///{d / 'registry.db'}") as server:
        with RegistryClient(server.url, keys.log.verifier) as client:
            client.submit(world.register("fab-1", "fab"))
            client.submit(world.register("insp-1", "verifier"))
            chips = [{"serial": "CW-CLI-1", "key": chip_key.raw.hex(), "model": "cw-test"}]
            client.submit(world.request("fabricate", "fab-1", {"chips": chips}))
        common = ("--origin", ORIGIN, "--server", server.url, "--log-key", keys.log.verifier.vkey)
        code, out, err = run(
            capsys, "registry", "request", "location-check", "--actor", "insp-1",
            "--key", str(d / "insp.key"), "--check", str(d / "check.json"), *common,
        )  # fmt: skip
        assert code == 1, out + err  # no licence yet: refused, one line
        assert "no licensed region" in err
        assert len(err.strip().splitlines()) == 1
        code, out, err = run(
            capsys, "registry", "request", "license-region", "--actor", "registrar",
            "--key", str(d / "registrar.key"), "--serial", "CW-CLI-1",
            "--region", str(d / "region.json"), *common,
        )  # fmt: skip
        assert code == 0, err
        code, out, err = run(
            capsys, "registry", "request", "location-check", "--actor", "insp-1",
            "--key", str(d / "insp.key"), "--check", str(d / "check.json"), *common,
        )  # fmt: skip
        assert code == 0, err
        assert "logged at index 4" in out
        read = ("--server", server.url, "--log-key", keys.log.verifier.vkey)
        code, out, err = run(capsys, "registry", "locations", "CW-CLI-1", *read, "--json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["region"]["id"] == "cli-site"
        assert [(c["status"], c["log_index"]) for c in doc["checks"]] == [("inside", 4)]
        code, out, err = run(capsys, "registry", "locations", "CW-CLI-1", *read)
        assert "licensed to cli-site" in out
        assert "#4" in out
        code, out, err = run(capsys, "registry", "report", *read)
        assert code == 0, out
        (d / "bad.json").write_text('{"serial": "CW-CLI-1", "status": "inside"}')
        code, out, err = run(
            capsys, "registry", "request", "location-check", "--actor", "insp-1",
            "--key", str(d / "insp.key"), "--check", str(d / "bad.json"), *common,
        )  # fmt: skip
        assert code == 2, out + err
        assert "--check" in err
        assert "Traceback" not in err
