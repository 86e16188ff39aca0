"""Collective MPI-IO of the global field as one ``.npy`` file (readable by ``numpy.load``)."""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
from collections.abc import Callable

import numpy as np
from mpi4py import MPI

from launcher.files import open_regular
from solver.decomp import Block


class WriteFailed(Exception):
    """Writing failed on some rank (a full disk, say); raised on every rank alike."""


def agree(comm: MPI.Comm, error: str | None) -> None:
    """Collective: WriteFailed on every rank, with the first rank's message, if any failed."""
    errors = [e for e in comm.allgather(error) if e]
    if errors:
        raise WriteFailed(errors[0])


def failure(path: str, exc: BaseException) -> str:
    """What went wrong writing ``path``, with the free space left (MPI says only ERR_OTHER)."""
    try:
        left = shutil.disk_usage(os.path.dirname(path) or ".").free
        free = f"; {left} bytes free there" + (": the file system is full" if not left else "")
    except OSError:
        free = ""
    return f"writing {path} failed ({str(exc).strip() or type(exc).__name__}){free}"


def on_rank0(comm: MPI.Comm, path: str, action: Callable[[], None]) -> None:
    """Collective: rank 0 runs ``action`` (which writes ``path``); WriteFailed everywhere if
    it raised OSError."""
    error = None
    if comm.Get_rank() == 0:
        try:
            action()
        except OSError as exc:
            error = failure(path, exc)
    agree(comm, error)


def npy_header(shape: tuple[int, ...]) -> bytes:
    """The .npy v1.0 header for a C-ordered float64 array of ``shape``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _types(block: Block, grid: tuple[int, ...]) -> tuple[MPI.Datatype, MPI.Datatype]:
    """(memory, file) subarray types; blocks on a global edge include the zero boundary layer."""
    sub, mem_start, file_start = [], [], []
    for axis in range(len(grid)):
        lo = block.coords[axis] == 0
        hi = block.coords[axis] == block.dims[axis] - 1
        sub.append(block.count[axis] + int(lo) + int(hi))
        mem_start.append(0 if lo else 1)
        file_start.append(block.offset[axis] + (0 if lo else 1))
    padded = list(block.padded_shape)
    mem = MPI.DOUBLE.Create_subarray(padded, sub, mem_start).Commit()
    fil = MPI.DOUBLE.Create_subarray(list(grid), sub, file_start).Commit()
    return mem, fil


def write_field(comm: MPI.Comm, block: Block, u: np.ndarray, grid: tuple[int, ...],
                path: str) -> None:
    """Write the global field to ``path``: collective write to a temp name, then rename.

    A failure on any rank (a full disk) raises WriteFailed on every rank with no temp file
    left behind and ``path`` as it was.
    """
    tmp = f"{path}.tmp"
    header = npy_header(grid)
    mem, fil = _types(block, grid)
    fh: MPI.File | None = None

    def attempt(action: Callable[[], object]) -> None:
        # each collective call is agreed on before the next: a rank that failed must not
        # skip a collective call the others are waiting in
        error = None
        try:
            action()
        except (MPI.Exception, OSError) as exc:
            error = failure(tmp, exc)
        agree(comm, error)

    error = None
    try:
        fh = MPI.File.Open(comm, tmp, MPI.MODE_WRONLY | MPI.MODE_CREATE)
    except MPI.Exception as exc:
        error = failure(tmp, exc)
    try:
        agree(comm, error)
        # a leftover temp file from a killed run may be longer; make the size exact
        attempt(lambda: fh.Set_size(len(header) + 8 * math.prod(grid)))
        attempt(lambda: comm.Get_rank() == 0 and fh.Write_at(0, header))
        attempt(lambda: (fh.Set_view(len(header), MPI.DOUBLE, fil),
                         fh.Write_all([u, 1, mem])))
        attempt(fh.Sync)
        if fh is not None:
            fh.Close()
            fh = None
        on_rank0(comm, path, lambda: os.replace(tmp, path))
    except WriteFailed:
        if fh is not None:
            fh.Close()
        if comm.Get_rank() == 0:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        raise
    finally:
        mem.Free()
        fil.Free()


def check_npy(path: str, grid: tuple[int, ...]) -> int:
    """Header length of a complete float64 ``.npy`` of shape ``grid``; ValueError otherwise."""
    with open_regular(path) as f:
        version = np.lib.format.read_magic(f)
        if version != (1, 0):
            raise ValueError(f"{path}: unexpected .npy version {version}")
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        offset = f.tell()
    if tuple(shape) != tuple(grid) or fortran or dtype != np.dtype("<f8"):
        raise ValueError(f"{path}: holds {shape} {dtype}, expected {tuple(grid)} float64")
    size = os.path.getsize(path)
    if size != offset + 8 * math.prod(grid):
        raise ValueError(f"{path}: truncated ({size} bytes)")
    return offset


def read_field(comm: MPI.Comm, block: Block, u: np.ndarray, grid: tuple[int, ...],
               path: str, offset: int) -> None:
    """Collectively read this rank's block (and edge boundary layers) of ``path`` into ``u``."""
    mem, fil = _types(block, grid)
    fh = MPI.File.Open(comm, path, MPI.MODE_RDONLY)
    try:
        fh.Set_view(offset, MPI.DOUBLE, fil)
        fh.Read_all([u, 1, mem])
    finally:
        fh.Close()
        mem.Free()
        fil.Free()
