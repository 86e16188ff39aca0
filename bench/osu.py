"""``mpiexec -n 2 python -m bench.osu --sizes ...``: OSU-style latency and bandwidth as JSON.

A reimplementation of the algorithm of mpi4py's ``demo/osu_latency.py`` and ``demo/osu_bw.py``
(mpi4py, BSD-3-Clause, (c) Lisandro Dalcin; after the OSU Micro-Benchmarks of Ohio State):

- latency: blocking ``Send``/``Recv`` ping-pong, ``skip`` warm-up round trips, then ``loop``
  timed ones; latency = elapsed / (2 * loop). Fewer iterations above 8 KiB, as there.
- bandwidth: rank 0 posts a window of ``Isend``s, ``Waitall``, then waits for a 4-byte ack;
  bandwidth = size * window * loop / elapsed (MB/s, 1 MB = 10^6 bytes).

Differences: message sizes come from ``--sizes`` (the same list `solver commcheck` is given)
and buffers are numpy arrays; the figures are returned as JSON rather than printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from mpi4py import MPI

LARGE = 8192  # bytes: above this, fewer iterations (osu_latency/osu_bw's large_message_size)


def latency(comm: MPI.Comm, size: int, loop: int, skip: int) -> float:
    """One-way latency in microseconds for ``size``-byte messages (rank 0's view)."""
    buf_s, buf_r = np.zeros(max(size, 1), "B"), np.zeros(max(size, 1), "B")
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


def bandwidth(comm: MPI.Comm, size: int, loop: int, skip: int, window: int) -> float:
    """Streaming bandwidth in MB/s for a window of ``size``-byte sends (rank 0's view)."""
    big, ack = np.zeros(size, "B"), np.zeros(4, "B")
    rank = comm.Get_rank()
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


def main(argv: list[str]) -> int:
    """Run latency then bandwidth for every size; rank 0 prints {size: figures} as JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.osu")
    p.add_argument("--sizes", required=True, help="message sizes in bytes, comma separated")
    p.add_argument("--loop", type=int, default=10000, help="timed round trips, small sizes")
    p.add_argument("--skip", type=int, default=1000, help="warm-up round trips, small sizes")
    p.add_argument("--loop-large", type=int, default=100)
    p.add_argument("--skip-large", type=int, default=10)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--commcheck", type=int, metavar="ITER", default=0,
                   help="first run `solver commcheck` (same sizes, ITER iterations) in this job")
    a = p.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",") if s]
    comm = MPI.COMM_WORLD
    if comm.Get_size() != 2:
        if comm.Get_rank() == 0:
            print("bench.osu: needs exactly two processes", file=sys.stderr)
        return 2
    if a.commcheck:
        from solver import commcheck

        # the solver's own command, on the same communicator: prints its JSON line first
        code = commcheck.run(comm, ["--sizes", a.sizes, "--iterations", str(a.commcheck)],
                             dict(os.environ))
        if code != 0:
            return code
    out: dict[str, dict[str, float]] = {}
    for size in sizes:
        large = size > LARGE
        loop, skip = (a.loop_large, a.skip_large) if large else (a.loop, a.skip)
        lat = latency(comm, size, loop, skip)
        # osu_bw's own counts: 100 (+10) windows for small sizes, 20 (+2) above 8 KiB
        bw = bandwidth(comm, size, 20 if large else 100, 2 if large else 10, a.window)
        out[str(size)] = {"latency_us": lat, "bandwidth_MBps": bw,
                          "pingpong_MBps": size / lat}
    if comm.Get_rank() == 0:
        print(json.dumps({"command": "osu", "sizes": out}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
