"""The launcher's own TCP pair check (launcher.pairs) on loopback, judged by the gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from itertools import combinations
from pathlib import Path

import pytest

from launcher import contract, gate, pairs

REPO = Path(__file__).resolve().parents[2]
NODES = [gate.NodeRef(0, "127.0.0.1"), gate.NodeRef(2, "127.0.0.1"),
         gate.NodeRef(1, "127.0.0.1")]


@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_the_rounds_hold_every_pair_once_and_each_rank_once_per_round(n: int) -> None:
    schedule = pairs.rounds(n)
    flat = [p for r in schedule for p in r]
    assert sorted(flat) == list(combinations(range(n), 2))
    assert all(len({x for p in r for x in p}) == 2 * len(r) for r in schedule)


def _rank(rank: int, main: str, n: int, timeout: float = 2.0,
          var: str = "OMPI_COMM_WORLD_RANK") -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in pairs.RANK_VARS}
    env.update(PYTHONPATH=str(REPO), **{var: str(rank)})
    return subprocess.Popen([sys.executable, "-m", "launcher.pairs", "--main", main,
                             "--nodes", str(n), "--timeout", str(timeout)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _main() -> str:
    return f"127.0.0.1:{gate.free_port('127.0.0.1')}"


def _line(proc: subprocess.Popen[str]) -> tuple[int, dict]:
    out, err = proc.communicate(timeout=60)
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert len(lines) == 1, out + err
    return proc.returncode, lines[0]


@pytest.mark.parametrize("var", pairs.RANK_VARS)
def test_three_ranks_measure_every_pair_and_the_gate_passes_them(var: str) -> None:
    main = _main()
    procs = [_rank(r, main, 3, var=var) for r in range(3)]
    code, line = _line(procs[0])
    assert [p.wait(30) for p in procs[1:]] == [0, 0]
    assert code == contract.OK and line["ok"] is True and line["check"] == pairs.LABEL
    assert sorted(p["ranks"] for p in line["pairs"]) == [[0, 1], [0, 2], [1, 2]]
    assert all(p["seconds"]["8"] > 0 and p["wrong_echoes"] == 0 for p in line["pairs"])
    verdict = gate.judge(code, [line], NODES, None)
    assert verdict.code == contract.OK, verdict.line
    assert verdict.line.startswith("network check passed: 3 pairs of 3 nodes")


def test_a_rank_that_never_reports_is_named_and_the_check_exits_4() -> None:
    main = _main()
    procs = [_rank(r, main, 3, timeout=1.0) for r in range(2)]  # rank 2 never starts
    code, line = _line(procs[0])
    assert procs[1].wait(30) == 0  # told to go
    assert code == contract.NODE_LOST and line["unreachable_pairs"] == [[0, 2]]
    verdict = gate.judge(code, [line], NODES, None)
    assert verdict.code == contract.NODE_LOST
    assert verdict.line.startswith("network check: node 1 (127.0.0.1, ?) unreachable (rank 2 did "
                                   f"not report to rank 0 ({main}) within 1s")


def _unreachable_rank(main: str, rank: int) -> threading.Thread:
    """A rank that reports to rank 0 an echo address nothing listens at, then follows orders."""
    def run() -> None:
        dead = gate.free_port("127.0.0.1")
        with pairs.connect(pairs.parse_address(main), time.monotonic() + 30) as sock:
            f = sock.makefile("rwb")
            f.write(json.dumps({"rank": rank, "host": "ip-dead",
                                "echo": ["127.0.0.1", dead]}).encode() + b"\n")
            f.flush()
            while (order := f.readline()) and not json.loads(order).get("bye"):
                pass
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_pair_that_cannot_connect_is_named_and_the_check_exits_4() -> None:
    main = _main()
    procs = [_rank(r, main, 3, timeout=1.0) for r in range(2)]
    helper = _unreachable_rank(main, 2)
    code, line = _line(procs[0])
    helper.join(30)
    assert procs[1].wait(30) == 0
    assert code == contract.NODE_LOST
    assert line["unreachable_pairs"] and all(p[1] == 2 for p in line["unreachable_pairs"])
    assert "cannot connect to 127.0.0.1:" in line["errors"][0]
    verdict = gate.judge(code, [line], NODES, None)
    assert verdict.code == contract.NODE_LOST
    assert verdict.line.startswith("network check: node 1 (127.0.0.1, ip-dead) unreachable (")


def test_outside_mpiexec_it_says_so_and_exits_2() -> None:
    env = {k: v for k, v in os.environ.items() if k not in pairs.RANK_VARS}
    proc = subprocess.run([sys.executable, "-m", "launcher.pairs", "--main", "127.0.0.1:1",
                           "--nodes", "2"], env={**env, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == contract.USAGE
    assert "no rank in OMPI_COMM_WORLD_RANK, PMIX_RANK, PMI_RANK below --nodes 2" in proc.stderr


def test_without_the_solver_the_gate_chooses_the_pair_check_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # `python -c` would find the checkout's solver in the cwd
    check = gate.Check.configured({"MNP_PRECHECK": "1", "MNP_PRECHECK_TIMEOUT": "40",
                                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin"})
    assert check is not None and check.command == gate.PAIR_COMMAND
    assert check.which == ("launcher TCP pair check (no solver in this image: "
                           "ModuleNotFoundError: No module named 'solver')")
    argv = check.command_for(NODES)
    assert argv[:3] == [sys.executable, "-m", "launcher.pairs"]
    assert argv[3] == "--main" and argv[4].startswith("127.0.0.1:")
    assert argv[5:] == ["--nodes", "3", "--timeout", "10"]


def test_with_the_solver_the_gate_keeps_its_mpi_netcheck() -> None:
    check = gate.Check.configured({**os.environ, "MNP_PRECHECK": "1", "PYTHONPATH": str(REPO),
                                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}"
                                           f"{os.environ['PATH']}"})
    assert check == gate.Check(gate.DEFAULT_COMMAND, 120.0, gate.SOLVER_CHECK)
    assert check.command_for(NODES) == list(gate.DEFAULT_COMMAND)

