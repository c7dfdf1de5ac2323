"""PNG figures of the analysis (matplotlib, headless).

Example::

    >>> from computewatch.analysis import figure2, plot_figure2
    >>> plot_figure2(figure2(), "figure2.png").name
    'figure2.png'
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from computewatch.errors import FormatError

if TYPE_CHECKING:
    from computewatch.analysis._evasion import Figure2

__all__ = ["plot_figure2"]


def plot_figure2(fig2: Figure2, path: str | Path) -> Path:
    """Draw Figure 2 (`p_d(k) / p` over `k` and `b`) as a PNG at `path`."""
    import matplotlib as mpl  # noqa: PLC0415 - heavy; only needed when drawing

    mpl.use("Agg")  # headless: no display on servers or in CI
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out = Path(path)
    if out.suffix.lower() != ".png":
        msg = f"figure path {str(out)!r}: expected a .png file"
        raise FormatError(msg)
    fig, ax = plt.subplots(figsize=(7.0, 4.8), dpi=120)
    try:
        mesh = ax.pcolormesh(
            fig2.run_fractions, fig2.ks, fig2.ratios, shading="nearest", cmap="viridis"
        )
        levels = [0.95, 0.96, 0.97, 0.98, 0.99]
        contours = ax.contour(
            fig2.run_fractions, fig2.ks, fig2.ratios, levels=levels, colors="white", linewidths=0.8
        )
        ax.clabel(contours, fmt="%.2f", fontsize=8)
        fig.colorbar(mesh, ax=ax, label=r"$p_d(k)\,/\,p$")
        ax.set_xlabel(r"fraction of all chips used by the run, $b = H/(CaT)$")
        ax.set_ylabel(r"stretch factor $k$ (chips $/k$, time $\times k$)")
        ax.set_title(
            rf"Figure 2: $p_d(k)/p$ for $p={fig2.p:g}$ (min {fig2.min_ratio:.4f})", fontsize=11
        )
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(out, format="png")
        except OSError as e:
            msg = f"figure path {str(out)!r}: cannot write ({e.strerror})"
            raise FormatError(msg) from e
    finally:
        plt.close(fig)
    return out
