"""The benchmark's bookkeeping: parsing, best-of, verdicts and the table (no timing)."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from bench.comm import OFI, _parse, _rows, _transports
from bench.common import (
    BenchError,
    Row,
    Section,
    again_after_failure,
    crossover_ratio,
    judge,
    last_json,
)
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


def _osu_line(pairs: dict[str, tuple[list[float], list[float]]]) -> str:
    return json.dumps({"command": "osu",
                       "pairs": {s: {"commcheck_us": cc, "osu_us": osu}
                                 for s, (cc, osu) in pairs.items()},
                       "sizes": {s: {"latency_us": 1.0, "bandwidth_MBps": 7000.0,
                                     "pingpong_MBps": 1.0} for s in pairs}})


def test_paired_rounds_become_per_size_ratios_and_verdicts() -> None:
    stdout = "log line\n" + _osu_line({
        "8": ([2.0, 2.2, 1.9, 2.1], [1.0, 1.0, 1.0, 1.0]),  # commcheck twice as slow
        "1048576": ([200.0, 210.0, 190.0, 205.0], [200.0, 200.0, 200.0, 200.0]),
    })
    res = _parse(stdout)
    assert res[8]["commcheck_us"] == pytest.approx(2.05)  # median of the rounds
    assert res[8]["ratio_min"] == pytest.approx(1.9) and res[8]["ratio_max"] == pytest.approx(2.2)
    assert res[8]["ratio"] == pytest.approx(statistics.median(
        [math.sqrt(2.0 * 2.2), math.sqrt(1.9 * 2.1)]))
    rows = {r.name.split(": ", 1)[1].split(" (", 1)[0]: r for r in _rows("same host", res)}
    lat = rows["commcheck latency, 8 B"]
    assert lat.ratio == pytest.approx(res[8]["ratio"]) and lat.met is False
    bw = rows["commcheck bandwidth, 1048576 B"]
    assert bw.ratio == pytest.approx(1 / res[1048576]["ratio"]) and bw.met is True
    assert bw.value == pytest.approx(1048576 / 202.5)
    worst = rows["commcheck/osu time per message, size farthest from 1"]
    assert worst.ratio == pytest.approx(res[8]["ratio"]) and worst.met is False


def test_ofi_over_tcp_is_set_beside_the_tcp_btl_per_figure() -> None:
    def place(latency: float, bandwidth: float) -> dict[int, dict]:
        return {8: {"osu_us": latency}, 1048576: {"osu_bw_MBps": bandwidth}}

    lat, bw = _transports(place(10.0, 1000.0), place(8.0, 1500.0))
    assert lat.name == f"{OFI} vs TCP BTL: osu latency, 8 B" and lat.value == 8.0
    assert lat.ratio == pytest.approx(0.8) and lat.reference == "TCP BTL 10.00 us"
    assert bw.value == 1500.0 and bw.ratio == pytest.approx(1.5) and bw.met is None


def test_crossover_ratio_cancels_a_first_mover_effect() -> None:
    # rounds alternate who goes first: 0.8 when commcheck leads, 1.25 when OSU does
    assert crossover_ratio([0.8, 1.25] * 4) == pytest.approx(1.0)
    assert crossover_ratio([3.0]) == 3.0  # a single round (QUICK) is its own figure


def test_a_failed_commcheck_is_an_error_not_a_figure() -> None:
    bad = ('{"command": "commcheck", "ok": false, "errors": ["rank 1 did not answer"]}\n'
           + _osu_line({"8": ([1.0], [1.0])}))
    with pytest.raises(BenchError, match="rank 1 did not answer"):
        _parse(bad)
    with pytest.raises(BenchError, match="expected the paired osu"):
        _parse('{"command": "osu", "sizes": {}}')


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


def test_a_failed_run_is_measured_again_and_reported_but_a_repeat_ends_the_part() -> None:
    calls: list[int] = []

    def flaky() -> float:
        calls.append(1)
        if len(calls) == 1:
            raise BenchError("mpiexec: exit 1\nsomething went wrong")
        return 2.5

    failures: list[str] = []
    assert again_after_failure(flaky, "2 ranks", failures) == 2.5
    assert failures == ["2 ranks: mpiexec: exit 1\nsomething went wrong"]

    def broken() -> float:
        calls.append(1)
        raise BenchError("always")

    calls.clear()
    with pytest.raises(BenchError, match="always"):
        again_after_failure(broken, "halo probe", failures)
    assert len(calls) == 3 and failures[1:] == ["halo probe: always"] * 2
