"""`computewatch audit`: the whole audit through the CLI against a live registry on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import TYPE_CHECKING

import pytest

from computewatch.inspection import SampleDraw, verify_draw
from tests.inspection.audit_world import AuditWorld, audit_world, plan_args

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

V_NONCE = "11" * 32
A_NONCE = "22" * 32
B_NONCE = "33" * 32


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditWorld]:
    """One live registry for the module; each test audits its own period."""
    root = tmp_path_factory.mktemp("audit-world")
    with audit_world(root, f"sqlite:///{root / 'registry.db'}") as w:
        yield w


def _commit_all(w: AuditWorld, folder: Path) -> None:
    assert w.cli(*plan_args(w, folder, folder.parent.name)) == 0
    assert w.cli("audit", "commit", "--dir", str(folder), "--actor", "reg-1",
                 "--key", str(w.key_file("reg-1")), "--nonce", V_NONCE) == 0  # fmt: skip
    for lab, nonce in (("lab-a", A_NONCE), ("lab-b", B_NONCE)):
        assert w.cli("audit", "commit", "--dir", str(folder), "--actor", lab,
                     "--key", str(w.key_file(lab)), "--nonce", nonce,
                     "--nonce-file", str(folder.parent / f"{lab}.nonce")) == 0  # fmt: skip


def _reveal_all(w: AuditWorld, folder: Path) -> None:
    assert w.cli("audit", "start", "--dir", str(folder)) == 0
    for actor in ("reg-1", "lab-a", "lab-b"):
        extra = [] if actor == "reg-1" else ["--nonce-file", str(folder.parent / f"{actor}.nonce")]
        assert w.cli("audit", "reveal", "--dir", str(folder), "--actor", actor,
                     "--key", str(w.key_file(actor)), *extra) == 0  # fmt: skip


def _evidence_steps(w: AuditWorld, folder: Path) -> int:
    d = ["--dir", str(folder)]
    s = ["--submissions", str(w.submissions)]
    assert w.cli("audit", "sample", *d) == 0
    assert w.cli("audit", "inspect", *d, *s) == 0
    assert w.cli("audit", "verify", *d, *s, "--cluster-key", str(w.cluster_key)) == 0
    pub = str(w.root / "keys" / "cluster.pub")
    assert w.cli("audit", "rules", *d, *s, "--cluster-pub", pub) == 0
    return w.cli("audit", "report", *d)


@pytest.fixture(scope="module")
def audited(world: AuditWorld, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whole audit of the period, step by step through the CLI."""
    folder = tmp_path_factory.mktemp("period-1") / "audit"
    _commit_all(world, folder)
    _reveal_all(world, folder)
    # lab-b presents none of its chips: each sampled chip is a finding; exit 1
    assert _evidence_steps(world, folder) == 1
    return folder


def test_the_whole_audit_runs_from_the_cli_and_reruns_byte_identically(
    world: AuditWorld, audited: Path, tmp_path: Path
) -> None:
    folder = audited
    doc = json.loads((folder / "report" / "audit.json").read_text())
    assert doc["compliant"] == {"lab-a": True, "lab-b": False}
    # no tlog-policy in the plan: the report says what the checkpoints were trusted on
    assert doc["plan"]["checkpoint_trust"] == (
        "checkpoints trusted on the log operator's signature alone (no tlog-policy in the plan)"
    )
    assert "signature alone" in (folder / "report" / "audit.md").read_text()
    plan = json.loads((folder / "plan.json").read_text())
    assert {p: v["sample_size"] for p, v in plan["provers"].items()} == {"lab-a": 3, "lab-b": 3}
    for prover in doc["provers"]:
        draw = SampleDraw.from_json(prover["sample"])
        verify_draw(draw)
        assert draw.verifier_nonce.hex() == V_NONCE
        assert len(draw.candidates) == 6
        assert len(draw.chips) == 3
    b = next(p for p in doc["provers"] if p["prover"] == "lab-b")
    assert [f["kind"] for f in b["findings"]] == ["chip-missing"] * 3
    html = (folder / "report" / "audit.html").read_text()
    assert "data:image/png;base64," in html
    first = (folder / "report" / "audit.json").read_bytes()
    # the same inputs and nonces: rerun every step in place, and in a fresh folder
    assert _evidence_steps(world, folder) == 1
    assert (folder / "report" / "audit.json").read_bytes() == first
    again = tmp_path / "again"
    again.mkdir()
    for name in ("plan.json", "checkpoint.txt"):
        shutil.copy(folder / name, again / name)
    shutil.copytree(folder / "verifier", again / "verifier")
    assert _evidence_steps(world, again) == 1
    assert (again / "report" / "audit.json").read_bytes() == first


def test_a_prover_committing_after_the_verifiers_reveal_is_refused(
    world: AuditWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "audit"
    assert world.cli(*plan_args(world, folder, tmp_path.name)) == 0
    v = ["--dir", str(folder), "--actor", "reg-1", "--key", str(world.key_file("reg-1"))]
    assert world.cli("audit", "commit", *v) == 0
    assert world.cli("audit", "start", "--dir", str(folder)) == 0
    assert world.cli("audit", "reveal", *v) == 0
    # lab-b sees the Verifier's nonce, then commits (from its own copy of the plan)
    own = tmp_path / "lab-b-copy"
    own.mkdir()
    shutil.copy(folder / "plan.json", own / "plan.json")
    nonce_file = str(tmp_path / "b.nonce")
    b = ["--actor", "lab-b", "--key", str(world.key_file("lab-b")), "--nonce-file", nonce_file]
    assert world.cli("audit", "commit", "--dir", str(own), *b) == 0
    assert world.cli("audit", "reveal", "--dir", str(own), *b) == 0
    capsys.readouterr()
    assert world.cli("audit", "sample", "--dir", str(folder), "--prover", "lab-b") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "after the Verifier's reveal" in err
    assert "Traceback" not in err
    # and the Verifier's folder refuses a commitment once the period started
    assert world.cli("audit", "commit", "--dir", str(folder), *b) == 2
    assert "too late" in capsys.readouterr().err


def test_a_reveal_that_does_not_match_its_commitment_is_refused(
    world: AuditWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "audit"
    _commit_all(world, folder)
    (tmp_path / "lab-a.nonce").write_text("44" * 32 + "\n")  # not the committed nonce
    _reveal_all(world, folder)
    capsys.readouterr()
    assert world.cli("audit", "sample", "--dir", str(folder), "--prover", "lab-a") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "does not match its commitment" in err
    assert not (folder / "sample" / "lab-a.json").exists()
    # lab-b's own commit-reveal is in order: its draw stands
    assert world.cli("audit", "sample", "--dir", str(folder), "--prover", "lab-b") == 0


def test_a_period_with_a_missing_reveal_is_refused(
    world: AuditWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "audit"
    _commit_all(world, folder)
    v = ["--dir", str(folder), "--actor", "reg-1", "--key", str(world.key_file("reg-1"))]
    assert world.cli("audit", "start", "--dir", str(folder)) == 0
    assert world.cli("audit", "reveal", *v) == 0
    capsys.readouterr()
    assert world.cli("audit", "sample", "--dir", str(folder), "--prover", "lab-a") == 2
    assert f"period {tmp_path.name}: the Prover lab-a's reveal is not in" in capsys.readouterr().err


_CHROMIUM = shutil.which("chromium")
if _CHROMIUM is None and os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
    pytest.fail("CI must install chromium (scripts/install-system-deps.sh)", pytrace=False)


def _chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert _CHROMIUM is not None
    argv = [
        _CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        *args, page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)  # noqa: S603


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(
    _CHROMIUM is None, reason="needs Debian's chromium (scripts/install-system-deps.sh)"
)
def test_the_html_report_opens_in_headless_chromium(audited: Path, tmp_path: Path) -> None:
    import matplotlib.image as mpimg  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    page = audited / "report" / "audit.html"
    doc = json.loads((audited / "report" / "audit.json").read_text())
    shot = tmp_path / "shot.png"
    run = _chromium(page, tmp_path / "p1", f"--screenshot={shot}", "--window-size=1200,1600")
    assert _console(run.stderr) == []
    pixels = np.asarray(mpimg.imread(shot))
    assert pixels.shape[0] > 100
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20
    dom = _chromium(page, tmp_path / "p2", "--dump-dom")
    assert _console(dom.stderr) == []
    findings = [(a["prover"], f) for a in doc["provers"] for f in a["findings"]]
    assert findings, "the report must have findings to show"
    for n, (prover, f) in enumerate(findings, 1):
        anchor = f'id="finding-{prover}-{n}"'
        assert anchor in dom.stdout
        assert f'href="#finding-{prover}-{n}"' in dom.stdout
        assert f'href="{f["evidence"]}"' in dom.stdout
        assert (page.parent / f["evidence"]).is_file()
    assert 'src="data:image/png;base64,' in dom.stdout
    # the console check can fail: a page that breaks the report's policy is caught
    bad = tmp_path / "bad.html"
    bad.write_text(
        page.read_text().replace("</body>", '<img src="http://127.0.0.1:9/x.png"></body>')
    )
    assert _console(_chromium(bad, tmp_path / "p3", "--dump-dom").stderr)


def test_holdings_are_those_at_the_checkpoint_proved_and_replayed(world: AuditWorld) -> None:
    from computewatch.crypto import Checkpoint  # noqa: PLC0415
    from computewatch.errors import IntegrityError  # noqa: PLC0415
    from computewatch.supplychain import AuditQueries, RegistryClient  # noqa: PLC0415

    w = world.world
    with RegistryClient(world.server.url, world.keys.log.verifier) as client:
        for lab in ("lab-c", "lab-d"):
            client.submit(w.register(lab, "owner"))
        serials = ["CW-C000", "CW-C001"]
        client.submit(w.fabricate("fab-1", serials))
        client.submit(w.custody("transfer", "fab-1", serials, to="lab-c"))
        client.submit(w.custody("receive", "lab-c", serials))
        client.submit(w.custody("register-owner", "lab-c", serials))
        before = client.checkpoint()
        client.submit(w.custody("resell", "lab-c", serials[:1], to="lab-d"))
        client.submit(w.custody("receive", "lab-d", serials[:1]))
        after = client.checkpoint()
        queries = AuditQueries(client)
        held = queries.holdings("lab-c", before)
        assert [h.serial for h in held] == serials
        assert [h.serial for h in queries.holdings("lab-c", after)] == serials[1:]
        registrar = world.keys.registrar.verifying_key
        assert queries.replay(before, "registrar", registrar).holdings("lab-c") == held
        forged = Checkpoint(before.origin, before.size, bytes(32))
        with pytest.raises(IntegrityError):
            queries.holdings("lab-c", forged)
        with pytest.raises(IntegrityError):
            queries.replay(forged, "registrar", registrar)
