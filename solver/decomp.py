"""Block decomposition of the grid interior over an MPI Cartesian communicator."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from mpi4py import MPI

from solver.config import UsageError
from solver.stencil import MAX_DEPTH


def block_range(n: int, parts: int, index: int) -> tuple[int, int]:
    """(offset, count) of block ``index`` of ``n`` points split into ``parts`` near-equal blocks."""
    base, extra = divmod(n, parts)
    count = base + (1 if index < extra else 0)
    offset = index * base + min(index, extra)
    return offset, count


def choose_dims(size: int, interior: tuple[int, ...]) -> tuple[int, ...]:
    """Process grid for ``size`` ranks: ``Compute_dims`` if every block is non-empty, else the
    feasible factorisation with the smallest halo surface."""
    ndim = len(interior)
    dims = tuple(MPI.Compute_dims(size, ndim))
    if all(d <= n for d, n in zip(dims, interior, strict=True)):
        return dims
    best: tuple[float, tuple[int, ...]] | None = None
    divisors = [d for d in range(1, size + 1) if size % d == 0]
    for cand in itertools.product(divisors, repeat=ndim):
        if math.prod(cand) != size or any(d > n for d, n in zip(cand, interior, strict=True)):
            continue
        # halo surface per rank ~ sum over axes of (block face area) where the axis is split
        block = [n / d for n, d in zip(interior, cand, strict=True)]
        surface = sum(math.prod(block) / block[a] for a in range(ndim) if cand[a] > 1)
        if best is None or surface < best[0]:
            best = (surface, cand)
    if best is None:
        shape = "x".join(str(n + 2) for n in interior)
        raise UsageError(f"ranks: {size} ranks cannot split a {shape} grid "
                         "(more ranks than interior grid points along the axes)")
    return best[1]


@dataclass(frozen=True)
class Block:
    """This rank's share of the interior: offsets/counts per axis (interior index space)."""

    dims: tuple[int, ...]
    coords: tuple[int, ...]
    offset: tuple[int, ...]
    count: tuple[int, ...]
    ghost: int = 1  # steps a sweep may fuse = ghost layers of the split axes

    @property
    def padded_shape(self) -> tuple[int, ...]:
        """Local array shape with one ghost layer per side (the layout of field I/O)."""
        return tuple(c + 2 for c in self.count)

    @property
    def ghosts(self) -> tuple[int, ...]:
        """Ghost layers per axis of the time-stepping arrays: ``ghost`` where the axis is split,
        1 (the fixed boundary) where it is not, as no neighbour fills more. So one rank's
        arrays are the grid itself, whose row length the kernel's speed depends on."""
        return tuple(self.ghost if d > 1 else 1 for d in self.dims)

    @property
    def compute_shape(self) -> tuple[int, ...]:
        """Local array shape with ``ghosts`` layers per side (the time-stepping arrays)."""
        return tuple(c + 2 * g for c, g in zip(self.count, self.ghosts, strict=True))

    @property
    def interior(self) -> tuple[slice, ...]:
        """This block's own points in a time-stepping array."""
        return tuple(slice(g, -g) for g in self.ghosts)

    @property
    def io_view(self) -> tuple[slice, ...]:
        """The padded (one ghost layer) part of a time-stepping array."""
        return tuple(slice(g - 1, c + g + 1) for c, g in zip(self.count, self.ghosts,
                                                              strict=True))


def ghost_width(interior: tuple[int, ...], dims: tuple[int, ...], depth: int) -> int:
    """Ghost layers for sweeps of up to ``depth`` fused steps: ``depth``, or less where a split
    axis leaves some rank fewer layers than that (a neighbour fills ghosts from its own block)."""
    thinnest = [n // d for n, d in zip(interior, dims, strict=True) if d > 1]
    return max(1, min([depth, *thinnest]))


def decompose(comm: MPI.Comm, grid: tuple[int, ...]) -> tuple[MPI.Cartcomm, Block]:
    """Create the Cartesian communicator and this rank's block of the (grid - 2) interior."""
    interior = tuple(n - 2 for n in grid)
    dims = choose_dims(comm.Get_size(), interior)
    cart = comm.Create_cart(list(dims), periods=[False] * len(dims), reorder=True)
    coords = tuple(cart.Get_coords(cart.Get_rank()))
    ranges = [block_range(n, d, c) for n, d, c in zip(interior, dims, coords, strict=True)]
    block = Block(dims, coords, tuple(r[0] for r in ranges), tuple(r[1] for r in ranges),
                  ghost_width(interior, dims, MAX_DEPTH[len(grid)]))
    return cart, block
