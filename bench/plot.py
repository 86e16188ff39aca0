"""Matplotlib set up for files only (Agg), and one way to save figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI or a server; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from bench.common import Options  # noqa: E402


def figure(cols: int = 1, width: float = 6.4, height: float = 4.0) -> tuple:
    """A figure with ``cols`` side-by-side axes (always returned as a list)."""
    fig, axes = plt.subplots(1, cols, figsize=(width * cols, height), squeeze=False)
    return fig, list(axes[0])


def save(fig, opts: Options, name: str, title: str) -> str:
    """Write ``name``.png into the plots directory; returns the file name."""
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(opts.plots) / f"{name}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path.name


def annotate_bars(ax, bars, fmt: str = "{:.3g}") -> None:
    """Print each bar's height on top of it."""
    for bar in bars:
        h = bar.get_height()
        ax.annotate(fmt.format(h), (bar.get_x() + bar.get_width() / 2, h),
                    ha="center", va="bottom", fontsize=8)
