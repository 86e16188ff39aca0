"""Matplotlib set up for files only (Agg), and one way to lay out, key and save figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on CI or a server; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402

from bench.common import Options  # noqa: E402

# A line keyed by two legends (colour: the place, style: the program) is labelled
# "<style entry><KEY_SEP><colour entry>", so a reader and tests/bench can match it to both.
KEY_SEP = "; "


def figure(cols: int = 1, width: float = 6.4, height: float = 4.0,
           ratios: list[float] | None = None) -> tuple:
    """A figure with ``cols`` side-by-side axes (always a list), relative widths ``ratios``.

    Constrained layout makes room for legends placed outside the axes (see ``legend_below``).
    """
    total = width * (sum(ratios) if ratios else cols)
    fig, axes = plt.subplots(1, cols, figsize=(total, height), squeeze=False,
                             layout="constrained", gridspec_kw={"width_ratios": ratios})
    return fig, list(axes[0])


def legend_below(ax, handles: list | None = None, title: str | None = None, ncols: int = 1):
    """A legend under the axes' x label, off the data (``handles`` default: the axes' own)."""
    kwargs = {"handles": handles} if handles is not None else {}
    return ax.legend(**kwargs, title=title, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                     fontsize=8, title_fontsize=8, ncols=ncols, frameon=False)


def save(fig, opts: Options, name: str, title: str) -> str:
    """Write ``name``.png into the plots directory; returns the file name."""
    fig.suptitle(title)
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
