"""``mpiexec -n P python -m bench.haloprobe --nx N --ny N --steps S``: halo share of step time.

The solver's summary gives only a total, so this runs the solver's own time loop
(``solver.timeloop.run``: decompose, halo exchange, fused sweep) with its per-phase timers on:
on every rank, the wait at a barrier before each exchange (imbalance between ranks), the
exchange and the update. Rank 0 prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
from mpi4py import MPI

from solver import timeloop
from solver.decomp import decompose


def probe(comm: MPI.Comm, grid: tuple[int, ...], steps: int) -> dict | None:
    """Time ``steps`` time steps of the solver's loop; rank 0 gets per-rank figures, others None."""
    cart, block = decompose(comm, grid)
    u = np.zeros(block.compute_shape)
    u[block.interior] = np.random.default_rng(cart.Get_rank()).random(block.count)
    stepper = timeloop.Stepper(cart, block, u, (0.1,) * u.ndim)
    stepper.advance(block.ghost)  # untimed: first touch of buffers and the shared-memory channel
    phases = stepper.phases = timeloop.PhaseTimes()
    cart.Barrier()
    began = time.perf_counter()
    done, _ = timeloop.run(stepper, 0, steps)
    cart.Barrier()
    total = time.perf_counter() - began
    rows = cart.gather({"rank": cart.Get_rank(), "wait_s": phases.wait,
                        "exchange_s": phases.exchange, "update_s": phases.update,
                        "total_s": total, "block": list(block.count)}, root=0)
    if cart.Get_rank() != 0:
        return None
    slowest = max(r["total_s"] for r in rows)
    return {"ranks": cart.Get_size(), "dims": list(block.dims), "grid": list(grid),
            "steps": done, "ghost": block.ghost, "per_rank": rows,
            "halo_share": max(r["exchange_s"] / r["total_s"] for r in rows),
            "wait_share": max(r["wait_s"] / r["total_s"] for r in rows),
            "mlups": math.prod(n - 2 for n in grid) * done / slowest / 1e6}


def main(argv: list[str]) -> int:
    """Parse the grid and step count, run the probe on COMM_WORLD."""
    p = argparse.ArgumentParser(prog="python -m bench.haloprobe")
    p.add_argument("--nx", type=int, required=True)
    p.add_argument("--ny", type=int, required=True)
    p.add_argument("--nz", type=int, default=0)
    p.add_argument("--steps", type=int, default=50)
    a = p.parse_args(argv)
    grid = (a.nx, a.ny, a.nz) if a.nz else (a.nx, a.ny)
    result = probe(MPI.COMM_WORLD, grid, a.steps)
    if result is not None:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
