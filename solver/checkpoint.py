"""Atomic checkpoints of the whole field (one global .npy + meta.json per step directory).

Layout: ``<dir>/step-<step:010d>/{field.npy,meta.json}``. A checkpoint is written under
``<dir>/.tmp-step-...`` and renamed into place only when complete, so a reader never sees a
torn one. The field is stored in global layout, so a restart may use a different rank count.
``meta.json`` carries a SHA-256 over itself and the field file: a restart skips a checkpoint
that was edited, relabelled or corrupted (or holds non-finite values) for the previous one.
"""

from __future__ import annotations

import hashlib
import json
import math
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
from solver.output import log

FORMAT = 2  # 2: meta.json has "sha256"
KEEP = 2  # newest checkpoints kept; older ones are pruned after each write
_PREFIX = "step-"
_CHUNK = 8 << 20  # bytes per read while hashing (a multiple of 8: whole float64 values)
# meta.json fields a resume reads, with their types
_META_TYPES = {"format": int, "step": int, "t": float, "dt": float, "alpha": float,
               "grid": list, "ranks": int, "sha256": str}


class InvalidCheckpoint(ValueError):
    """A checkpoint on disk that must not be resumed; the message says why."""


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
        meta["sha256"], _ = field_digest(meta, str(tmp / "field.npy"))
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


def field_digest(meta: dict[str, Any], field_path: str) -> tuple[str, bool]:
    """(SHA-256 of ``meta`` without its "sha256" and of the field file, all values finite?)."""
    body = {k: v for k, v in meta.items() if k != "sha256"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode())
    finite = True
    with open(field_path, "rb") as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        header = f.tell()
        f.seek(0)
        digest.update(f.read(header))
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            values = np.frombuffer(chunk, dtype="<f8", count=len(chunk) // 8)
            finite = finite and bool(np.isfinite(values).all())
    return digest.hexdigest(), finite


def _meta(cand: Path) -> dict[str, Any]:
    """The checked meta.json of a checkpoint directory."""
    try:
        meta = json.loads((cand / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise InvalidCheckpoint(f"meta.json unreadable ({exc})") from None
    if not isinstance(meta, dict):
        raise InvalidCheckpoint("meta.json is not a JSON object")
    missing = sorted(k for k in _META_TYPES if k not in meta)
    if missing:
        raise InvalidCheckpoint(f"meta.json lacks {', '.join(missing)}")
    for key, kind in _META_TYPES.items():
        value = meta[key]
        ok = (isinstance(value, (int, float)) and math.isfinite(value) if kind is float
              else isinstance(value, kind)) and not isinstance(value, bool)
        if not ok:
            raise InvalidCheckpoint(f"meta.json {key}={value!r} is not a finite {kind.__name__}")
    if meta["format"] != FORMAT:
        raise InvalidCheckpoint(f"format {meta['format']}, this solver reads {FORMAT}")
    if cand.name != f"{_PREFIX}{meta['step']:010d}":
        raise InvalidCheckpoint(f"meta.json says step {meta['step']}")
    if not meta["grid"] or not all(isinstance(n, int) and n >= 3 for n in meta["grid"]):
        raise InvalidCheckpoint(f"meta.json grid {meta['grid']!r} is not a grid")
    return meta


def verify(cand: Path) -> Found:
    """The checkpoint in ``cand`` if complete and intact; InvalidCheckpoint saying why not."""
    meta = _meta(cand)
    field = str(cand / "field.npy")
    try:
        header = check_npy(field, tuple(meta["grid"]))
        digest, finite = field_digest(meta, field)
    except (OSError, ValueError) as exc:
        raise InvalidCheckpoint(str(exc)) from None
    if digest != meta["sha256"]:
        raise InvalidCheckpoint("checksum mismatch: field.npy or meta.json changed after "
                                "it was written")
    if not finite:
        raise InvalidCheckpoint("the field holds NaN or infinite values")
    return Found(str(cand), meta["step"], header, meta)


def find_latest(directory: str, cfg: SolverConfig) -> Found | None:
    """Newest valid checkpoint in ``directory`` (rank 0 only; no MPI), or None.

    Invalid ones are skipped, each with a log line, falling back to the previous one.
    """
    root = Path(directory)
    if not root.is_dir():
        return None
    for cand in sorted(root.glob(f"{_PREFIX}*"), reverse=True):
        try:
            return verify(cand)
        except InvalidCheckpoint as exc:
            log(f"skipped checkpoint {cand}: {exc}")
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
