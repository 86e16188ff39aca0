"""Ghost-layer exchange with the Cartesian neighbours (uppercase Sendrecv, PROC_NULL at edges)."""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

_TAG = 7


class Halo:
    """Preallocated contiguous send/receive buffers for one local array shape."""

    def __init__(self, cart: MPI.Cartcomm, padded_shape: tuple[int, ...]) -> None:
        self.cart = cart
        self.ndim = len(padded_shape)
        self.neighbours = [cart.Shift(axis, 1) for axis in range(self.ndim)]  # (lower, upper)
        self._buffers = []
        for axis in range(self.ndim):
            face = tuple(n - 2 for a, n in enumerate(padded_shape) if a != axis)
            self._buffers.append([np.empty(face, dtype=np.float64) for _ in range(2)])

    def _face(self, u: np.ndarray, axis: int, index: int) -> np.ndarray:
        sl = [slice(1, -1)] * self.ndim
        sl[axis] = index
        return u[tuple(sl)]

    def exchange(self, u: np.ndarray) -> None:
        """Fill ``u``'s ghost faces from the neighbours; edges (PROC_NULL) stay untouched."""
        for axis in range(self.ndim):
            lower, upper = self.neighbours[axis]
            send, recv = self._buffers[axis]
            n = u.shape[axis]
            # upward: my last interior layer goes to upper, lower's arrives in my ghost 0
            np.copyto(send, self._face(u, axis, n - 2))
            self.cart.Sendrecv([send, MPI.DOUBLE], upper, _TAG, [recv, MPI.DOUBLE], lower, _TAG)
            if lower != MPI.PROC_NULL:
                self._face(u, axis, 0)[...] = recv
            # downward: my first interior layer goes to lower, upper's arrives in ghost n-1
            np.copyto(send, self._face(u, axis, 1))
            self.cart.Sendrecv([send, MPI.DOUBLE], lower, _TAG, [recv, MPI.DOUBLE], upper, _TAG)
            if upper != MPI.PROC_NULL:
                self._face(u, axis, n - 1)[...] = recv
