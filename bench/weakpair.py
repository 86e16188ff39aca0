"""``mpiexec -n 2 python -m bench.weakpair --n N --steps S --rounds R --out DIR``: weak scaling.

Two processes take turns, round by round, between the two runs that the judged ratio
compares, both the solver's own ``heat`` run (``solver.heat.run``):

- pair: each rank solves an N x N grid alone on ``COMM_SELF``, both at once (the two cores'
  shared memory bus sets the ceiling for two ranks);
- coupled: the two ranks solve one grid twice as large on ``COMM_WORLD`` (halo exchange and
  synchronisation on top of the same work per rank).

A barrier starts both ranks' runs together (separate ``mpiexec`` jobs started side by side
drift apart by their start-up). The order flips every round, so a first-mover effect and
drift in the machine's load fall on both. Rank 0 prints one JSON line with every round's
figures: {"pair": [[mlups rank 0, mlups rank 1], ...], "coupled": [mlups, ...]}.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
from pathlib import Path

from mpi4py import MPI

from bench.common import last_json
from solver import heat


def solve(comm: MPI.Comm, nx: int, ny: int, steps: int, out: Path, job: str) -> float:
    """One solver run on ``comm``: its summary's MLUPS on the comm's rank 0 (0.0 elsewhere)."""
    argv = ["--nx", str(nx), "--ny", str(ny), "--steps", str(steps), "--checkpoint-every", "0",
            "--no-png", "--output-path", str(out)]
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        code = heat.run(comm, argv, {**os.environ, "AWS_BATCH_JOB_ID": job})
    if code != 0:
        print(f"bench.weakpair: solver exit {code} ({job})", file=sys.stderr, flush=True)
        MPI.COMM_WORLD.Abort(code)
    comm.Barrier()
    if comm.Get_rank() == 0:
        shutil.rmtree(out / job, ignore_errors=True)
        return float(last_json(captured.getvalue())["mlups"])
    return 0.0


def rounds(n: int, steps: int, count: int, out: Path) -> dict[str, list] | None:
    """``count`` rounds of pair and coupled runs, order flipping; rank 0 gets the figures."""
    world = MPI.COMM_WORLD
    rank = world.Get_rank()
    wide = 2 * (n - 2) + 2  # twice the interior along x: each rank's block is n x n
    pair, coupled = [], []
    for r in range(count):
        for mode in (("pair", "coupled") if r % 2 == 0 else ("coupled", "pair")):
            world.Barrier()
            if mode == "pair":
                mine = solve(MPI.COMM_SELF, n, n, steps, out, f"r{r}-pair-{rank}")
                both = world.gather(mine, root=0)
                if rank == 0:
                    pair.append(both)
            else:
                coupled.append(solve(world, wide, n, steps, out, f"r{r}-coupled"))
    return {"n": n, "wide": wide, "steps": steps, "pair": pair, "coupled": coupled} \
        if rank == 0 else None


def main(argv: list[str]) -> int:
    """Parse the options, run the rounds, print rank 0's JSON line."""
    p = argparse.ArgumentParser(prog="python -m bench.weakpair")
    p.add_argument("--n", type=int, required=True, help="grid points per side of one rank")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--out", type=Path, required=True, help="scratch directory for outputs")
    a = p.parse_args(argv)
    if MPI.COMM_WORLD.Get_size() != 2:
        if MPI.COMM_WORLD.Get_rank() == 0:
            print("bench.weakpair: needs exactly two processes", file=sys.stderr)
        return 2
    result = rounds(a.n, a.steps, a.rounds, a.out)
    if result is not None:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
