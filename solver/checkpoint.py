"""Atomic checkpoints of the whole field (one global .npy + meta.json per step directory).

Layout: ``<dir>/step-<step:010d>/{field.npy,meta.json}``. A checkpoint is written under
``<dir>/.tmp-step-...`` and renamed into place only when complete, so a reader never sees a
torn one. The field is stored in global layout, so a restart may use a different rank count.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from solver.config import SolverConfig, UsageError
from solver.decomp import Block
from solver.fieldio import check_npy, read_field, write_field

FORMAT = 1
KEEP = 2  # newest checkpoints kept; older ones are pruned after each write
_PREFIX = "step-"


@dataclass(frozen=True)
class Found:
    """A valid checkpoint on disk."""

    path: str
    step: int
    header: int  # .npy header length, for the collective read
    meta: dict[str, Any]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(comm: MPI.Comm, block: Block, u: np.ndarray, cfg: SolverConfig, directory: str,
         step: int, job_id: str) -> str:
    """Collectively write a checkpoint of ``u`` at ``step``; returns its directory."""
    root = Path(directory)
    final = root / f"{_PREFIX}{step:010d}"
    tmp = root / f".tmp-{_PREFIX}{step:010d}"
    if comm.Get_rank() == 0:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    comm.Barrier()
    write_field(comm, block, u, cfg.grid, str(tmp / "field.npy"))
    if comm.Get_rank() == 0:
        meta = {"format": FORMAT, "step": step, "t": step * cfg.time_step, "dt": cfg.time_step,
                "alpha": cfg.alpha, "grid": list(cfg.grid), "ranks": comm.Get_size(),
                "dims": list(block.dims), "total_steps": cfg.total_steps, "job_id": job_id,
                "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with open(tmp / "meta.json", "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(root)
        _prune(root)
    comm.Barrier()
    return str(final)


def _prune(root: Path) -> None:
    steps = sorted(p for p in root.glob(f"{_PREFIX}*") if p.is_dir())
    for old in steps[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)


def find_latest(directory: str, cfg: SolverConfig) -> Found | None:
    """Newest complete checkpoint in ``directory`` (rank 0 only; no MPI), or None."""
    root = Path(directory)
    if not root.is_dir():
        return None
    for cand in sorted(root.glob(f"{_PREFIX}*"), reverse=True):
        try:
            meta = json.loads((cand / "meta.json").read_text())
            step = int(meta["step"])
            if meta.get("format") != FORMAT or cand.name != f"{_PREFIX}{step:010d}":
                continue
            header = check_npy(str(cand / "field.npy"), tuple(meta["grid"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # torn or foreign: fall back to an older one
        return Found(str(cand), step, header, meta)
    return None


def check_compatible(found: Found, cfg: SolverConfig) -> None:
    """Refuse to resume a checkpoint written for another grid, dt, alpha or a later step."""
    meta = found.meta
    if tuple(meta["grid"]) != cfg.grid:
        raise UsageError(f"checkpoint {found.path} is for grid {meta['grid']}, "
                         f"this run has {list(cfg.grid)}")
    if meta["dt"] != cfg.time_step or meta["alpha"] != cfg.alpha:
        raise UsageError(f"checkpoint {found.path} has dt={meta['dt']!r} alpha={meta['alpha']!r}, "
                         f"this run has dt={cfg.time_step!r} alpha={cfg.alpha!r}")
    if found.step > cfg.total_steps:
        raise UsageError(f"checkpoint {found.path} is at step {found.step}, "
                         f"past this run's {cfg.total_steps} steps")


def restart_dir(path: str) -> str:
    """Checkpoint directory of a job directory given to --restart-from (or the dir itself)."""
    sub = Path(path) / "checkpoints"
    return str(sub) if sub.is_dir() else path


def load(comm: MPI.Comm, block: Block, u: np.ndarray, cfg: SolverConfig, found: Found) -> None:
    """Collectively read a checkpoint's field into ``u`` (interior and edge boundary layers)."""
    read_field(comm, block, u, cfg.grid, os.path.join(found.path, "field.npy"), found.header)
