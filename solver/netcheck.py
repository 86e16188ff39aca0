"""The ``netcheck`` command: latency and bandwidth of every pair of ranks, in rounds.

Meant for one rank per node (the launcher's MNP_PRECHECK gate runs it so), it measures each
pair with commcheck's ping-pong at each ``--sizes`` size. A round-robin schedule puts every
rank in at most one pair per round, so disjoint pairs run at once and N nodes take N-1 rounds
(N for odd N). Rank 0 prints one JSON line: every pair's one-way ``seconds`` per size, the
hosts, and the transport each rank's MPI selected; the launcher's gate judges the figures.

Exit 0 when every pair was measured and echoed correctly, 1 when an echo came back wrong,
4 (via Abort: the silent rank's messages can never complete) when a rank did not answer;
then the rank that noticed prints a JSON line naming the pair, ``"unreachable_pairs"``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from mpi4py import MPI

from launcher import contract
from launcher.inputs import whole_number_arg
from launcher.pairs import rounds
from solver.commcheck import (
    VERIFY_ROUNDS,
    Parser,
    buffers,
    echo,
    parse_sizes,
    pingpong,
    start,
    wait_all,
)
from solver.config import UsageError, decimal_arg
from solver.output import log
from solver.transport import describe, transport

COMMAND = "netcheck"
ROUND_WAITS = 3  # a round may take this many --timeout before the check gives up on it
DEFAULT_SIZES = (8, 1 << 20)  # latency, and bandwidth at a size past every eager limit


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Options of ``python -m solver netcheck``."""
    p = Parser(prog="python -m solver netcheck",
                description="Latency and bandwidth of every pair of ranks (one per node).")
    p.add_argument("--sizes", type=parse_sizes, default=list(DEFAULT_SIZES),
                   help="message sizes in bytes, comma separated (8,1048576)")
    p.add_argument("--iterations", type=whole_number_arg, default=1,
                   help="timed round trips per pair, size and repeat (1)")
    p.add_argument("--repeats", type=whole_number_arg, default=7,
                   help="timed loops per pair and size; the fastest counts (7)")
    p.add_argument("--timeout", type=decimal_arg, default=10.0,
                   help="seconds to wait for a peer (10; 3x that for a round) before giving up")
    args = p.parse_args(argv)
    if args.iterations < 1 or args.repeats < 1 or not args.timeout > 0:
        raise UsageError("--iterations, --repeats and --timeout must be positive")
    return args


def _schedule(args: argparse.Namespace) -> list[int]:
    """The message size of each timed loop, in the order both ranks of a pair run them."""
    return [size for size in args.sizes for _ in range(args.repeats)]


def _measure(comm: MPI.Comm, peer: int, args: argparse.Namespace, space: tuple) -> dict | None:
    """This rank's side of one pair: figures per size, or None when ``peer`` is silent.

    The fastest of ``--repeats`` loops counts (by default single round trips): on a busy
    host a descheduled round trip inflates a loop's mean, while a slow link slows every
    round trip alike, so the fastest one is the link's own figure.
    """
    me = comm.Get_rank()
    entry: dict = {"ranks": [me, peer], "seconds": {}, "latency_us": None,
                   "bandwidth_MBps": {}, "wrong_echoes": 0}
    best: dict[int, float] = {}
    for size in _schedule(args):
        result = pingpong(comm, peer, size, args.iterations, args.timeout, space)
        if result is None:
            return None
        best[size] = min(best.get(size, result[0]), result[0])
        entry["wrong_echoes"] += result[1]
    for size, roundtrip in best.items():
        half = roundtrip / 2
        entry["seconds"][str(size)] = float(f"{half:.6g}")
        entry["bandwidth_MBps"][str(size)] = float(f"{size / half / 1e6:.6g}")
    entry["latency_us"] = float(f"{entry['seconds'][str(min(args.sizes))] * 1e6:.6g}")
    return entry


def _abort(comm: MPI.Comm, hosts: list[str], silent: list[tuple[int, int]],
           errors: list[str]) -> int:
    """Print the failure line (from whichever rank noticed) and end the whole job with 4."""
    log(f"error: {'; '.join(errors)}; aborting")
    print(json.dumps({"command": COMMAND, "ok": False, "hosts": hosts,
                      "unreachable_pairs": [list(p) for p in silent], "errors": errors}),
          flush=True)
    sys.stderr.flush()
    comm.Abort(contract.NODE_LOST)
    return contract.NODE_LOST


def _rounds(comm: MPI.Comm, args: argparse.Namespace, hosts: list[str]) -> list[dict]:
    """Run every round; returns this rank's measured pairs (it aborts on a silent peer)."""
    me = comm.Get_rank()
    space = buffers(args.sizes)
    measured = []
    for number, pairs in enumerate(rounds(comm.Get_size()), 1):
        pair = next((p for p in pairs if me in p), None)
        if pair is not None and pair[0] == me:
            entry = _measure(comm, pair[1], args, space)
            if entry is None:
                return [_abort(comm, hosts, [pair], [f"rank {pair[1]} ({hosts[pair[1]]}) did not "
                                                     f"answer rank {me} ({hosts[me]})"])]
            entry["hosts"] = [hosts[me], hosts[pair[1]]]
            measured.append(entry)
        elif pair is not None and not echo(comm, _schedule(args), args.iterations, pair[0],
                                           args.timeout):
            return [_abort(comm, hosts, [(me, pair[0])], [
                f"rank {pair[0]} ({hosts[pair[0]]}) did not ping rank {me} ({hosts[me]})"])]
        # Rounds stay apart: a rank that finished early must not start timing a pair whose
        # other rank is still busy in this round. The wait is longer than a pair's own, so
        # that a pair with a silent rank reports it (naming it) before anyone gives up here.
        # No busy-polling here: a rank that waits must leave the cores to ranks still timing.
        if not wait_all([comm.Ibarrier()], time.monotonic() + ROUND_WAITS * args.timeout,
                        spin=0):
            return [_abort(comm, hosts, [], [f"round {number} did not finish within "
                                             f"{ROUND_WAITS * args.timeout:g}s"])]
    return measured


def run(comm: MPI.Comm, argv: list[str], environ: dict[str, str]) -> int:
    """Measure every pair of ranks of ``comm``; returns the exit code."""
    rank0 = comm.Get_rank() == 0
    started = start(comm, parse_args, argv)
    if isinstance(started, int):
        return started
    args, began, names, missing = started
    if rank0 and missing:
        hosts = [names.get(r, "?") for r in range(comm.Get_size())]
        return _abort(comm, hosts, [(0, r) for r in missing],
                      [f"rank {r} did not answer" for r in missing])
    names = comm.bcast(names, root=0)
    hosts = [names[r] for r in range(comm.Get_size())]
    measured = _rounds(comm, args, hosts)
    gathered = comm.gather(measured, root=0)
    transports = comm.gather(transport(environ), root=0)
    if not rank0:
        return 0
    pairs = sorted((p for part in gathered for p in part), key=lambda p: p["ranks"])
    errors = [f"ranks {p['ranks'][0]}-{p['ranks'][1]}: {p['wrong_echoes']} of "
              f"{(VERIFY_ROUNDS + 2) * len(_schedule(args))} checked echoes came back different"
              for p in pairs if p["wrong_echoes"]]
    log(f"transport: {describe(transports[0])}")
    print(json.dumps({"command": COMMAND, "ok": not errors, "ranks": comm.Get_size(),
                      "hosts": hosts, "sizes": args.sizes, "iterations": args.iterations,
                      "repeats": args.repeats,
                      "pairs": pairs, "transports": transports, "unreachable_pairs": [],
                      "errors": errors, "seconds": round(time.perf_counter() - began, 6)}),
          flush=True)
    return contract.APPLICATION_ERROR if errors else contract.OK
