"""The audit report's parts: where it went, and Equation 1's detection plot.

`plot_curves` draws the detection probability against the number of chips
sampled (``1 - (1 - b p_w)^s``, paper Equation 1) per Prover, with the
sample actually drawn marked; `write_folder_report` puts the PNG beside the
JSON and Markdown it writes.

Example::

    >>> png = plot_curves([("lab-a", 0.5, 0.9, 4)], target=0.9)
    >>> png[1:4]
    b'PNG'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

__all__ = ["ReportPaths", "plot_curves"]


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
