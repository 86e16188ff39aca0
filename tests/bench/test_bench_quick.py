"""`make bench QUICK=1` end to end: the table and the plots are written with measured figures.

Runs `python -m bench --quick` (what the make target runs) once for the module, writing only
under tmp_path. Timings are not judged here: only that every part ran and wrote numbers.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PARTS = ("synth", "kernel", "scaling", "comm", "start", "launch", "rendezvous")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytestmark = pytest.mark.mpi


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One QUICK run into a fresh directory: (output dir, finished process)."""
    out = tmp_path_factory.mktemp("bench-out")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PRTE_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out),
         "--scratch", str(out / "scratch")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=540,
        stdin=subprocess.DEVNULL)
    return out, proc


def _summary_rows(markdown: str) -> list[list[str]]:
    """Cells of the summary table's body rows."""
    section = markdown.split("## Summary", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in rows[1:]]


def _number(cell: str) -> float:
    return float(cell.split()[0].replace(",", ""))


def test_quick_run_succeeds_and_prints_the_table(quick) -> None:
    out, proc = quick
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "| part | measurement |" in proc.stdout
    assert not list((out / "scratch").iterdir()), "scratch directory left behind"
    # A run repeated after a failure passes, but what failed shows in the warnings summary.
    raw = json.loads((out / "docs" / "bench" / "results.json").read_text())
    for sec in raw["sections"]:
        for failure in sec["data"].get("retries", []):
            warnings.warn(f"bench {sec['key']}: repeated after a failure: {failure}",
                          stacklevel=1)


def test_table_names_the_machine_and_every_part_has_numeric_figures(quick) -> None:
    out, _ = quick
    md = (out / "BENCHMARKS.md").read_text()
    assert f"| cores | {os.cpu_count()} |" in md
    assert re.search(r"\| CPU \| \S", md)
    assert re.search(r"\| date \| \d{4}-\d\d-\d\d \d\d:\d\d UTC \|", md)
    assert "QUICK=1" in md
    rows = _summary_rows(md)
    assert {r[0] for r in rows} == set(PARTS)
    for part, name, value, _ref, ratio, target, met in rows:
        if value != "-":
            assert math.isfinite(_number(value)) and _number(value) > 0, (part, name, value)
        if target:  # every judged figure has a measured ratio and a verdict
            assert math.isfinite(float(ratio)) and float(ratio) > 0, (part, name)
            assert met in ("yes", "**no**"), (part, name, met)
        else:
            assert met == "-", (part, name)
    judged = {r[0] for r in rows if r[5]}
    assert judged == set(PARTS)


def test_table_figures_are_the_measured_ones(quick) -> None:
    out, _ = quick
    from bench.report import fmt

    raw = json.loads((out / "docs" / "bench" / "results.json").read_text())
    assert raw["quick"] is True
    rows = _summary_rows((out / "BENCHMARKS.md").read_text())
    measured = [r for sec in raw["sections"] for r in sec["rows"]]
    assert len(measured) == len(rows)
    for cells, row in zip(rows, measured, strict=True):
        assert cells[1] == row["name"]
        if row["value"] is not None:
            assert cells[2].startswith(fmt(row["value"]))
        if row["ratio"] is not None:
            assert float(cells[4]) == pytest.approx(row["ratio"], abs=6e-4)


def test_every_part_has_a_png_plot_linked_from_the_report(quick) -> None:
    out, _ = quick
    md = (out / "BENCHMARKS.md").read_text()
    for part in PARTS:
        png = out / "docs" / "bench" / f"{part}.png"
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC, png
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width >= 300 and height >= 200, (png, width, height)
        assert f"](docs/bench/{part}.png)" in md


def test_two_namespace_figures_are_measured_or_the_skip_is_explained(quick) -> None:
    out, _ = quick
    from bench.comm import netns_unavailable

    md = (out / "BENCHMARKS.md").read_text()
    reason = netns_unavailable()
    if reason is None:
        assert "| comm | 2 namespaces: commcheck latency" in md
        assert "| comm | 2 namespaces, OFI tcp: commcheck latency" in md
        assert "| comm | 2 namespaces, OFI tcp vs TCP BTL: osu latency" in md
    else:
        assert f"Two-namespace figures skipped: {reason}." in md


def test_make_target_runs_the_same_entry_point() -> None:
    dry = subprocess.run(["make", "-n", "-C", str(REPO), "bench", "QUICK=1", "BENCH_OUT=/x/y"],
                         capture_output=True, text=True, check=True)
    assert "-m bench --quick --out /x/y" in dry.stdout


def test_paired_rounds_are_recorded_for_weak_scaling_and_comm(quick) -> None:
    out, _ = quick
    from bench import comm, scaling

    raw = json.loads((out / "docs" / "bench" / "results.json").read_text())
    data = {sec["key"]: sec["data"] for sec in raw["sections"]}
    weak = data["scaling"]["weak_pairs"]
    assert len(weak["pair"]) == len(weak["coupled"]) == scaling.ROUNDS[True]
    assert all(len(p) == 2 and min(p) > 0 for p in weak["pair"])
    assert min(weak["coupled"]) > 0
    places = {k: v for k, v in data["comm"].items() if k in comm.ROUNDS[True]}
    assert "same host" in places
    for where, per_size in places.items():
        assert {int(s) for s in per_size} == set(comm.SIZES[True]), where
        for figures in per_size.values():
            assert figures["rounds"] == comm.ROUNDS[True][where]
            assert figures["ratio_min"] <= figures["ratio"] <= figures["ratio_max"]


def test_whole_solver_is_reported_against_the_kernel_in_the_same_rounds(quick) -> None:
    out, _ = quick
    from bench import kernel

    raw = json.loads((out / "docs" / "bench" / "results.json").read_text())
    sec = next(s for s in raw["sections"] if s["key"] == "kernel")
    rounds = sec["data"]["solver"]
    assert all(len(v) == kernel.SOLVER_ROUNDS[True] and min(v) > 0 for v in rounds.values())
    row = next(r for r in sec["rows"] if r["name"].startswith("whole solver, 1 rank"))
    assert "--checkpoint-every 0" in row["name"] and row["target"] == f">= {kernel.SOLVER_TARGET}"
    per_round = [s / k for s, k in zip(rounds["solver"], rounds["kernel"], strict=True)]
    assert row["ratio"] == pytest.approx(kernel.crossover_ratio(per_round))
    assert any("--checkpoint-every 0" in n and "kernel_rate((1023, 1023), 200, 1)" in n
               for n in sec["notes"])
