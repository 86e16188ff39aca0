"""The ``heat`` command: set up, time-step with halo exchange, checkpoint, write results."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mpi4py import MPI

from solver import checkpoint, memory, output, stencil
from solver.config import SolverConfig, UsageError, parse_heat_args
from solver.decomp import Block, decompose
from solver.fieldio import write_field
from solver.halo import Halo
from solver.output import log

EXIT_USAGE = 2
EXIT_STOPPED = 143


@dataclass(frozen=True)
class Plan:
    """Decisions rank 0 makes from the file system, shared with every rank."""

    job_id: str
    out_dir: str
    ckpt_dir: str
    resume: checkpoint.Found | None


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


def _plan(cfg: SolverConfig, environ: dict[str, str]) -> Plan:
    """Rank 0: job id, output/checkpoint dirs, and which checkpoint (if any) to resume."""
    jid = output.job_id(environ)
    output.check_writable(cfg.output_path, "output path")
    out_dir = os.path.abspath(os.path.join(cfg.output_path, jid))
    ckpt_dir = os.path.abspath(cfg.checkpoint_dir or os.path.join(out_dir, "checkpoints"))
    output.check_writable(ckpt_dir, "checkpoint dir")
    found = checkpoint.find_latest(ckpt_dir, cfg)
    attempt = environ.get("AWS_BATCH_JOB_ATTEMPT", "1")
    if found is None and attempt not in ("", "1"):
        log(f"attempt {attempt!r} but no checkpoint in {ckpt_dir}")
    if found is None and cfg.restart_from:
        source = checkpoint.restart_dir(cfg.restart_from)
        found = checkpoint.find_latest(source, cfg)
        if found is None:
            raise UsageError(f"restart-from {cfg.restart_from}: no valid checkpoint there")
    if found is not None:
        checkpoint.check_compatible(found, cfg)
    return Plan(jid, out_dir, ckpt_dir, found)


def _local_axes(cfg: SolverConfig, block: Block) -> tuple[np.ndarray, ...]:
    """This block's slices of the per-axis sine profiles (whole-axis computed, see axis_sine)."""
    return tuple(stencil.axis_sine(n)[1 + o: 1 + o + c]
                 for n, o, c in zip(cfg.grid, block.offset, block.count, strict=True))


def _errors(comm: MPI.Comm, cfg: SolverConfig, block: Block, u: np.ndarray,
            t: float) -> tuple[float, float]:
    """(discrete L2 error, max error) against the analytic solution, all ranks."""
    amplitude = stencil.decay(len(cfg.grid), cfg.alpha, t)
    exact = amplitude * stencil.sine_product(_local_axes(cfg, block))
    diff = u[(slice(1, -1),) * u.ndim] - exact
    local = np.array([np.sum(diff * diff), np.max(np.abs(diff), initial=0.0)])
    total = np.empty(1)
    comm.Allreduce(local[:1], total, op=MPI.SUM)
    biggest = np.empty(1)
    comm.Allreduce(local[1:], biggest, op=MPI.MAX)
    return math.sqrt(total[0] * math.prod(cfg.spacing)), float(biggest[0])


def _next_boundary(step: int, total: int, cfg: SolverConfig) -> int:
    """The next step at which the field must be complete: a checkpoint, a log line, the end."""
    boundary = total
    for every in (cfg.checkpoint_every, cfg.log_every):
        if every:
            boundary = min(boundary, (step // every + 1) * every)
    return boundary


def _io_layout(u: np.ndarray, ghost: int) -> np.ndarray:
    """``u`` with one ghost layer per side, contiguous, as field I/O and the error norm take it."""
    if ghost == 1:
        return u
    return np.ascontiguousarray(u[(slice(ghost - 1, 1 - ghost),) * u.ndim])


def run(comm: MPI.Comm, argv: list[str], environ: dict[str, str]) -> int:
    """Run the heat solver on ``comm``; returns the process exit code."""
    rank0 = comm.Get_rank() == 0
    setup: tuple[SolverConfig | None, Plan | None, str | None] = (None, None, None)
    if rank0:
        try:
            cfg = parse_heat_args(argv, environ)
            setup = (cfg, _plan(cfg, environ), None)
        except UsageError as exc:
            setup = (None, None, str(exc))
        except SystemExit as exc:  # --help
            setup = (None, None, f"exit:{exc.code or 0}")
    cfg, plan, error = comm.bcast(setup, root=0)
    if error is not None:
        if error.startswith("exit:"):
            return int(error[5:])
        if rank0:
            log(f"error: {error}")
        return EXIT_USAGE
    try:
        cart, block = decompose(comm, cfg.grid)
    except UsageError as exc:
        if rank0:
            log(f"error: {exc}")
        return EXIT_USAGE
    # before the output directory or any array exists, so a grid too big leaves nothing behind
    short = memory.check_fits(cart, block, cfg.grid, plan.resume is not None)
    if short is not None:
        if rank0:
            log(f"error: {short}")
        return EXIT_USAGE
    return _solve(cart, block, cfg, plan)


def _solve(cart: MPI.Cartcomm, block: Block, cfg: SolverConfig, plan: Plan) -> int:
    rank0 = cart.Get_rank() == 0
    stop = StopRequest(cart)  # before the slow setup, so an early SIGTERM is honoured too
    if rank0:
        Path(plan.out_dir).mkdir(parents=True, exist_ok=True)
        log(f"job {plan.job_id}: grid {'x'.join(map(str, cfg.grid))}, {cart.Get_size()} ranks "
            f"as {'x'.join(map(str, block.dims))}, "
            f"{cfg.total_steps} steps of dt={cfg.time_step:.6g}")
    nodes = len(set(cart.allgather(MPI.Get_processor_name())))
    g = block.ghost
    u = np.zeros(block.compute_shape)
    nxt = np.zeros(block.compute_shape)
    start = 0
    if plan.resume is not None:
        field = np.zeros(block.padded_shape)
        checkpoint.load(cart, block, field, cfg, plan.resume)
        u[(slice(g - 1, 1 - g or None),) * u.ndim] = field
        start = plan.resume.step
        if rank0:
            log(f"resumed from {plan.resume.path} (step {start}, "
                f"written by {plan.resume.meta['ranks']} ranks)")
    else:
        u[(slice(g, -g),) * u.ndim] = stencil.sine_product(_local_axes(cfg, block))
    coeffs = stencil.coefficients(cfg.alpha, cfg.time_step, cfg.spacing)
    halo = Halo(cart, block.compute_shape, g)
    # open sides (a neighbour rank) get the fused kernel's redundant intermediate layers
    sides = tuple((lo != MPI.PROC_NULL, hi != MPI.PROC_NULL) for lo, hi in halo.neighbours)
    bufs = stencil.sweep_buffer(block.compute_shape, g)
    stencil.warm_up(u.ndim)
    total = cfg.total_steps
    cart.Barrier()
    began = time.perf_counter()
    step = start
    while step < total:
        # one exchange of g layers, then up to g steps fused, ending on checkpoint/log steps
        taken = min(g, _next_boundary(step, total, cfg) - step)
        halo.exchange(u)
        stencil.sweep(u, nxt, bufs, coeffs, taken, g, sides)
        u, nxt = nxt, u
        step += taken
        saved = False
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total:
            checkpoint.save(cart, block, _io_layout(u, g), cfg, plan.ckpt_dir, step, plan.job_id)
            saved = True
        if cfg.log_every and step % cfg.log_every == 0 and rank0:
            log(f"step {step}/{total}")
        if stop.poll() and step < total:
            stop.close()
            if not saved:
                checkpoint.save(cart, block, _io_layout(u, g), cfg, plan.ckpt_dir, step,
                                plan.job_id)
            if rank0:
                log(f"stop requested: checkpoint at step {step} in {plan.ckpt_dir}, exiting 143")
            return EXIT_STOPPED
    stop.close()
    cart.Barrier()
    seconds = time.perf_counter() - began
    field_path = Path(plan.out_dir) / "field.npy"
    u = _io_layout(u, g)
    write_field(cart, block, u, cfg.grid, str(field_path))
    t = total * cfg.time_step
    l2, emax = _errors(cart, cfg, block, u, t)
    if not rank0:
        return 0
    if not all(math.isfinite(v) for v in (l2, emax)):
        # only a corrupt start can do this (dt is stable, checkpoints are verified)
        log(f"error: the field is not finite at step {total} (l2_error={l2}, max_error={emax}); "
            "no summary written")
        return 1
    done = total - start
    summary = {
        "ranks": cart.Get_size(), "dims": list(block.dims), "nodes": nodes,
        "grid": list(cfg.grid), "steps": total, "t": t, "dt": cfg.time_step, "alpha": cfg.alpha,
        "l2_error": l2, "max_error": emax, "seconds": round(seconds, 6),
        "mlups": round(math.prod(n - 2 for n in cfg.grid) * done / seconds / 1e6, 3)
        if seconds > 0 and done else 0.0,
        "restarted_from_step": plan.resume.step if plan.resume else None,
        "job_id": plan.job_id, "output": plan.out_dir,
    }
    output.write_json(Path(plan.out_dir) / "summary.json", summary)
    if cfg.png:
        output.write_png(field_path, Path(plan.out_dir) / "field.png",
                         f"u at t={t:.4g} ({'x'.join(map(str, cfg.grid))})")
    log(f"done: {done} steps in {seconds:.3f} s, l2_error={l2:.3e}, results in {plan.out_dir}")
    print(json.dumps(summary, allow_nan=False), flush=True)
    return 0
