"""The ``heat`` command: set up, time-step with halo exchange, checkpoint, write results."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mpi4py import MPI

from launcher import contract
from solver import checkpoint, memory, output, seal, stencil, timeloop
from solver.config import SolverConfig, UsageError, parse_heat_args
from solver.decomp import Block, decompose
from solver.fieldio import WriteFailed, write_field
from solver.output import log
from solver.timeloop import Hooks, Stepper, StopRequest

EXIT_USAGE = 2
EXIT_STOPPED = 143


@dataclass(frozen=True)
class Plan:
    """Decisions rank 0 makes from the file system, shared with every rank."""

    job_id: str
    out_dir: str
    ckpt_dir: str
    resume: checkpoint.Found | None
    key: bytes | None  # seals this job's checkpoints (MNP_CHECKPOINT_KEY)


def _plan(cfg: SolverConfig, environ: dict[str, str]) -> Plan:
    """Rank 0: job id, output/checkpoint dirs, and which checkpoint (if any) to resume."""
    jid = output.job_id(environ)
    attempt = output.attempt(environ)
    output.check_writable(cfg.output_path, "output path")
    out_dir = os.path.abspath(os.path.join(cfg.output_path, jid))
    output.check_writable(out_dir, "job output directory")
    output.check_fresh(out_dir, attempt)
    ckpt_dir = os.path.abspath(cfg.checkpoint_dir or os.path.join(out_dir, "checkpoints"))
    output.check_writable(ckpt_dir, "checkpoint dir")
    keys = seal.keys_from_env(environ)
    if keys.own is None:
        log(f"warning: {contract.CHECKPOINT_KEY_ENV} is not set: checkpoints are sealed with a "
            "plain SHA-256, which catches corruption but not a job that rewrites them")
    found = checkpoint.find_latest(ckpt_dir, cfg, (keys.own,))
    if found is None and attempt > 1:
        log(f"attempt {attempt} but no checkpoint in {ckpt_dir}")
    if found is None and cfg.restart_from:
        source = checkpoint.restart_dir(cfg.restart_from)
        found = checkpoint.find_latest(source, cfg, keys.for_restart())
        if found is None and os.path.abspath(source) == ckpt_dir:
            # A run's continuation resumes from the run's own directory (continuation/
            # README.md): empty, no member reached a checkpoint, so the run starts over.
            log(f"restart-from {cfg.restart_from}: this job's own checkpoint dir holds no "
                "checkpoint yet; starting from step 0")
        elif found is None:
            raise UsageError(f"restart-from {cfg.restart_from}: no valid checkpoint "
                             "there (for this run)")
    return Plan(jid, out_dir, ckpt_dir, found, keys.own)


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
    # A diverged field overflows here; the run then refuses its non-finite errors itself.
    with np.errstate(over="ignore", invalid="ignore"):
        local = np.array([np.sum(diff * diff), np.max(np.abs(diff), initial=0.0)])
    total = np.empty(1)
    comm.Allreduce(local[:1], total, op=MPI.SUM)
    biggest = np.empty(1)
    comm.Allreduce(local[1:], biggest, op=MPI.MAX)
    return math.sqrt(total[0] * math.prod(cfg.spacing)), float(biggest[0])


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


def _initial_field(cart: MPI.Cartcomm, block: Block, cfg: SolverConfig,
                   plan: Plan) -> tuple[np.ndarray, int]:
    """(this rank's time-stepping field, its step): the sine start or the checkpoint to
    resume."""
    u = np.zeros(block.compute_shape)
    if plan.resume is None:
        u[block.interior] = stencil.sine_product(_local_axes(cfg, block))
        return u, 0
    field = np.zeros(block.padded_shape)
    checkpoint.load(cart, block, field, cfg, plan.resume)
    u[block.io_view] = field
    if cart.Get_rank() == 0:
        log(f"resumed from {plan.resume.path} (step {plan.resume.step}, "
            f"written by {plan.resume.meta['ranks']} ranks)")
    return u, plan.resume.step


def _previous(ckpt_dir: str) -> str:
    """What is left to resume from, for a failure message."""
    steps = sorted(Path(ckpt_dir).glob("step-*"))
    if not steps:
        return "no earlier checkpoint to resume from"
    return (f"the checkpoint {steps[-1]} is as it was: free space, then resubmit with "
            f"--restart-from {ckpt_dir}")


def _solve(cart: MPI.Cartcomm, block: Block, cfg: SolverConfig, plan: Plan) -> int:
    rank0 = cart.Get_rank() == 0
    stop = StopRequest(cart)  # before the slow setup, so an early SIGTERM is honoured too
    if rank0:
        Path(plan.out_dir).mkdir(parents=True, exist_ok=True)
        log(f"job {plan.job_id}: grid {'x'.join(map(str, cfg.grid))}, {cart.Get_size()} ranks "
            f"as {'x'.join(map(str, block.dims))}, "
            f"{cfg.total_steps} steps of dt={cfg.time_step:.6g}")
    nodes = len(set(cart.allgather(MPI.Get_processor_name())))
    u, start = _initial_field(cart, block, cfg, plan)
    stepper = Stepper(cart, block, u, stencil.coefficients(cfg.alpha, cfg.time_step,
                                                           cfg.spacing))
    total = cfg.total_steps

    def save(step: int) -> None:
        checkpoint.save(cart, block, stepper.field(), cfg, plan.ckpt_dir, step, plan.job_id,
                        plan.key)

    def progress(step: int) -> None:
        if rank0:
            log(f"step {step}/{total}")

    hooks = Hooks(cfg.checkpoint_every, cfg.log_every, save, progress, stop)
    cart.Barrier()
    began = time.perf_counter()
    try:
        step, stopped = timeloop.run(stepper, start, total, hooks)
    except checkpoint.CheckpointFailed as exc:
        stop.close()
        if rank0:
            log(f"error: {exc}; {_previous(plan.ckpt_dir)}")
        return contract.APPLICATION_ERROR
    if stopped:
        if rank0:
            log(f"stop requested: checkpoint at step {step} in {plan.ckpt_dir}, exiting 143")
        return EXIT_STOPPED
    cart.Barrier()
    seconds = time.perf_counter() - began
    field_path = Path(plan.out_dir) / "field.npy"
    u = stepper.field()
    try:
        write_field(cart, block, u, cfg.grid, str(field_path))
    except WriteFailed as exc:
        if rank0:
            log(f"error: the results were not written: {exc}; {_previous(plan.ckpt_dir)}")
        return contract.APPLICATION_ERROR
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
    try:
        output.write_json(Path(plan.out_dir) / "summary.json", summary)
        if cfg.png:
            output.write_png(field_path, Path(plan.out_dir) / "field.png",
                             f"u at t={t:.4g} ({'x'.join(map(str, cfg.grid))})")
    except OSError as exc:
        log(f"error: the results were not all written ({exc}); field.npy is complete")
        return contract.APPLICATION_ERROR
    log(f"done: {done} steps in {seconds:.3f} s, l2_error={l2:.3e}, results in {plan.out_dir}")
    print(json.dumps(summary, allow_nan=False), flush=True)
    return 0
