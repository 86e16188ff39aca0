"""Launch at scale: from the last child's report to every rank running, on 2-16 emulated nodes.

One rank per node runs a trivial MPI program on the network-namespace emulator (the launcher
from this checkout, over ssh as on Batch). Rank 0 stamps the moment every rank has passed
MPI_Init (a barrier) and, at that moment, adds up the CPU time of the main node's launch
processes (launcher, mpiexec/prterun, its ssh clients; not the ranks): what the main node
spends per node it starts.
"""

from __future__ import annotations

import json
import re
import statistics
from datetime import datetime
from pathlib import Path

from bench import plot
from bench.common import REPO, BenchError, Options, Row, Section

NODES = {True: (2, 4), False: (2, 4, 8, 16)}
TARGET_1000_S = 60.0  # extrapolated to 1,000 nodes: beyond a minute, tree spawn is needed
RANK = r"""
import os, time
from mpi4py import MPI
comm = MPI.COMM_WORLD
comm.Barrier()
if comm.rank == 0:
    now = time.time()
    tick = os.sysconf("SC_CLK_TCK")
    def stat(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
    def cmd(pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read().split(b"\0")
        except OSError:
            return []
    launcher = os.getpid()
    while b"launcher" not in cmd(launcher):
        launcher = int(stat(launcher)[1])
    kids = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        s = stat(int(p))
        if s:
            kids.setdefault(int(s[1]), []).append(int(p))
    cpu, todo = 0.0, [launcher]
    while todo:
        pid = todo.pop()
        s = stat(pid)
        if s is None or (pid != launcher and b"-c" in cmd(pid)):  # a rank: the payload
            continue
        cpu += (int(s[11]) + int(s[12]) + (int(s[13]) + int(s[14]) if pid == launcher else 0))
        todo += kids.get(pid, [])
    print(f"RANKS-RUNNING {now:.3f} {cpu / tick:.3f}", flush=True)
"""
REPORT = re.compile(
    r"\] (\d\d:\d\d:\d\d\.\d{3}) INFO rendezvous: node \d+ reported .*\((\d+)/(\d+)\)")


def _last_report(err: str, day: datetime) -> float:
    """Wall time of the line where the last child reported."""
    for stamp, done, expected in REPORT.findall(err):
        if done == expected:
            t = datetime.strptime(stamp, "%H:%M:%S.%f").time()
            return datetime.combine(day.date(), t).timestamp()
    raise BenchError(f"no last-report line in the main node's log: {err[-600:]}")


def _once(nodes: int, work: Path) -> tuple[float, float]:
    """(seconds from the last report to all ranks running, main-node CPU seconds)."""
    from emulator.namespaces import Emulation

    env = {"MNP_RANKS_PER_NODE": "1", "PYTHONPATH": str(REPO)}
    day = datetime.now()
    with Emulation(nodes, log_dir=work / f"launch-{nodes}", env=env, max_delay=0.0) as emu:
        emu.start(["python", "-c", RANK], cwd=REPO)
        if emu.wait(300) != 0:
            raise BenchError(f"{nodes}-node launch failed: {emu.output(0)[1][-800:]}")
        out, err = emu.output(0)
    found = re.search(r"RANKS-RUNNING (\S+) (\S+)", out)
    if not found:
        raise BenchError(f"rank 0 printed no timing: {out[-300:]}")
    return float(found.group(1)) - _last_report(err, day), float(found.group(2))


def measure(opts: Options) -> Section:
    """Medians over rounds per node count, with a straight-line extrapolation to 1,000."""
    from emulator.netns import unavailable_reason

    sec = Section("launch", "Launch at scale (emulated nodes)")
    reason = unavailable_reason()
    if reason:
        sec.skipped = f"no network namespaces: {reason}"
        return sec
    reps = 1 if opts.quick else 3
    runs: dict[int, list[tuple[float, float]]] = {}
    for _ in range(reps):
        for n in NODES[opts.quick]:
            runs.setdefault(n, []).append(_once(n, opts.work))
    wall = {n: statistics.median(r[0] for r in rs) for n, rs in runs.items()}
    cpu = {n: statistics.median(r[1] for r in rs) for n, rs in runs.items()}
    counts = sorted(wall)
    slope = (wall[counts[-1]] - wall[counts[0]]) / (counts[-1] - counts[0])
    at_1000 = wall[counts[-1]] + slope * (1000 - counts[-1])
    cpu_per_node = cpu[counts[-1]] / counts[-1]
    for n in counts:
        sec.rows.append(Row(f"{n} nodes: last report to all ranks running (median of {reps})",
                            wall[n], "s", f"main-node CPU {cpu[n]:.2f} s"))
    sec.rows.append(Row("extrapolated to 1,000 nodes (straight line through the ends)", at_1000,
                        "s", f"main-node CPU {cpu_per_node:.3f} s per node", at_1000,
                        f"<= {TARGET_1000_S:g} s", at_1000 <= TARGET_1000_S))
    sec.data = {"runs": {str(n): rs for n, rs in runs.items()}, "slope_s_per_node": slope}
    sec.notes.append(
        "One rank per node, children started at once (max_delay 0), all nodes sharing this "
        "machine's 2 cores: the main node starts every remote daemon itself over ssh "
        "(no tree spawn), so the time grows with the node count; on Batch each node has its "
        "own cores and the main node's share is the CPU column. Raw rounds: "
        + json.dumps(sec.data["runs"]))
    sec.figure = _figure(opts, counts, wall, cpu)
    return sec


def _figure(opts: Options, counts: list[int], wall: dict, cpu: dict) -> str:
    fig, (ax1, ax2) = plot.figure(2, width=4.5)
    ax1.plot(counts, [wall[n] for n in counts], "o-")
    ax1.set_xlabel("nodes")
    ax1.set_ylabel("last report to all ranks running (s)")
    ax2.plot(counts, [cpu[n] / n for n in counts], "o-", color="tab:orange")
    ax2.set_xlabel("nodes")
    ax2.set_ylabel("main-node CPU per node (s)")
    return plot.save(fig, opts, "launch", "Launch at scale on emulated nodes")
