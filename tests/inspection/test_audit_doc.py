"""docs/audit.md is a tutorial that runs: its shell blocks, in order, from an empty folder."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def _blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_audit_tutorial_runs_from_an_empty_folder_to_a_report(tmp_path: Path) -> None:
    blocks = _blocks(DOC.read_text())
    assert len(blocks) >= 8
    # one bash session; the registry is stopped even when a block fails
    script = (
        "set -euo pipefail\n"
        "trap 'kill $(cat registry/server.pid 2>/dev/null) 2>/dev/null || true' EXIT\n"
    )
    script += "\n".join(blocks)
    env = dict(os.environ, PORT=str(_free_port()))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    run = subprocess.run(  # noqa: S603
        ["bash", "-c", script],  # noqa: S607
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = tmp_path / "tutorial" / "audit" / "report"
    doc = json.loads((report / "audit.json").read_text())
    assert doc["compliant"] == {"lab-a": True}
    assert len(doc["provers"][0]["sample"]["chips"]) == 2  # Equation 1: s = 2
    assert (report / "audit.html").read_text().startswith("<!DOCTYPE html>")
    assert "Audit report: period 2026-12" in (report / "audit.md").read_text()
    plan = json.loads((tmp_path / "tutorial" / "audit" / "plan.json").read_text())
    policy = plan["verification"]["policy"]
    assert (policy["pol_segments"], policy["max_compute"], len(policy["heuristics"])) == (2, 0.5, 5)
