"""Collective MPI-IO of the global field as one ``.npy`` file (readable by ``numpy.load``)."""

from __future__ import annotations

import io
import math
import os

import numpy as np
from mpi4py import MPI

from solver.decomp import Block


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
    """Write the global field to ``path``: collective write to a temp name, then rename."""
    tmp = f"{path}.tmp"
    header = npy_header(grid)
    mem, fil = _types(block, grid)
    fh = MPI.File.Open(comm, tmp, MPI.MODE_WRONLY | MPI.MODE_CREATE)
    try:
        # a leftover temp file from a killed run may be longer; make the size exact
        fh.Set_size(len(header) + 8 * math.prod(grid))
        if comm.Get_rank() == 0:
            fh.Write_at(0, header)
        fh.Set_view(len(header), MPI.DOUBLE, fil)
        fh.Write_all([u, 1, mem])
        fh.Sync()
    finally:
        fh.Close()
        mem.Free()
        fil.Free()
    comm.Barrier()
    if comm.Get_rank() == 0:
        os.replace(tmp, path)
    comm.Barrier()


def check_npy(path: str, grid: tuple[int, ...]) -> int:
    """Header length of a complete float64 ``.npy`` of shape ``grid``; ValueError otherwise."""
    with open(path, "rb") as f:
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
