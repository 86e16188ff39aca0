"""``python -m bench.replot [--results FILE] [--plots DIR]``: redraw the PNGs from results.json.

Only the parts whose figure is drawn from their stored data (a module-level ``draw``) are
redrawn; the measurements are not repeated.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from bench import plot
from bench.common import REPO, Options

DEFAULT = REPO / "docs" / "bench" / "results.json"


def redraw(results: Path, plots: Path) -> list[str]:
    """Write every drawable part's PNG into ``plots``; the file names written."""
    raw = json.loads(results.read_text())
    opts = Options(raw["quick"], plots, plots, plots, plots)
    written = []
    for sec in raw["sections"]:
        module = importlib.import_module(f"bench.{sec['key']}")
        if sec.get("figure") and not sec.get("skipped") and hasattr(module, "draw"):
            written.append(plot.save(module.draw(sec["data"]), opts, sec["key"],
                                     module.FIGURE_TITLE))
    return written


def main(argv: list[str]) -> int:
    """Redraw; print the files written."""
    p = argparse.ArgumentParser(prog="python -m bench.replot", description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=DEFAULT, help="a results.json of `make bench`")
    p.add_argument("--plots", type=Path, help="where the PNGs go (default: beside --results)")
    args = p.parse_args(argv)
    if not args.results.is_file():
        print(f"bench.replot: --results {args.results}: no such file", file=sys.stderr)
        return 2
    plots = args.plots or args.results.parent
    plots.mkdir(parents=True, exist_ok=True)
    for name in redraw(args.results, plots):
        print(plots / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
