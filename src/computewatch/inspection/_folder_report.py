"""The audit folder's report step: ``report/audit.json``, ``audit.md``, ``audit.html``.

Built only from the folder's files (plan, sample, inspect, rules), so a
rerun on the same files gives the same bytes. A Prover is compliant only
if it has no finding and every verdict (checked by `check_verdicts` to be
its run's) passed its checks and rules. Every finding names its evidence
file, relative to the report.

Example::

    >>> write_folder_report(AuditFolder(Path("audit")))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch.inspection._checkpoints import NO_POLICY
from computewatch.inspection._folder import AuditFolder, read_json, write_bytes, write_json
from computewatch.inspection._html import render_html
from computewatch.inspection._period import load_plan
from computewatch.inspection._report import ReportPaths, plot_curves

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["FOLDER_REPORT_FORMAT", "write_folder_report"]

FOLDER_REPORT_FORMAT = "computewatch-audit/v2"


def _detection(b: float, p_w: float, s: int) -> float:
    return 1.0 - math.pow(1.0 - b * p_w, s)


def _prover_doc(folder: AuditFolder, prover: str) -> dict[str, Any]:
    sampled = read_json(folder.step("sample", prover), "audit sample")
    inspected = read_json(folder.step("inspect", prover), "audit inspection")
    checked = read_json(folder.step("rules", prover), "audit rules")
    up = Path("..")
    findings = [
        f | {"evidence": str(up / folder.relative(folder.step("inspect", prover)))}
        for f in inspected["findings"]
    ]
    findings += [
        f | {"evidence": str(up / folder.relative(folder.step("verify", prover)))}
        for f in checked["findings"]
    ]
    verdicts = {run: r["verdict"] for run, r in sorted(checked["runs"].items())}
    for run, v in verdicts.items():
        if v["verdict"] != "pass":
            failed = [c["name"] for c in v["checks"] if c["status"] == "fail"]
            broken = [r["id"] for r in v["rules"] if r["status"] in ("violation", "error")]
            detail = "; ".join(
                x
                for x in (
                    f"failed checks: {', '.join(failed)}" if failed else "",
                    f"violated rules: {', '.join(broken)}" if broken else "",
                )
                if x
            )
            findings.append(
                {
                    "serial": "-",
                    "kind": "verdict-fail",
                    "detail": f"run {run!r}: {detail or 'no check passed'}",
                    "evidence": str(up / checked["runs"][run]["verdict_file"]),
                }
            )
    return {
        "prover": prover,
        "compliant": not findings,
        "sample": sampled["draw"],
        "log_indices": sampled["log_indices"],
        "inspections": inspected["inspections"],
        "findings": findings,
        "verdicts": verdicts,
        "verdict_files": {
            run: str(up / r["verdict_file"]) for run, r in sorted(checked["runs"].items())
        },
    }


def write_folder_report(folder: AuditFolder, provers: Sequence[str] | None = None) -> ReportPaths:
    """Write the report of every planned Prover (or of `provers`) to ``report/``."""
    plan = load_plan(folder)
    names = sorted(provers or plan["provers"])
    audits = [_prover_doc(folder, p) for p in names]
    first = read_json(folder.step("sample", names[0]), "audit sample")
    target = float(plan["params"]["detection_probability"])
    summary = {}
    for name in names:
        p = plan["provers"][name]
        summary[name] = p | {
            "detection_probability": _detection(
                p["run_fraction"], p["snapshot_probability"], p["sample_size"]
            )
        }
    doc = {
        "format": FOLDER_REPORT_FORMAT,
        "plan": {
            "period": plan["period"],
            "origin": plan["registry"]["origin"],
            "verifier": plan["verifier"],
            "checkpoint_size": first["checkpoint"]["size"],
            "checkpoint_root": first["checkpoint"]["root"],
            "checkpoint_trust": str(first["checkpoint"].get("trust", NO_POLICY)),
            "params": plan["params"],
            "target": target,
            "provers": summary,
        },
        "provers": audits,
        "compliant": {a["prover"]: a["compliant"] for a in audits},
    }
    out = folder.report
    paths = ReportPaths(out / "audit.json", out / "audit.md", out / "detection.png")
    write_json(paths.json, doc)
    curves = [
        (name, s["run_fraction"], s["snapshot_probability"], s["sample_size"])
        for name, s in summary.items()
    ]
    png = plot_curves(curves, target)
    write_bytes(paths.plot, png)
    write_bytes(paths.markdown, _markdown(doc).encode())
    write_bytes(out / "audit.html", render_html(doc, png).encode())
    return paths


def _markdown(doc: dict[str, Any]) -> str:
    plan = doc["plan"]
    lines = [
        f"# Audit report: period {plan['period']}",
        "",
        (
            f"Registry `{plan['origin']}`, committed checkpoint of size "
            f"{plan['checkpoint_size']}; {plan['checkpoint_trust']}. "
            "Also as a page: [audit.html](audit.html)."
        ),
        "",
        "![detection probability](detection.png)",
        "",
        "| Prover | verdict | chips | sampled | P(detect) | findings |",
        "|---|---|---|---|---|---|",
    ]
    for a in doc["provers"]:
        p = plan["provers"][a["prover"]]
        word = "**compliant**" if a["compliant"] else "**NON-COMPLIANT**"
        lines.append(
            f"| {a['prover']} | {word} | {p['chips']} | {p['sample_size']} | "
            f"{p['detection_probability']:.3f} | {len(a['findings'])} |"
        )
    for a in doc["provers"]:
        lines += ["", f"## {a['prover']}", "", f"Sampled: {', '.join(a['sample']['chips'])}."]
        if a["findings"]:
            lines += ["", "### Findings", ""]
            lines += [
                f"- `{f['serial']}` **{f['kind']}**: {f['detail']} ([evidence]({f['evidence']}))"
                for f in a["findings"]
            ]
        for run, v in a["verdicts"].items():
            lines += ["", f"### Run `{run}`: {v['verdict'].upper()}", ""]
            lines += ["| check | result | detail |", "|---|---|---|"]
            lines += [f"| {c['name']} | {c['status']} | {c['detail']} |" for c in v["checks"]]
            if v.get("rules"):
                lines += ["", "| rule | kind | result |", "|---|---|---|"]
                lines += [f"| {r['id']} | {r['kind']} | {r['status']} |" for r in v["rules"]]
    return "\n".join(lines) + "\n"
