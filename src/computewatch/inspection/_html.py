"""The audit report as one self-contained HTML page.

No script, no external resource: the styles are inline, the detection
plot is a ``data:`` URI PNG, and a Content-Security-Policy forbids anything
else. Every string that came from a Prover (run ids, finding details, check
details) is escaped. Every finding has an anchor (``#finding-PROVER-N``),
is listed in the summary with a link to it, and links to its evidence by a
path relative to the report (the inspection record, or the signed verdict).

Example::

    >>> page = render_html(doc, png_bytes)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
from html import escape
from typing import Any

__all__ = ["finding_id", "render_html"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
th,td{border:1px solid #bbb;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#eee}.bad{color:#a00;font-weight:bold}.ok{color:#070;font-weight:bold}
code{font-size:.9em}img{max-width:100%}
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _table(head: list[str], rows: list[list[str]]) -> str:
    """Cells are already-escaped HTML."""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _verdict_word(ok: bool) -> str:  # noqa: FBT001
    return '<span class="ok">compliant</span>' if ok else '<span class="bad">NON-COMPLIANT</span>'


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def finding_id(prover: str, n: int) -> str:
    """The anchor of a Prover's n-th finding."""
    return f"finding-{_slug(prover)}-{n}"


def _prover_section(a: dict[str, Any]) -> list[str]:
    prover = a["prover"]
    out = [f'<h2 id="prover-{_slug(prover)}">{_e(prover)}</h2>']
    s = a["sample"]
    out.append(
        f"<p>Sample seed <code>{_e(s['seed'])}</code>, {len(s['chips'])} of "
        f"{len(s['candidates'])} chips held at the committed checkpoint: "
        f"{_e(', '.join(s['chips']))}.</p>"
    )
    rows = [
        [
            _e(i["serial"]),
            _e(i["passed"]),
            _e(i["log_size"]),
            _e(len(i["snapshots"])),
            _e(", ".join(i["runs"]) or "-"),
        ]
        for i in a["inspections"]
    ]
    out += [
        "<h3>Inspections</h3>",
        _table(["chip", "passed", "log entries", "snapshots", "runs"], rows),
    ]
    if a["findings"]:
        out.append("<h3>Findings</h3><ol>")
        for n, f in enumerate(a["findings"], 1):
            out.append(
                f'<li id="{_e(finding_id(prover, n))}"><code>{_e(f["serial"])}</code> '
                f"<b>{_e(f['kind'])}</b>: {_e(f['detail'])} "
                f'(evidence: <a href="{_e(f["evidence"])}">{_e(f["evidence"])}</a>)</li>'
            )
        out.append("</ol>")
    for run, v in a["verdicts"].items():
        word = "PASS" if v["verdict"] == "pass" else "FAIL"
        cls = "ok" if word == "PASS" else "bad"
        evidence = a["verdict_files"][run]
        out.append(
            f'<h3 id="run-{_slug(prover)}-{_slug(run)}">Run <code>{_e(run)}</code>: '
            f'<span class="{cls}">{word}</span> '
            f'(<a href="{_e(evidence)}">signed verdict</a>)</h3>'
        )
        out.append(
            f"<p>Replayed {_e(v['replayed_steps'])} of {_e(v['training_steps'])} steps "
            f"({float(v['compute_fraction']):.1%} of training compute).</p>"
        )
        out.append(
            _table(
                ["check", "result", "detail"],
                [[_e(c["name"]), _e(c["status"]), _e(c["detail"])] for c in v["checks"]],
            )
        )
        if v.get("rules"):
            out.append(
                _table(
                    ["rule", "kind", "result"],
                    [[_e(r["id"]), _e(r["kind"]), _e(r["status"])] for r in v["rules"]],
                )
            )
    return out


def render_html(doc: dict[str, Any], plot_png: bytes) -> str:
    """The page for a report document (`write_folder_report`'s JSON) and its plot."""
    plan = doc["plan"]
    png = base64.b64encode(plot_png).decode()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        f"<title>Audit report: period {_e(plan['period'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Audit report: period {_e(plan['period'])}</h1>",
        (
            f"<p>Registry <code>{_e(plan['origin'])}</code>, committed checkpoint of size "
            f"{_e(plan['checkpoint_size'])}; Verifier <code>{_e(plan['verifier'])}</code>; "
            f"{_e(plan.get('checkpoint_trust', ''))}.</p>"
        ),
    ]
    rows = []
    for a in doc["provers"]:
        links = " ".join(
            f'<a href="#{_e(finding_id(a["prover"], n))}">{_e(f["kind"])}</a>'
            for n, f in enumerate(a["findings"], 1)
        )
        p = plan["provers"][a["prover"]]
        rows.append(
            [
                _e(a["prover"]),
                _verdict_word(a["compliant"]),
                _e(p["chips"]),
                _e(p["sample_size"]),
                f"{float(p['detection_probability']):.3f}",
                _e(len(a["verdicts"])),
                links or "none",
            ]
        )
    parts.append(
        _table(
            ["Prover", "verdict", "chips", "sampled", "P(detect)", "runs verified", "findings"],
            rows,
        )
    )
    parts.append(
        f'<p><img alt="detection probability against chips sampled" '
        f'src="data:image/png;base64,{png}"></p>'
    )
    for a in doc["provers"]:
        parts += _prover_section(a)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
