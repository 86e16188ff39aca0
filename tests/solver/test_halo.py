"""Halo exchange: edges untouched on COMM_SELF; neighbour values across 4 ranks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from solver.decomp import decompose
from solver.halo import Halo


@pytest.mark.parametrize("grid", [(8, 6), (6, 5, 7)])
def test_edges_are_left_alone_on_comm_self(grid: tuple[int, ...]) -> None:
    cart, block = decompose(MPI.COMM_SELF, grid)
    u = np.random.default_rng(3).random(block.padded_shape)
    before = u.copy()
    Halo(cart, block.padded_shape).exchange(u)
    np.testing.assert_array_equal(u, before)  # PROC_NULL on every side: ghosts keep their values
    cart.Free()


_SCRIPT = textwrap.dedent("""
    import numpy as np
    from mpi4py import MPI
    from solver.decomp import decompose
    from solver.halo import Halo

    def check(grid):
        cart, block = decompose(MPI.COMM_WORLD, grid)
        # every interior point holds a unique code of its global index; ghosts start at -1
        idx = np.indices(grid).reshape(len(grid), -1)
        codes = np.ravel_multi_index(idx, grid).reshape(grid).astype(float)
        local = tuple(slice(o, o + c + 2) for o, c in zip(block.offset, block.count))
        expected = codes[local].copy()
        u = np.full(block.padded_shape, -1.0)
        inner = (slice(1, -1),) * len(grid)
        u[inner] = expected[inner]
        Halo(cart, block.padded_shape).exchange(u)
        bad = 0
        for axis in range(len(grid)):
            for side, at_edge in ((0, block.coords[axis] == 0),
                                  (-1, block.coords[axis] == block.dims[axis] - 1)):
                sl = list(inner)
                sl[axis] = side
                want = -1.0 if at_edge else expected[tuple(sl)]
                got = u[tuple(sl)]
                bad += int(not np.array_equal(got, np.broadcast_to(want, got.shape)))
        return cart.allreduce(bad), block.dims

    for grid in ((11, 9), (7, 8, 9)):
        total, dims = check(grid)
        if MPI.COMM_WORLD.Get_rank() == 0:
            print("BAD", total, "DIMS", *dims)
""")


@pytest.mark.mpi
def test_ghosts_hold_neighbour_values(tmp_path: Path, run_python) -> None:
    script = tmp_path / "halo_check.py"
    script.write_text(_SCRIPT)
    proc = run_python([str(script)], ranks=4)
    assert proc.returncode == 0, proc.stderr
    # 2-D on a 2x2 process grid, 3-D on 2x2x1: no ghost face may differ from its neighbour
    assert proc.stdout.split("\n")[:2] == ["BAD 0 DIMS 2 2", "BAD 0 DIMS 2 2 1"], proc.stdout
