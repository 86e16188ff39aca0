"""Halo exchange: edges untouched on COMM_SELF; neighbour values (corners too) across 4 ranks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

from solver.decomp import decompose
from solver.halo import Halo


@pytest.mark.parametrize("width", [1, 2])
@pytest.mark.parametrize("grid", [(8, 6), (6, 5, 7)])
def test_edges_are_left_alone_on_comm_self(grid: tuple[int, ...], width: int) -> None:
    cart, block = decompose(MPI.COMM_SELF, grid)
    shape = tuple(c + 2 * width for c in block.count)
    u = np.random.default_rng(3).random(shape)
    before = u.copy()
    Halo(cart, shape, width).exchange(u)
    np.testing.assert_array_equal(u, before)  # PROC_NULL on every side: ghosts keep their values
    cart.Free()


_SCRIPT = textwrap.dedent("""
    import numpy as np
    from mpi4py import MPI
    from solver.decomp import decompose
    from solver.halo import Halo

    def check(grid, width):
        cart, block = decompose(MPI.COMM_WORLD, grid)
        # every point holds a unique code of its global index (padded by width - 1 layers);
        # a ghost inside the global interior must get its owner's value (corners too), a
        # ghost outside it (boundary side) keeps its -1
        g = width - 1
        full = tuple(n + 2 * g for n in grid)
        codes = np.arange(np.prod(full), dtype=float).reshape(full)
        local = tuple(slice(o, o + c + 2 * width) for o, c in zip(block.offset, block.count))
        expected = codes[local].copy()
        owned = np.ones(full, dtype=bool)
        for axis, n in enumerate(grid):
            index = np.arange(n + 2 * g).reshape([-1 if a == axis else 1 for a in range(len(grid))])
            owned &= (index >= g + 1) & (index <= n + g - 2)
        expected[~owned[local]] = -1.0
        u = np.full(expected.shape, -1.0)
        inner = (slice(width, -width),) * len(grid)
        u[inner] = expected[inner]
        Halo(cart, u.shape, width).exchange(u)
        bad = int(not np.array_equal(u, expected))
        return cart.allreduce(bad), block.dims

    for width, grid in ((1, (11, 9)), (1, (7, 8, 9)), (2, (11, 9)), (2, (7, 8, 9)),
                        (3, (11, 9)), (8, (37, 35))):
        total, dims = check(grid, width)
        if MPI.COMM_WORLD.Get_rank() == 0:
            print("BAD", total, "DIMS", *dims)
""")


@pytest.mark.mpi
def test_ghosts_hold_neighbour_values(tmp_path: Path, run_python) -> None:
    script = tmp_path / "halo_check.py"
    script.write_text(_SCRIPT)
    proc = run_python([str(script)], ranks=4)
    assert proc.returncode == 0, proc.stderr
    # 2-D on a 2x2 process grid, 3-D on 2x2x1, ghost widths 1 to 8: no ghost may differ
    assert proc.stdout.split("\n")[:6] == ["BAD 0 DIMS 2 2", "BAD 0 DIMS 2 2 1"] * 2 + [
        "BAD 0 DIMS 2 2"] * 2, proc.stdout
