"""The benchmark's bookkeeping: parsing, best-of, verdicts and the table (no timing)."""

from __future__ import annotations

import pytest

from bench.comm import _best, _parse, _rows
from bench.common import BenchError, Row, Section, judge, last_json
from bench.report import fmt, table


def test_last_json_takes_the_summary_line_after_logs() -> None:
    text = 'log line\n{"a": 1}\nmore log\n{"mlups": 12.5}\n\n'
    assert last_json(text) == {"mlups": 12.5}
    with pytest.raises(BenchError, match="no JSON summary"):
        last_json("only\nlogs\n")


@pytest.mark.parametrize(("ratio", "op", "bound", "want"), [
    (1.10, "<=", 1.15, True), (1.20, "<=", 1.15, False),
    (0.95, ">=", 0.95, True), (0.80, ">=", 0.90, False), (None, ">=", 0.9, None),
])
def test_judge(ratio: float | None, op: str, bound: float, want: bool | None) -> None:
    assert judge(ratio, op, bound) is want


def test_commcheck_and_osu_lines_become_per_size_latencies() -> None:
    stdout = "\n".join([
        '{"command": "commcheck", "ok": true, "pairs": [{"rank": 1, "latency_us": 2.0,'
        ' "bandwidth_MBps": {"8": 4.0, "1048576": 5000.0}}]}',
        '{"command": "osu", "sizes": {"8": {"latency_us": 1.0, "bandwidth_MBps": 9.0,'
        ' "pingpong_MBps": 8.0}, "1048576": {"latency_us": 200.0, "bandwidth_MBps": 7000.0,'
        ' "pingpong_MBps": 5242.88}}}',
    ])
    res = _parse(stdout)
    assert res["commcheck"][8]["latency_us"] == pytest.approx(2.0)  # 8 B / 4 MB/s
    assert res["commcheck"][1048576]["latency_us"] == pytest.approx(209.7152)
    rows = {r.name.split(": ", 1)[1]: r for r in _rows("same host", res)}
    lat = rows["commcheck latency, 8 B"]
    assert lat.ratio == pytest.approx(2.0) and lat.met is False
    bw = rows["commcheck bandwidth, 1048576 B (ping-pong)"]
    assert bw.ratio == pytest.approx(5000.0 / 5242.88) and bw.met is True


def test_a_failed_commcheck_is_an_error_not_a_figure() -> None:
    bad = ('{"command": "commcheck", "ok": false, "errors": ["rank 1 did not answer"]}\n'
           '{"command": "osu", "sizes": {}}')
    with pytest.raises(BenchError, match="rank 1 did not answer"):
        _parse(bad)
    with pytest.raises(BenchError, match="expected commcheck and osu"):
        _parse('{"command": "osu", "sizes": {}}')


def test_best_of_repetitions_keeps_lowest_latency_and_highest_bandwidth() -> None:
    def run(lat: float, bw: float) -> dict:
        fig = {"latency_us": lat, "bandwidth_MBps": bw}
        return {"commcheck": {8: dict(fig)}, "osu": {8: dict(fig, pingpong_MBps=bw)}}

    best = _best([run(3.0, 10.0), run(1.5, 30.0), run(2.0, 20.0)])
    assert best["commcheck"][8] == {"latency_us": 1.5, "bandwidth_MBps": 30.0}
    assert best["osu"][8]["pingpong_MBps"] == 30.0


def test_table_shows_verdicts_and_failed_parts() -> None:
    ok = Section("kernel", "K", rows=[
        Row("stencil", 1234.5, "MLUPS", "copy 1500", 0.823, ">= 0.9", False),
        Row("copy", 1500.0, "M elements/s")])
    failed = Section("comm", "C", skipped="failed: mpiexec: exit 1\ndetails")
    lines = table([ok, failed])
    assert lines[2] == "| kernel | stencil | 1,234 MLUPS | copy 1500 | 0.823 | >= 0.9 | **no** |"
    assert lines[3] == "| kernel | copy | 1,500 M elements/s |  | - |  | - |"
    assert lines[4].startswith("| comm | failed: mpiexec: exit 1 |")
    assert [fmt(x) for x in (None, 0.01234, 12.34, 1234.5)] == ["-", "0.0123", "12.3", "1,234"]
