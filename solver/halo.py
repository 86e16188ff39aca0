"""Ghost-layer exchange with the Cartesian neighbours (uppercase Sendrecv, PROC_NULL at edges)."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

_TAG = 7


class Halo:
    """Preallocated contiguous send/receive buffers for one local array shape.

    ``width`` ghost layers per side (one count, or one per axis) are exchanged. Axis by axis,
    each slab spans the ghost layers of the axes already exchanged, so corner ghosts arrive
    too (via the neighbour that received them one axis earlier): the fused kernels read them.
    """

    def __init__(self, cart: MPI.Cartcomm, padded_shape: tuple[int, ...],
                 width: int | tuple[int, ...] = 1) -> None:
        self.cart = cart
        self.ndim = len(padded_shape)
        self.widths = (width,) * self.ndim if isinstance(width, int) else tuple(width)
        self.neighbours = [cart.Shift(axis, 1) for axis in range(self.ndim)]  # (lower, upper)
        self._buffers = []
        for axis in range(self.ndim):
            slab = tuple(w if a == axis else n if a < axis else n - 2 * w
                         for a, (n, w) in enumerate(zip(padded_shape, self.widths, strict=True)))
            self._buffers.append([np.empty(slab, dtype=np.float64) for _ in range(2)])

    def _slab(self, u: np.ndarray, axis: int, start: int) -> np.ndarray:
        sl = [slice(None) if a < axis else slice(w, -w) for a, w in enumerate(self.widths)]
        sl[axis] = slice(start, start + self.widths[axis])
        return u[tuple(sl)]

    def exchange(self, u: np.ndarray) -> None:
        """Fill ``u``'s ghost layers from the neighbours; edges (PROC_NULL) stay untouched."""
        for axis in range(self.ndim):
            w = self.widths[axis]
            lower, upper = self.neighbours[axis]
            if lower == MPI.PROC_NULL and upper == MPI.PROC_NULL:
                continue  # an unsplit axis: nothing to send or receive
            send, recv = self._buffers[axis]
            n = u.shape[axis]
            # upward: my last interior layers go to upper, lower's arrive in my low ghosts
            # (packing for PROC_NULL would copy a slab, strided across rows, for nothing)
            if upper != MPI.PROC_NULL:
                np.copyto(send, self._slab(u, axis, n - 2 * w))
            self.cart.Sendrecv([send, MPI.DOUBLE], upper, _TAG, [recv, MPI.DOUBLE], lower, _TAG)
            if lower != MPI.PROC_NULL:
                self._slab(u, axis, 0)[...] = recv
            # downward: my first interior layers go to lower, upper's arrive in my high ghosts
            if lower != MPI.PROC_NULL:
                np.copyto(send, self._slab(u, axis, w))
            self.cart.Sendrecv([send, MPI.DOUBLE], lower, _TAG, [recv, MPI.DOUBLE], upper, _TAG)
            if upper != MPI.PROC_NULL:
                self._slab(u, axis, n - w)[...] = recv
