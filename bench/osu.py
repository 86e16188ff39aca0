"""``mpiexec -n 2 python -m bench.osu --sizes ...``: OSU-style latency and bandwidth as JSON.

A reimplementation of the algorithm of mpi4py's ``demo/osu_latency.py`` and ``demo/osu_bw.py``
(mpi4py, BSD-3-Clause, (c) Lisandro Dalcin; after the OSU Micro-Benchmarks of Ohio State):

- latency: blocking ``Send``/``Recv`` ping-pong, ``skip`` warm-up round trips, then ``loop``
  timed ones; latency = elapsed / (2 * loop). Fewer iterations above 8 KiB, as there.
- bandwidth: rank 0 posts a window of ``Isend``s, ``Waitall``, then waits for a 4-byte ack;
  bandwidth = size * window * loop / elapsed (MB/s, 1 MB = 10^6 bytes).

Differences: message sizes come from ``--sizes`` and buffers are numpy arrays; the figures are
returned as JSON rather than printed as a table. With ``--pairs``, `solver commcheck` and the
latency loop take turns in the same job, round by round (sizes up to 8 KiB, then the larger
ones), so both see the same moment's machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys

import numpy as np
from mpi4py import MPI

LARGE = 8192  # bytes: above this, fewer iterations (osu_latency/osu_bw's large_message_size)


def allocate(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Send and receive buffers for every size: anonymous memory allocated once as in the
    demos (commcheck's allocator), filled as the C benchmarks' set_buffer does."""
    from solver.commcheck import message_buffer

    return message_buffer(size, ord("a")), message_buffer(size, ord("b"))


def latency(comm: MPI.Comm, size: int, loop: int, skip: int,
            bufs: tuple[np.ndarray, np.ndarray]) -> float:
    """One-way latency in microseconds for ``size``-byte messages (rank 0's view)."""
    buf_s, buf_r = bufs
    s_msg, r_msg = [buf_s, size, MPI.BYTE], [buf_r, size, MPI.BYTE]
    rank = comm.Get_rank()
    comm.Barrier()
    t_start = MPI.Wtime()
    for i in range(loop + skip):
        if i == skip:
            t_start = MPI.Wtime()
        if rank == 0:
            comm.Send(s_msg, 1, 1)
            comm.Recv(r_msg, 1, 1)
        elif rank == 1:
            comm.Recv(r_msg, 0, 1)
            comm.Send(s_msg, 0, 1)
    return (MPI.Wtime() - t_start) * 1e6 / (2 * loop)


def bandwidth(comm: MPI.Comm, size: int, loop: int, skip: int, window: int,
              bufs: tuple[np.ndarray, np.ndarray]) -> float:
    """Streaming bandwidth in MB/s for a window of ``size``-byte sends (rank 0's view)."""
    rank = comm.Get_rank()
    big, ack = bufs[0] if rank == 0 else bufs[1], np.zeros(4, "B")
    requests = [MPI.REQUEST_NULL] * window
    comm.Barrier()
    t_start = MPI.Wtime()
    for i in range(loop + skip):
        if i == skip:
            t_start = MPI.Wtime()
        if rank == 0:
            for j in range(window):
                requests[j] = comm.Isend([big, size, MPI.BYTE], 1, 100)
            MPI.Request.Waitall(requests)
            comm.Recv([ack, 4, MPI.BYTE], 1, 101)
        elif rank == 1:
            for j in range(window):
                requests[j] = comm.Irecv([big, size, MPI.BYTE], 0, 100)
            MPI.Request.Waitall(requests)
            comm.Send([ack, 4, MPI.BYTE], 0, 101)
    elapsed = MPI.Wtime() - t_start
    return size / 1e6 * loop * window / elapsed


def commcheck_latencies(comm: MPI.Comm, sizes: list[int], loop: int) -> dict[int, float]:
    """`solver commcheck` on ``comm`` for ``sizes``: one-way latency in us per size (rank 0).

    Its JSON line is kept from stdout; a failed check prints that line and aborts the job,
    since the peer is already waiting in the next measurement.
    """
    from solver import commcheck

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = commcheck.run(comm, ["--sizes", ",".join(map(str, sizes)),
                                    "--iterations", str(loop)], dict(os.environ))
    if comm.Get_rank() != 0:
        return {}
    line = out.getvalue().strip().splitlines()[-1]
    if code != 0:
        print(line, flush=True)
        comm.Abort(code)
    half_trip_bw = json.loads(line)["pairs"][0]["bandwidth_MBps"]
    return {s: s / half_trip_bw[str(s)] for s in sizes}


def paired(comm: MPI.Comm, sizes: list[int], reps: int, loops: tuple[int, int],
           bufs: tuple[np.ndarray, np.ndarray]) -> dict:
    """``reps`` rounds; in each, `solver commcheck` and the OSU latency loop back to back.

    The order flips every round (ABBA), so drift in the machine's load falls on both sides.
    Both get the same counts: ``loops`` = timed round trips up to 8 KiB and above, 1 in 10
    more as warm-up (commcheck's own rule, osu_latency's skip).
    """
    groups = [(g, loop) for g, loop in (([s for s in sizes if s <= LARGE], loops[0]),
                                        ([s for s in sizes if s > LARGE], loops[1])) if g]
    per: dict[str, dict[str, list[float]]] = {str(s): {"commcheck_us": [], "osu_us": []}
                                              for s in sizes}
    for rep in range(reps):
        ours_first = rep % 2 == 0
        for group, loop in groups:
            if ours_first:
                cc = commcheck_latencies(comm, group, loop)
            osu = {s: latency(comm, s, loop, loop // 10, bufs) for s in group}
            if not ours_first:
                cc = commcheck_latencies(comm, group, loop)
            for s in group:
                per[str(s)]["commcheck_us"].append(cc.get(s, 0.0))
                per[str(s)]["osu_us"].append(osu[s])
    return per


def main(argv: list[str]) -> int:
    """OSU latency and bandwidth per size; with --pairs, interleaved with `solver commcheck`.

    Rank 0 prints one JSON line: {"command": "osu", "sizes": {size: figures}} and, with
    --pairs, "pairs": {size: {"commcheck_us": [...], "osu_us": [...]}} (one entry a round).
    """
    p = argparse.ArgumentParser(prog="python -m bench.osu")
    p.add_argument("--sizes", required=True, help="message sizes in bytes, comma separated")
    p.add_argument("--loop", type=int, default=10000, help="timed round trips, small sizes")
    p.add_argument("--skip", type=int, default=1000, help="warm-up round trips, small sizes")
    p.add_argument("--loop-large", type=int, default=100)
    p.add_argument("--skip-large", type=int, default=10)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--pairs", type=int, metavar="ROUNDS", default=0,
                   help="first ROUNDS rounds of `solver commcheck` against the OSU latency "
                        "loop, back to back per group of sizes (--pair-loop, --pair-loop-large "
                        "counts)")
    p.add_argument("--pair-loop", type=int, default=1000)
    p.add_argument("--pair-loop-large", type=int, default=100)
    a = p.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",") if s]
    comm = MPI.COMM_WORLD
    if comm.Get_size() != 2:
        if comm.Get_rank() == 0:
            print("bench.osu: needs exactly two processes", file=sys.stderr)
        return 2
    bufs = allocate(max(sizes))
    result: dict[str, dict] = {"command": "osu"}
    if a.pairs:
        result["pairs"] = paired(comm, sizes, a.pairs, (a.pair_loop, a.pair_loop_large), bufs)
    out: dict[str, dict[str, float]] = {}
    for size in sizes:
        large = size > LARGE
        loop, skip = (a.loop_large, a.skip_large) if large else (a.loop, a.skip)
        lat = latency(comm, size, loop, skip, bufs)
        # osu_bw's own counts: 100 (+10) windows for small sizes, 20 (+2) above 8 KiB
        bw = bandwidth(comm, size, 20 if large else 100, 2 if large else 10, a.window,
                       bufs)
        out[str(size)] = {"latency_us": lat, "bandwidth_MBps": bw,
                          "pingpong_MBps": size / lat}
    result["sizes"] = out
    if comm.Get_rank() == 0:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
