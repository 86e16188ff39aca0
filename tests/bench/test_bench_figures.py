"""The figures read well: legends off the data and short, a target only on the panel it judges,
every line keyed. Drawn from the stored full run (docs/bench/results.json), nothing re-measured."""

from __future__ import annotations

import importlib
import json

import matplotlib.pyplot as plt
import pytest
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from bench import plot
from bench.replot import DEFAULT

MAX_ENTRIES = 4  # more than this in one legend is a table a reader cannot map back to lines
# A judged panel's y range at most this many target bands high: spread drawn past it (error
# bars of single-round extremes) squeezes the judged figures into a line.
SPREAD_PER_BAND = 5
# The part's figure and the index of the one axes its target belongs to.
JUDGED_AXES = {"kernel": 1, "scaling": 1, "comm": 2}


def _legends(fig: Figure) -> list:
    return [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)


def _keyed(label: str, texts: set[str]) -> bool:
    """A label is keyed when a legend names it, or names each of its parts (colour and style)."""
    return label in texts or all(part in texts for part in label.split(plot.KEY_SEP))


def problems(fig: Figure, judged: int) -> list[str]:
    """What makes ``fig`` hard to read (empty when nothing does)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    areas = [ax.get_window_extent(renderer) for ax in fig.axes]
    texts = set()
    for leg in _legends(fig):
        entries = [t.get_text() for t in leg.get_texts()]
        texts.update(entries)
        if len(entries) > MAX_ENTRIES:
            found.append(f"legend of {len(entries)} entries: {entries}")
        box = leg.get_window_extent(renderer)
        if any(box.overlaps(area) for area in areas):
            found.append(f"legend over the data: {entries}")
    for i, ax in enumerate(fig.axes):
        texts_here = texts | {t.get_text() for t in ax.texts}
        for line in ax.lines:
            label = line.get_label()
            if len(line.get_xdata()) and (label.startswith("_") or not _keyed(label, texts_here)):
                found.append(f"axes {i}: line {label!r} at {list(line.get_xdata())[:2]} is "
                             "not named by any legend")
        targets = [a.get_label() for a in (*ax.lines, *ax.patches)
                   if "target" in a.get_label()]
        if targets and i != judged:
            found.append(f"axes {i}: target {targets} on a panel it does not judge")
        if i == judged and not targets:
            found.append(f"axes {i}: the judged panel has no labelled target")
        bottom, top = ax.get_ylim()
        for band in (p for p in ax.patches if "target" in p.get_label()):
            if top - bottom > SPREAD_PER_BAND * band.get_height():
                found.append(f"axes {i}: y range {bottom:.2g}..{top:.2g} dwarfs the target band "
                             f"{band.get_label()!r}")
        bars = sum(len(c) for c in ax.containers if isinstance(c, BarContainer))
        if targets and bars > 1:
            found.append(f"axes {i}: one target across {bars} different bars")
    return found


def _stored() -> dict[str, dict]:
    raw = json.loads(DEFAULT.read_text())
    return {s["key"]: s["data"] for s in raw["sections"] if s.get("figure") and s["data"]}


@pytest.mark.parametrize("part", sorted(JUDGED_AXES))
def test_each_figure_keys_every_line_off_the_data(part: str) -> None:
    fig = importlib.import_module(f"bench.{part}").draw(_stored()[part])
    try:
        assert problems(fig, JUDGED_AXES[part]) == []
    finally:
        plt.close(fig)


def test_the_check_finds_each_fault_it_looks_for() -> None:
    fig, (left, right) = plot.figure(2)
    for k in range(MAX_ENTRIES + 1):
        left.plot([1, 2], [k, k + 1], label=f"series {k}")
    left.legend()
    left.axhline(0.95, label="target 0.95")
    right.bar(["a", "b"], [1, 2])
    right.axvline(1.5)
    right.axhspan(0.9, 1.1, label="target band")
    right.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    try:
        found = problems(fig, judged=1)
    finally:
        plt.close(fig)
    assert any(f"legend of {MAX_ENTRIES + 1} entries" in p for p in found), found
    assert any("legend over the data" in p for p in found), found
    assert any("axes 0: target" in p for p in found), found
    assert any("axes 1: line '_child" in p for p in found), found
    assert any("dwarfs the target band" in p for p in found), found
    assert any("one target across 2 different bars" in p for p in found), found
    bare, _ = plot.figure(1)
    try:
        assert problems(bare, judged=0) == ["axes 0: the judged panel has no labelled target"]
    finally:
        plt.close(bare)


def test_replot_writes_the_drawn_parts_from_results_json(tmp_path) -> None:
    from bench.replot import redraw

    written = redraw(DEFAULT, tmp_path)
    assert sorted(written) == sorted(f"{p}.png" for p in JUDGED_AXES)
    for name in written:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
