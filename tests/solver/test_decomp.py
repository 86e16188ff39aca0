"""Decomposition: block ranges, process grids, and the Cartesian setup on COMM_SELF."""

from __future__ import annotations

import pytest
from mpi4py import MPI

from solver.config import UsageError
from solver.decomp import block_range, choose_dims, decompose, ghost_width


@pytest.mark.parametrize(("n", "parts"), [(n, p) for n in (1, 5, 7, 64, 1023)
                                           for p in (1, 2, 3, 4, 7) if p <= n])
def test_blocks_tile_the_axis(n: int, parts: int) -> None:
    ranges = [block_range(n, parts, i) for i in range(parts)]
    assert ranges[0][0] == 0
    for (o1, c1), (o2, _) in zip(ranges, ranges[1:], strict=False):
        assert o1 + c1 == o2
    assert sum(c for _, c in ranges) == n
    assert max(c for _, c in ranges) - min(c for _, c in ranges) <= 1


def test_dims_follow_compute_dims_when_feasible() -> None:
    assert choose_dims(4, (100, 100)) == tuple(MPI.Compute_dims(4, 2))
    assert choose_dims(6, (50, 50, 50)) == tuple(MPI.Compute_dims(6, 3))


def test_dims_fall_back_for_thin_grids() -> None:
    assert choose_dims(4, (1, 100)) == (1, 4)
    assert choose_dims(6, (2, 100)) == (1, 6)  # thinner halo than 2x3
    assert choose_dims(6, (3, 4)) == (3, 2)


def test_too_many_ranks_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="ranks: 5 ranks cannot split a 3x4 grid"):
        choose_dims(5, (1, 2))


def test_decompose_on_comm_self_owns_everything() -> None:
    cart, block = decompose(MPI.COMM_SELF, (9, 6, 5))
    try:
        assert block.dims == (1, 1, 1)
        assert block.offset == (0, 0, 0)
        assert block.count == (7, 4, 3)
        assert block.padded_shape == (9, 6, 5)
        assert block.ghost == 2 and block.ghosts == (1, 1, 1)  # 3-D: pairs; no neighbours
        assert block.compute_shape == (9, 6, 5)
    finally:
        cart.Free()


def test_ghost_width_is_the_depth_unless_a_split_axis_is_thinner() -> None:
    assert ghost_width((100, 100), (2, 2), 8) == 8
    assert ghost_width((5, 100), (2, 1), 8) == 2  # blocks of 3 and 2 layers
    assert ghost_width((5, 100), (3, 1), 8) == 1  # a 1-layer block fills only 1 ghost layer
    assert ghost_width((1, 100), (1, 4), 8) == 8  # an unsplit axis has no neighbour to fill
    assert ghost_width((100, 100, 100), (2, 1, 1), 2) == 2
