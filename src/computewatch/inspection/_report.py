"""The audit report: JSON for programs, Markdown for people, a PNG plot.

The report holds the sampling plan and its recomputable draw, each chip
inspection, each run's checks and rules, and a plot of detection
probability against the number of chips sampled for the plan's parameters
(Equation 1's curve), with the sample actually drawn marked.

Example::

    >>> paths = write_report(audits, plan, "out/audit")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from computewatch.errors import FormatError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from computewatch.inspection._audit import ProverAudit

__all__ = ["AuditPlan", "ReportPaths", "detection_curve", "plot_curves", "write_report"]


@dataclass(frozen=True)
class AuditPlan:
    """The sampling plan behind an audit.

    Attributes:
        period: the monitoring period.
        sample_size: chips inspected per Prover.
        run_fraction: `b`, the share of a Prover's chips a targeted run needs.
        snapshot_probability: `p_w`, the chance a run chip logged a snapshot
            in the period.
        target: the detection probability the plan aims for.
        basis: how `sample_size` was chosen (Equation 1 or a budget).
    """

    period: str
    sample_size: int
    run_fraction: float
    snapshot_probability: float
    target: float
    basis: str

    def to_json(self) -> dict[str, Any]:
        """For the report."""
        return {
            "period": self.period,
            "sample_size": self.sample_size,
            "run_fraction": self.run_fraction,
            "snapshot_probability": self.snapshot_probability,
            "target": self.target,
            "basis": self.basis,
            "detection_probability": detection_curve(self, self.sample_size)[-1],
        }


def detection_curve(plan: AuditPlan, max_samples: int) -> list[float]:
    """P(detect) for 1..max_samples samples: ``1 - (1 - b p_w)^s`` (Equation 1)."""
    q = plan.run_fraction * plan.snapshot_probability
    return [1.0 - math.pow(1.0 - q, s) for s in range(1, max_samples + 1)]


@dataclass(frozen=True)
class ReportPaths:
    """Where the report went."""

    json: Path
    markdown: Path
    plot: Path


def plot_curves(curves: Sequence[tuple[str, float, float, int]], target: float) -> bytes:
    """PNG of Equation 1's curve per (label, b, p_w, sampled s), with the target and each s."""
    import io  # noqa: PLC0415

    import matplotlib as mpl  # noqa: PLC0415 - heavy, only here

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    top = max([s * 3 for *_, s in curves] + [10])
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    try:
        for label, b, p_w, s in curves:
            q = b * p_w
            ys = [1.0 - math.pow(1.0 - q, k) for k in range(1, top + 1)]
            (line,) = ax.plot(range(1, top + 1), ys, label=rf"{label}: $1-(1-b\,p_w)^s$, b={b:.2f}")
            ax.axvline(s, color=line.get_color(), linewidth=0.8, linestyle=":")
        ax.axhline(
            target, color="grey", linestyle="--", linewidth=0.8, label=f"target p = {target:g}"
        )
        ax.set_xlabel("chips inspected this period, s (dotted: sampled)")
        ax.set_ylabel("probability of catching the run")
        ax.set_ylim(0, 1.02)
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title("Detection probability against samples (Equation 1)", fontsize=10)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return buf.getvalue()


def _plot(plan: AuditPlan, path: Path) -> None:
    curve = [("sampled", plan.run_fraction, plan.snapshot_probability, plan.sample_size)]
    path.write_bytes(plot_curves(curve, plan.target))


def _markdown(doc: dict[str, Any]) -> str:
    plan = doc["plan"]
    lines = [
        f"# Audit report: period {plan['period']}",
        "",
        (
            f"Sampling plan: {plan['sample_size']} chips per Prover ({plan['basis']}); a run on "
            f"{plan['run_fraction']:.0%} of a Prover's chips is caught with probability "
            f"{plan['detection_probability']:.3f} (target {plan['target']:g})."
        ),
        "",
        "![detection probability](detection.png)",
        "",
        "| Prover | verdict | findings | runs verified |",
        "|---|---|---|---|",
    ]
    for a in doc["provers"]:
        verdict = "**compliant**" if a["compliant"] else "**NON-COMPLIANT**"
        lines.append(f"| {a['prover']} | {verdict} | {len(a['findings'])} | {len(a['verdicts'])} |")
    for a in doc["provers"]:
        lines += [
            "",
            f"## {a['prover']}",
            "",
            (
                f"Sample seed `{a['sample']['seed']}` over "
                f"{len(a['sample']['candidates'])} chips: {', '.join(a['sample']['chips'])}."
            ),
            "",
        ]
        lines += [
            "### Inspections",
            "",
            "| chip | passed | log entries | snapshots | findings |",
            "|---|---|---|---|---|",
        ]
        for i in a["inspections"]:
            found = "; ".join(f"{f['kind']}: {f['detail']}" for f in i["findings"]) or "none"
            row = [
                i["serial"],
                str(i["passed"]),
                str(i["log_size"]),
                str(len(i["snapshots"])),
                found,
            ]
            lines.append("| " + " | ".join(row) + " |")
        if a["findings"]:
            lines += ["", "### Findings", ""]
            lines += [f"- `{f['serial']}` **{f['kind']}**: {f['detail']}" for f in a["findings"]]
        for run, v in a["verdicts"].items():
            lines += [
                "",
                f"### Run `{run}`: {v['verdict'].upper()}",
                "",
                (
                    f"Replayed {v['replayed_steps']} of {v['training_steps']} steps "
                    f"({v['compute_fraction']:.1%} of training compute)."
                ),
                "",
                "| check | result | detail |",
                "|---|---|---|",
            ]
            lines += [f"| {c['name']} | {c['status']} | {c['detail']} |" for c in v["checks"]]
            if v.get("rules"):
                lines += ["", "| rule | kind | result |", "|---|---|---|"]
                lines += [f"| {r['id']} | {r['kind']} | {r['status']} |" for r in v["rules"]]
    return "\n".join(lines) + "\n"


def write_report(
    audits: Sequence[ProverAudit], plan: AuditPlan, out_dir: str | Path
) -> ReportPaths:
    """Write `audit.json`, `audit.md` and `detection.png` to `out_dir`."""
    out = Path(out_dir)
    doc = {
        "format": "computewatch-audit/v1",
        "plan": plan.to_json(),
        "provers": [a.to_json() for a in audits],
        "compliant": {a.prover: a.compliant for a in audits},
    }
    paths = ReportPaths(out / "audit.json", out / "audit.md", out / "detection.png")
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths.json.write_text(json.dumps(doc, indent=2) + "\n")
        paths.markdown.write_text(_markdown(doc))
        _plot(plan, paths.plot)
    except OSError as e:
        msg = f"audit report {out}: cannot write ({e.strerror})"
        raise FormatError(msg) from e
    return paths
