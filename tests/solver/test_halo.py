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
    import sys
    import numpy as np
    from mpi4py import MPI
    from solver.decomp import decompose
    from solver.halo import Halo

    grid = tuple(int(a) for a in sys.argv[1:])
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
            bad += int(not np.array_equal(u[tuple(sl)], np.broadcast_to(want, u[tuple(sl)].shape)))
    total = cart.allreduce(bad)
    if cart.Get_rank() == 0:
        print("BAD", total, "DIMS", block.dims)
""")


@pytest.mark.mpi
@pytest.mark.parametrize("grid", [(11, 9), (7, 8, 9)])
def test_ghosts_hold_neighbour_values(tmp_path: Path, run_python, grid: tuple[int, ...]) -> None:
    script = tmp_path / "halo_check.py"
    script.write_text(_SCRIPT)
    proc = run_python([str(script), *map(str, grid)], ranks=4)
    assert proc.returncode == 0, proc.stderr
    words = proc.stdout.split()
    assert words[:2] == ["BAD", "0"], proc.stdout
