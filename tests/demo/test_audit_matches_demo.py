"""The audit through the CLI, on the demo's submissions, against a live registry on each backend.

The demo runs its audit through the library functions behind `computewatch
audit`; here the same Provers' submissions (the demo's chips and
transcripts) are audited again step by step through the CLI against a fresh
registry server on 127.0.0.1, once over SQLite and once over PostgreSQL, and
must get the demo's verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from computewatch.chip import Chip
from computewatch.cli import main
from computewatch.crypto import SigningKey
from computewatch.demo import SCALES
from computewatch.supplychain import RegistryClient
from tests.supplychain.server import ORIGIN, RegistryKeys, registry_server
from tests.supplychain.world import World

if TYPE_CHECKING:
    from tests.demo.conftest import DemoRun
    from tests.supplychain.pg import PostgresServer

RULES = str(Path(__file__).resolve().parents[2] / "examples" / "rules.yaml")

#: The scale `demo_run` runs: the same story on fewer chips and shorter runs.
SCALE = SCALES["tiny"]


@pytest.fixture
def demo(demo_run: DemoRun) -> Path:
    assert demo_run.doc["compliant"] == {"lab-a": True, "lab-b": False}
    return demo_run.out


def _outcome(report: dict[str, Any]) -> dict[str, Any]:
    """Per Prover: compliant, and per run the verdict, whether a check failed, violated rules.

    Which checks fail can depend on which chips were sampled (each audit
    draws its own sample), so only whether any failed is compared.
    """
    out: dict[str, Any] = {}
    for a in report["provers"]:
        runs = {
            run: (
                v["verdict"],
                any(c["status"] == "fail" for c in v["checks"]),
                sorted(r["id"] for r in v["rules"] if r["status"] in ("violation", "error")),
            )
            for run, v in a["verdicts"].items()
        }
        out[a["prover"]] = (a["compliant"], runs)
    return out


def _register(client: RegistryClient, world: World, submissions: Path) -> None:
    for actor, role in (("fab-1", "fab"), ("regulator", "verifier"), ("lab-a", "owner"),
                        ("lab-b", "owner")):  # fmt: skip
        client.submit(world.register(actor, role))
    for lab in ("lab-a", "lab-b"):
        specs = []
        for folder in sorted((submissions / lab / "chips").iterdir()):
            with Chip.open(folder) as chip:
                specs.append(
                    {"serial": chip.serial, "key": chip.public_key.raw.hex(), "model": "cw"}
                )
        serials = [s["serial"] for s in specs]
        client.submit(world.request("fabricate", "fab-1", {"chips": specs}))
        client.submit(world.custody("transfer", "fab-1", serials, to=lab))
        client.submit(world.custody("receive", lab, serials))
        client.submit(world.custody("register-owner", lab, serials))


def _audit(demo: Path, root: Path, db_url: str) -> dict[str, Any]:
    keys = RegistryKeys.create(root / "registry")
    world = World(ORIGIN, keys.registrar)
    for actor in ("lab-a", "lab-b", "regulator"):
        world.key(actor).save(root / f"{actor}.key")
    cluster = SigningKey.generate()
    cluster.save(root / "cluster.key")
    cluster.verifying_key.save(root / "cluster.pub")
    folder = str(root / "audit")
    subs = ["--submissions", str(demo / "submissions")]
    with registry_server(keys, db_url) as server:
        with RegistryClient(server.url, keys.log.verifier) as client:
            _register(client, world, demo / "submissions")
        d = ["--dir", folder]
        assert main(["audit", "plan", *d, "--server", server.url, "--log-key",
                     keys.log.verifier.vkey, "--period", "p1", "--verifier", "regulator",
                     "--prover", "lab-a", "--prover", "lab-b", "--flops", str(SCALE.run_chips),
                     "--chip-flops-per-day", "1", "--run-days", "1", "--snapshots-per-day", "3",
                     "--period-days", "1", "--rules", RULES]) == 0  # fmt: skip
        for actor in ("regulator", "lab-a", "lab-b"):
            nonce = ["--nonce-file", str(root / f"{actor}.nonce")] if actor != "regulator" else []
            key = ["--actor", actor, "--key", str(root / f"{actor}.key"), *nonce]
            assert main(["audit", "commit", *d, *key]) == 0
        assert main(["audit", "start", *d]) == 0
        for actor in ("regulator", "lab-a", "lab-b"):
            nonce = ["--nonce-file", str(root / f"{actor}.nonce")] if actor != "regulator" else []
            assert main(["audit", "reveal", *d, "--actor", actor, "--key",
                         str(root / f"{actor}.key"), *nonce]) == 0  # fmt: skip
        assert main(["audit", "sample", *d]) == 0
        assert main(["audit", "inspect", *d, *subs]) == 0
        assert main(["audit", "verify", *d, *subs, "--cluster-key", str(root / "cluster.key")]) == 0
        assert main(["audit", "rules", *d, *subs, "--cluster-pub", str(root / "cluster.pub")]) == 0
        assert main(["audit", "report", *d]) == 1  # lab-b is caught
    report: dict[str, Any] = json.loads((root / "audit" / "report" / "audit.json").read_text())
    return report


@pytest.mark.slow
def test_the_cli_audit_over_sqlite_gets_the_demos_verdicts(demo: Path, tmp_path: Path) -> None:
    expected = _outcome(json.loads((demo / "audit" / "report" / "audit.json").read_text()))
    got = _outcome(_audit(demo, tmp_path, f"sqlite:///{tmp_path / 'registry.db'}"))
    assert got == expected
    assert expected["lab-b"][0] is False


@pytest.mark.slow
def test_the_cli_audit_over_postgresql_gets_the_demos_verdicts(
    demo: Path, tmp_path: Path, postgres: PostgresServer
) -> None:
    expected = _outcome(json.loads((demo / "audit" / "report" / "audit.json").read_text()))
    got = _outcome(_audit(demo, tmp_path, postgres.create_database("cw_audit_demo")))
    assert got == expected
