"""Atomic checkpoints of the whole field (one global .npy + meta.json per step directory).

Layout: ``<dir>/step-<step:010d>/{field.npy,meta.json}``. A checkpoint is written under
``<dir>/.tmp-step-...`` and renamed into place only when complete, so a reader never sees a
torn one. The field is stored in global layout, so a restart may use a different rank count.
``meta.json`` carries a seal over itself and the field file (``solver.seal``: HMAC-SHA256
under the job's key, else SHA-256), and its step, time and grid must agree with each other, the
directory name, the field file and the run: a restart skips a checkpoint that fails any of
these (edited, relabelled, corrupt, forged by another job, for another run, or non-finite),
with the reason, for the previous one. A write that fails (a full disk) leaves no temporary
and the previous checkpoints as they were.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from launcher import files
from solver import seal
from solver.config import SolverConfig, shown
from solver.decomp import Block
from solver.fieldio import WriteFailed, check_npy, on_rank0, read_field, write_field
from solver.output import log

FORMAT = 3  # 2: meta.json has "sha256"; 3: "seal" (keyed or plain)
KEEP = 2  # newest checkpoints kept; older ones are pruned after each write
_PREFIX = "step-"
_NAME = re.compile(r"step-([0-9]{10,})")  # the step, zero-padded to 10 digits
# meta.json fields a resume reads, with their types
_META_TYPES = {"format": int, "step": int, "t": float, "dt": float, "alpha": float,
               "grid": list, "ranks": int, "seal": str}


class InvalidCheckpoint(ValueError):
    """A checkpoint on disk that must not be resumed; the message says why."""


class CheckpointFailed(Exception):
    """A checkpoint could not be written (raised on every rank); the previous ones stand."""


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
         step: int, job_id: str, key: bytes | None) -> str:
    """Collectively write a checkpoint of ``u`` at ``step`` sealed under ``key``; returns its
    directory. CheckpointFailed on every rank, with nothing of it left, when it cannot."""
    root = Path(directory)
    final = root / f"{_PREFIX}{step:010d}"
    tmp = root / f".tmp-{_PREFIX}{step:010d}"

    def prepare() -> None:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()

    def publish() -> None:
        meta = {"format": FORMAT, "step": step, "t": step * cfg.time_step, "dt": cfg.time_step,
                "alpha": cfg.alpha, "grid": list(cfg.grid), "ranks": comm.Get_size(),
                "dims": list(block.dims), "total_steps": cfg.total_steps, "job_id": job_id,
                "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        meta["seal"], _ = seal.seal(meta, str(tmp / "field.npy"), key)
        with open(tmp / "meta.json", "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        # whatever else holds the name (a symlink, a file, an older try) gives way
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif os.path.lexists(final):
            final.unlink()
        os.rename(tmp, final)
        _fsync_dir(root)

    try:
        on_rank0(comm, str(tmp), prepare)
        write_field(comm, block, u, cfg.grid, str(tmp / "field.npy"))
        on_rank0(comm, str(tmp / "meta.json"), publish)
    except WriteFailed as exc:
        if comm.Get_rank() == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointFailed(f"the checkpoint at step {step} was not written: {exc}") from None
    if comm.Get_rank() == 0:
        _prune(root)
    return str(final)


def _prune(root: Path) -> None:
    steps = sorted((p for p in root.glob(f"{_PREFIX}*") if p.is_dir()), key=_order)
    for old in steps[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # a whole number of 400 digits
        return False


def _order(path: Path) -> tuple[int, str]:
    """Checkpoints by step (past step-9999999999 too), oddly named entries first."""
    named = _NAME.fullmatch(path.name)
    return (int(named.group(1)) if named else -1, path.name)


def _meta(cand: Path) -> dict[str, Any]:
    """The checked meta.json of a checkpoint directory, consistent with the directory name."""
    named = _NAME.fullmatch(cand.name)
    if not named:
        raise InvalidCheckpoint(f"the name is not {_PREFIX}<step as 10 or more digits>")
    try:
        meta = files.load_json(cand / "meta.json")
    except (OSError, ValueError) as exc:
        raise InvalidCheckpoint(f"meta.json unreadable ({exc})") from None
    if not isinstance(meta, dict):
        raise InvalidCheckpoint("meta.json is not a JSON object")
    missing = sorted(k for k in _META_TYPES if k not in meta)
    if missing:
        raise InvalidCheckpoint(f"meta.json lacks {', '.join(missing)}")
    for key, kind in _META_TYPES.items():
        value = meta[key]
        ok = (isinstance(value, (int, float)) and _finite(value) if kind is float
              else isinstance(value, kind)) and not isinstance(value, bool)
        if not ok:
            raise InvalidCheckpoint(f"meta.json {key}={shown(value)} is not a finite "
                                    f"{kind.__name__}")
    if meta["format"] != FORMAT:
        raise InvalidCheckpoint(f"format {meta['format']}, this solver reads {FORMAT}")
    if cand.name != f"{_PREFIX}{meta['step']:010d}":
        raise InvalidCheckpoint(f"meta.json says step {shown(meta['step'])}")
    grid = meta["grid"]
    if not (2 <= len(grid) <= 3 and all(isinstance(n, int) and not isinstance(n, bool)
                                        and n >= 3 for n in grid)):
        raise InvalidCheckpoint(f"meta.json grid {shown(grid)} is not a grid")
    return meta


def _consistent(meta: dict[str, Any]) -> None:
    """Step, time and time step must agree as the writer made them: t = step * dt."""
    if not (meta["dt"] > 0 and meta["alpha"] > 0 and meta["ranks"] >= 1):
        raise InvalidCheckpoint(f"meta.json dt={meta['dt']!r}, alpha={meta['alpha']!r}, "
                                f"ranks={meta['ranks']!r} must be positive")
    if meta["t"] != meta["step"] * meta["dt"]:
        raise InvalidCheckpoint(f"meta.json t={meta['t']!r} is not step x dt = "
                                f"{meta['step']} x {meta['dt']!r}")


def _compatible(meta: dict[str, Any], cfg: SolverConfig) -> None:
    """A checkpoint of another grid, dt or alpha, or past this run's end, is not this run's."""
    if tuple(meta["grid"]) != cfg.grid:
        raise InvalidCheckpoint(f"it is for grid {meta['grid']}, this run has {list(cfg.grid)}")
    if meta["dt"] != cfg.time_step or meta["alpha"] != cfg.alpha:
        raise InvalidCheckpoint(f"it has dt={meta['dt']!r} alpha={meta['alpha']!r}, this run "
                                f"has dt={cfg.time_step!r} alpha={cfg.alpha!r}")
    if meta["step"] > cfg.total_steps:
        raise InvalidCheckpoint(f"it is at step {meta['step']}, past this run's "
                                f"{cfg.total_steps} steps")


def verify(cand: Path, cfg: SolverConfig, keys: tuple[bytes | None, ...]) -> Found:
    """The checkpoint in ``cand`` if complete, sealed under one of ``keys``, consistent and
    this run's; InvalidCheckpoint saying why not."""
    meta = _meta(cand)
    field = str(cand / "field.npy")
    try:
        header = check_npy(field, tuple(meta["grid"]))
        finite = seal.check(meta, field, keys)
    except (OSError, ValueError) as exc:
        raise InvalidCheckpoint(str(exc)) from None
    if not finite:
        raise InvalidCheckpoint("the field holds NaN or infinite values")
    _consistent(meta)
    _compatible(meta, cfg)
    return Found(str(cand), meta["step"], header, meta)


def find_latest(directory: str, cfg: SolverConfig,
                keys: tuple[bytes | None, ...] = (None,)) -> Found | None:
    """Newest valid checkpoint for ``cfg`` in ``directory`` (rank 0 only; no MPI), or None.

    Invalid ones are skipped, each with a log line, falling back to the previous one.
    """
    root = Path(directory)
    if not root.is_dir():
        return None
    for cand in sorted(root.glob(f"{_PREFIX}*"), key=_order, reverse=True):
        try:
            return verify(cand, cfg, keys)
        except InvalidCheckpoint as exc:
            log(f"skipped checkpoint {cand}: {exc}")
    return None


def restart_dir(path: str) -> str:
    """Checkpoint directory of a job directory given to --restart-from (or the dir itself)."""
    sub = Path(path) / "checkpoints"
    return str(sub) if sub.is_dir() else path


def load(comm: MPI.Comm, block: Block, u: np.ndarray, cfg: SolverConfig, found: Found) -> None:
    """Collectively read a checkpoint's field into ``u`` (interior and edge boundary layers)."""
    read_field(comm, block, u, cfg.grid, os.path.join(found.path, "field.npy"), found.header)
