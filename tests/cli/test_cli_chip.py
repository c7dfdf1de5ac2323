"""`computewatch keys` and `computewatch chip`, end to end on real files."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from computewatch.cli import main

if TYPE_CHECKING:
    from pathlib import Path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    key = tmp_path / "maker.key"
    assert run(capsys, "keys", "generate", str(key), "--json")[0] == 0
    (tmp_path / "fw.bin").write_bytes(b"firmware")
    for v in ("1", "2"):
        code, _, _ = run(
            capsys,
            "chip",
            "firmware",
            "--chipmaker-key",
            str(key),
            "--code",
            str(tmp_path / "fw.bin"),
            "--version",
            v,
            "--out",
            str(tmp_path / f"fw{v}.json"),
        )
        assert code == 0
    code, out, _ = run(
        capsys,
        "chip",
        "create",
        str(tmp_path / "chip"),
        "--serial",
        "CW-CLI",
        "--chipmaker",
        str(tmp_path / "maker.key.pub"),
        "--json",
    )
    assert code == 0
    assert json.loads(out)["serial"] == "CW-CLI"
    return tmp_path


def test_boot_log_verify_attest(made: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chip = str(made / "chip")
    code, out, _ = run(capsys, "chip", "boot", chip, "--firmware", str(made / "fw2.json"))
    assert code == 0
    assert "booted computewatch-fw v2" in out
    code, _, err = run(capsys, "chip", "boot", chip, "--firmware", str(made / "fw1.json"))
    assert code == 1
    assert err.startswith("tampering detected:")
    assert "rollback refused" in err
    code, out, _ = run(capsys, "chip", "log", chip, "--json")
    assert [e["kind"] for e in json.loads(out)] == ["firmware-update", "boot"]
    code, out, _ = run(capsys, "chip", "log", chip)
    assert "firmware-update" in out
    code, out, _ = run(capsys, "chip", "verify", chip, "--json")
    assert json.loads(out) == {
        "verified": True,
        "entries": 2,
        "kinds": {"firmware-update": 1, "boot": 1},
    }
    code, out, _ = run(capsys, "chip", "attest", chip, "--nonce", "00112233445566778899")
    assert json.loads(out)["payload"]["nonce"] == "00112233445566778899"
    code, out, _ = run(
        capsys, "chip", "attest", chip, "--nonce", "0011223344556677", "--out", str(made / "a.json")
    )
    assert code == 0
    assert (made / "a.json").exists()


def test_tampered_log_exits_1_with_one_line(made: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chip = made / "chip"
    run(capsys, "chip", "boot", str(chip), "--firmware", str(made / "fw1.json"))
    log = chip / "nvram.log"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[1])  # drop the first entry
    code, _, err = run(capsys, "chip", "verify", str(chip))
    assert code == 1
    assert "seq mismatch" in err
    assert len(err.strip().splitlines()) == 1
    # verifying offline against the registered key names key substitution
    code, _, err = run(capsys, "chip", "verify", str(chip), "--key", str(made / "maker.key.pub"))
    assert code == 1
    assert "key was substituted" in err


def test_bad_inputs(made: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chip = str(made / "chip")
    assert run(capsys, "chip", "attest", chip, "--nonce", "zz")[0] == 2
    assert run(capsys, "chip", "attest", chip, "--nonce", "00")[0] == 2
    code, _, err = run(capsys, "chip", "boot", chip, "--firmware", str(made / "missing.json"))
    assert code == 2
    assert "'--firmware'" in err
    assert "missing.json': no such file" in err
    code, _, err = run(capsys, "chip", "log", str(made / "nochip"))
    assert code == 2
    code, _, err = run(capsys, "keys", "generate", str(made / "maker.key"))
    assert code == 2  # refuses to overwrite
    code, _, err = run(
        capsys, "chip", "create", chip, "--serial", "X", "--chipmaker", str(made / "maker.key.pub")
    )
    assert code == 2
    assert "already holds a chip" in err
