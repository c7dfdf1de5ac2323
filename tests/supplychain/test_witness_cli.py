"""`computewatch witness keygen|serve` refuse bad input with one line and exit 2."""

from __future__ import annotations

import stat
from typing import TYPE_CHECKING

from computewatch.cli import main
from computewatch.crypto import CosignatureKind, CosignerKey
from computewatch.supplychain import load_cosigner

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_keygen_writes_a_private_key_and_prints_its_vkey(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["witness", "keygen", "--out", str(tmp_path / "k"), "--name", "w.test"]) == 0
    vkey = capsys.readouterr().out.rsplit(" ", 1)[1].strip()
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    assert load_cosigner(tmp_path / "k").key == CosignerKey.from_vkey(vkey)
    assert main(["witness", "keygen", "--out", str(tmp_path / "m"), "--name", "m", "--mldsa"]) == 0
    assert load_cosigner(tmp_path / "m").key.kind is CosignatureKind.MLDSA44
    capsys.readouterr()
    assert main(["witness", "keygen", "--out", str(tmp_path / "k"), "--name", "w.test"]) == 2
    assert "cannot create" in capsys.readouterr().err


def test_serve_refuses_unsafe_keys_and_bad_log_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["witness", "keygen", "--out", str(tmp_path / "k"), "--name", "w.test"])
    (tmp_path / "k").chmod(0o644)
    capsys.readouterr()
    base = ["witness", "serve", "--db", str(tmp_path / "s.db"), "--key", str(tmp_path / "k")]
    assert main([*base, "--log", "log.test+00000000+AAAA"]) == 2
    err = capsys.readouterr().err.strip()
    assert "0600" in err
    assert len(err.splitlines()) == 1
    (tmp_path / "k").chmod(0o600)
    assert main([*base, "--log", "log.test+00000000+AAAA"]) == 2
    assert "note verifier key" in capsys.readouterr().err
