"""The time loop the solver and the benchmarks share: halo exchange, fused sweep, swap, hooks.

``heat`` runs it with its checkpoint, progress-line and stop hooks; ``bench.haloprobe`` runs
the same loop with per-phase timers. Nothing per step allocates: both arrays, the halo
buffers, the sweep's rolling buffers and the I/O copy are made once.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from mpi4py import MPI

from solver import stencil
from solver.decomp import Block
from solver.halo import Halo


class StopRequest:
    """SIGTERM/SIGUSR1 on any rank stops all ranks at the same step boundary.

    Each poll completes the previous step's non-blocking MAX-reduction of the local flags
    and starts the next one, so the agreement costs no extra latency per step.
    (mpiexec kills ranks on SIGTERM but forwards SIGUSR1, so a launcher relays with SIGUSR1.)
    """

    def __init__(self, comm: MPI.Comm) -> None:
        self.comm = comm
        self.local = np.zeros(1, dtype=np.int32)
        self.send = np.zeros(1, dtype=np.int32)
        self.recv = np.zeros(1, dtype=np.int32)
        self.request: MPI.Request | None = None
        # Kept for the rest of the process: a second SIGTERM while the checkpoint or the
        # results are being written must not kill this rank and leave its peers hanging.
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handler)

    def _handler(self, signum: int, frame: object) -> None:
        self.local[0] = 1

    def poll(self) -> bool:
        """True on every rank once any rank had been signalled one poll earlier."""
        stop = False
        if self.request is not None:
            self.request.Wait()
            stop = bool(self.recv[0])
        self.send[0] = self.local[0]
        self.request = self.comm.Iallreduce(self.send, self.recv, op=MPI.MAX)
        return stop

    def close(self) -> None:
        """Complete the outstanding reduction."""
        if self.request is not None:
            self.request.Wait()
            self.request = None


@dataclass
class PhaseTimes:
    """Seconds per phase, for benchmarks: waiting at a barrier before each exchange (the
    ranks' imbalance), the exchange itself, and the fused update."""

    wait: float = 0.0
    exchange: float = 0.0
    update: float = 0.0


class Stepper:
    """One rank's time-stepping state: the field ``u`` (``block.compute_shape``, filled in
    by the caller) and everything a sweep needs, allocated once."""

    def __init__(self, cart: MPI.Cartcomm, block: Block, u: np.ndarray,
                 coeffs: tuple[float, ...]) -> None:
        self.cart = cart
        self.ghost = block.ghost  # steps per exchange
        self.ghosts = block.ghosts
        self.io_view = block.io_view
        self.coeffs = coeffs
        self.u = u
        # A copy, not zeros: its pages are faulted in here rather than in the first timed
        # sweep, and its fixed boundary layers equal u's (on a restart too).
        self.nxt = u.copy()
        self.halo = Halo(cart, u.shape, self.ghosts)
        # open sides (a neighbour rank) get the fused kernel's redundant intermediate layers
        self.sides = tuple((lo != MPI.PROC_NULL, hi != MPI.PROC_NULL)
                           for lo, hi in self.halo.neighbours)
        self.bufs = stencil.sweep_buffer(u.shape, self.ghost)
        self.phases: PhaseTimes | None = None
        self._io: np.ndarray | None = None
        self.field()  # the I/O buffer's pages too are faulted in here, not in a checkpoint
        stencil.warm_up(u.ndim)

    def advance(self, taken: int) -> None:
        """One exchange of ``ghost`` layers, then ``taken`` (<= ghost) steps in one sweep."""
        if self.phases is None:
            self.halo.exchange(self.u)
            stencil.sweep(self.u, self.nxt, self.bufs, self.coeffs, taken, self.ghosts,
                          self.sides)
        else:
            self._advance_timed(taken, self.phases)
        self.u, self.nxt = self.nxt, self.u

    def _advance_timed(self, taken: int, phases: PhaseTimes) -> None:
        t0 = time.perf_counter()
        self.cart.Barrier()  # separates waiting for a slower neighbour from the exchange
        t1 = time.perf_counter()
        self.halo.exchange(self.u)
        t2 = time.perf_counter()
        stencil.sweep(self.u, self.nxt, self.bufs, self.coeffs, taken, self.ghosts,
                      self.sides)
        phases.update += time.perf_counter() - t2
        phases.exchange += t2 - t1
        phases.wait += t1 - t0

    def field(self) -> np.ndarray:
        """``u`` with one ghost layer per side, contiguous, as field I/O and the error norm
        take it: ``u`` itself where every axis has one (one rank), else a copy into one
        reused buffer."""
        if all(g == 1 for g in self.ghosts):
            return self.u
        view = self.u[self.io_view]
        if self._io is None:
            self._io = np.empty(view.shape)
        np.copyto(self._io, view)
        return self._io


@dataclass(frozen=True)
class Hooks:
    """What a run does between sweeps: ``save(step)`` every ``checkpoint_every`` steps before
    the end, ``log(step)`` every ``log_every`` steps (0 = never), and stop when ``stop`` says."""

    checkpoint_every: int = 0
    log_every: int = 0
    save: Callable[[int], None] | None = None
    log: Callable[[int], None] | None = None
    stop: StopRequest | None = None


def next_boundary(step: int, total: int, hooks: Hooks) -> int:
    """The next step at which the field must be complete: a checkpoint, a log line, the end."""
    boundary = total
    for every in (hooks.checkpoint_every, hooks.log_every):
        if every:
            boundary = min(boundary, (step // every + 1) * every)
    return boundary


def run(stepper: Stepper, start: int, total: int, hooks: Hooks = Hooks()) -> tuple[int, bool]:
    """Advance from step ``start`` to ``total``: (step reached, True if stopped by request).

    A stopped run has a checkpoint of the step it reached (saved by ``hooks.save``).
    """
    step = start
    while step < total:
        taken = min(stepper.ghost, next_boundary(step, total, hooks) - step)
        stepper.advance(taken)
        step += taken
        saved = False
        if hooks.checkpoint_every and step % hooks.checkpoint_every == 0 and step < total:
            hooks.save(step)
            saved = True
        if hooks.log_every and step % hooks.log_every == 0 and hooks.log is not None:
            hooks.log(step)
        if hooks.stop is not None and hooks.stop.poll() and step < total:
            hooks.stop.close()
            if not saved:
                hooks.save(step)
            return step, True
    if hooks.stop is not None:
        hooks.stop.close()
    return step, False
