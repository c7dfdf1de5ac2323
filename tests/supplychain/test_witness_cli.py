"""`computewatch witness keygen|serve` refuse bad input with one line and exit 2."""

from __future__ import annotations

import json
import stat
from typing import TYPE_CHECKING

from computewatch.cli import main
from computewatch.crypto import (
    CosignatureKind,
    Cosigner,
    CosignerKey,
    MerkleLog,
    NoteSigner,
    Receipt,
)
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


def test_registry_verify_checks_an_offline_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signer = NoteSigner.generate("log.test/r")
    witnesses = [Cosigner.generate(f"w{i}.test") for i in range(3)]
    policy = f"log {signer.verifier.vkey}\n"
    policy += "".join(f"witness W{i} {w.key.vkey}\n" for i, w in enumerate(witnesses))
    (tmp_path / "policy").write_text(policy + "group g 2 W0 W1 W2\nquorum g\n")
    log = MerkleLog.in_memory()
    log.append_many([b"a", b"chip entry", b"c"])
    signed = log.checkpoint(signer)
    lines = [w.cosign(signed.checkpoint, timestamp=10) for w in witnesses[:2]]
    good = Receipt(1, log.inclusion_proof(1), signed.with_signatures(lines), b"chip entry")
    thin = Receipt(1, log.inclusion_proof(1), signed.with_signatures(lines[:1]), b"chip entry")
    (tmp_path / "good").write_text(good.to_text())
    (tmp_path / "thin").write_text(thin.to_text())
    (tmp_path / "entry").write_bytes(b"chip entry")
    base = ["registry", "verify", "--policy", str(tmp_path / "policy"), "--origin", "log.test/r"]
    assert main([*base, str(tmp_path / "good"), "--entry", str(tmp_path / "entry"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["witnesses"] == ["W0", "W1"]
    assert main([*base, str(tmp_path / "thin")]) == 1
    assert "quorum not met" in capsys.readouterr().err
    (tmp_path / "entry").write_bytes(b"another entry")
    assert main([*base, str(tmp_path / "good"), "--entry", str(tmp_path / "entry")]) == 1
    assert "tampering" in capsys.readouterr().err
