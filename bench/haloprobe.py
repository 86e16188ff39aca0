"""``mpiexec -n P python -m bench.haloprobe --nx N --ny N --steps S``: halo share of step time.

The solver's summary gives only a total, so this runs the solver's own pieces (decompose,
Halo.exchange, stencil.sweep) in the solver's loop order and times, on every rank, the wait at
a barrier before each exchange (imbalance between ranks), the exchange and the update.
Rank 0 prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
from mpi4py import MPI

from solver import stencil
from solver.decomp import decompose
from solver.halo import Halo


def probe(comm: MPI.Comm, grid: tuple[int, ...], steps: int) -> dict | None:
    """Time ``steps`` time steps; rank 0 gets per-rank figures, others None.

    Follows the solver's loop: one exchange of ``ghost`` layers, then one fused sweep of up
    to ``ghost`` steps (stencil.sweep), as solver.heat does.
    """
    cart, block = decompose(comm, grid)
    ghost = block.ghost
    shape = block.compute_shape
    u = np.zeros(shape)
    inner = (slice(ghost, -ghost),) * u.ndim
    u[inner] = np.random.default_rng(cart.Get_rank()).random(block.count)
    nxt = np.zeros_like(u)
    halo = Halo(cart, shape, ghost)
    coeffs = (0.1,) * u.ndim
    stencil.warm_up(u.ndim)
    sides = tuple((lo != MPI.PROC_NULL, hi != MPI.PROC_NULL) for lo, hi in halo.neighbours)
    bufs = stencil.sweep_buffer(shape, ghost)

    def update(a: np.ndarray, b: np.ndarray) -> int:
        stencil.sweep(a, b, bufs, coeffs, ghost, ghost, sides)
        return ghost
    halo.exchange(u)  # untimed: first touch of buffers and the shared-memory channel
    update(u, nxt)
    cart.Barrier()
    wait = exchange = updating = 0.0
    began = time.perf_counter()
    done = 0
    while done < steps:
        t0 = time.perf_counter()
        # the barrier separates waiting for a slower neighbour from the exchange itself
        cart.Barrier()
        t1 = time.perf_counter()
        halo.exchange(u)
        t2 = time.perf_counter()
        done += update(u, nxt)
        updating += time.perf_counter() - t2
        exchange += t2 - t1
        wait += t1 - t0
        u, nxt = nxt, u
    cart.Barrier()
    total = time.perf_counter() - began
    rows = cart.gather({"rank": cart.Get_rank(), "wait_s": wait, "exchange_s": exchange,
                        "update_s": updating, "total_s": total, "block": list(block.count)},
                       root=0)
    if cart.Get_rank() != 0:
        return None
    slowest = max(r["total_s"] for r in rows)
    return {"ranks": cart.Get_size(), "dims": list(block.dims), "grid": list(grid),
            "steps": done, "ghost": ghost, "per_rank": rows,
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
