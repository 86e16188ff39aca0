"""BENCHMARKS.md (machine header, summary table, one part per benchmark) and results.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bench.common import Options, Row, Section


def fmt(value: float | None) -> str:
    """A figure with about three significant digits, '-' when there is none."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _met(row: Row) -> str:
    if row.met is None:
        return "-"
    return "yes" if row.met else "**no**"


def table(sections: list[Section]) -> list[str]:
    """The summary table's markdown lines."""
    lines = ["| part | measurement | value | reference (same run) | ratio | target | met |",
             "|---|---|---:|---|---:|---|---|"]
    for sec in sections:
        if sec.skipped:
            lines.append(f"| {sec.key} | {sec.skipped.splitlines()[0]} | | | | | |")
        for r in sec.rows:
            value = f"{fmt(r.value)} {r.unit}".strip() if r.value is not None else "-"
            ratio = f"{r.ratio:.3f}" if r.ratio is not None else "-"
            lines.append(f"| {sec.key} | {r.name} | {value} | {r.reference} | {ratio} | "
                         f"{r.target} | {_met(r)} |")
    return lines


def text(opts: Options, info: dict[str, str], sections: list[Section], seconds: float) -> str:
    """The whole BENCHMARKS.md."""
    mode = "`make bench QUICK=1` (small smoke-test mode)" if opts.quick else "`make bench`"
    rel = Path(os.path.relpath(opts.plots, opts.out))
    lines = [
        "# Benchmarks", "",
        f"Written by {mode} on {info['date']} in {seconds:.0f} s. Every ratio compares two "
        "figures measured in the same run, so a busy or slow machine moves both sides.", "",
        "| machine | |", "|---|---|",
        f"| cores | {info['cores']} |",
        f"| CPU | {info['cpu']} |",
        f"| memory | {info['memory_gib']} GiB |",
        f"| date | {info['date']} |",
        f"| software | Python {info['python']}, numpy {info['numpy']}, numba {info['numba']}, "
        f"{info['mpi']}, Linux {info['kernel']} |",
        f"| load average (1/5/15 min) at start; at end | {info['load_start']}; "
        f"{info.get('load_end', 'n/a')} |",
        "", "## Summary", "", *table(sections), "",
        "`met` is `-` where a figure is reported but not judged. Raw data: "
        f"[{(rel / 'results.json').as_posix()}]({(rel / 'results.json').as_posix()}).", "",
    ]
    for sec in sections:
        lines += [f"## {sec.title}", ""]
        if sec.skipped:
            lines += ["```", sec.skipped.strip(), "```", ""]
        for note in sec.notes:
            lines += [note, ""]
        if sec.figure:
            lines += [f"![{sec.title}]({(rel / sec.figure).as_posix()})", ""]
    return "\n".join(lines)


def write(opts: Options, info: dict[str, str], sections: list[Section], seconds: float) -> Path:
    """Write BENCHMARKS.md into ``opts.out`` and results.json beside the plots."""
    path = opts.out / "BENCHMARKS.md"
    path.write_text(text(opts, info, sections, seconds))
    raw = {"machine": info, "quick": opts.quick, "seconds": seconds,
           "sections": [s.as_dict() for s in sections]}
    (opts.plots / "results.json").write_text(json.dumps(raw, indent=1, default=str) + "\n")
    return path
