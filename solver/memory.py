"""Does every node have the memory its ranks' arrays need? Checked before any is allocated."""

from __future__ import annotations

import math
from pathlib import Path

from mpi4py import MPI

from solver.decomp import Block

_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max",  # cgroup v2: a Batch container's MEMORY
                  "/sys/fs/cgroup/memory/memory.limit_in_bytes")  # cgroup v1


def bytes_needed(block: Block, grid: tuple[int, ...], resume: bool) -> int:
    """One rank's float64 arrays: two time-stepping arrays, the I/O copy (and the restart
    buffer), the error norm's temporaries and the whole-axis profiles."""
    compute, padded = math.prod(block.compute_shape), math.prod(block.padded_shape)
    interior = math.prod(block.count)
    return 8 * (2 * compute + (2 if resume else 1) * padded + 4 * interior + sum(grid))


def available_bytes() -> int | None:
    """MemAvailable of this machine, capped by the container's cgroup limit (None if unknown)."""
    found: list[int] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for path in _CGROUP_LIMITS:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" means no limit
            found.append(int(text))
    return min(found) if found else None


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f} GiB"


def check_fits(comm: MPI.Comm, block: Block, grid: tuple[int, ...], resume: bool) -> str | None:
    """Collective: None if every node can hold its ranks' arrays, else rank 0's message."""
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        need = node.allreduce(bytes_needed(block, grid, resume), op=MPI.SUM)
        have = available_bytes() if node.Get_rank() == 0 else None
    finally:
        node.Free()
    short = have is not None and need > have  # said by one rank per node
    reports = comm.gather((MPI.Get_processor_name(), need, have) if short else None, root=0)
    failing = comm.bcast([r for r in reports if r] if comm.Get_rank() == 0 else None, root=0)
    if not failing:
        return None
    host, need, have = failing[0]
    shape = "x".join(map(str, grid))
    more = f" (and {len(failing) - 1} more nodes)" if len(failing) > 1 else ""
    return (f"grid {shape} does not fit in memory: the ranks on {host} need about "
            f"{_gib(need)} ({need} bytes) and it has {_gib(have)} ({have} bytes) available{more}; "
            "use more nodes or a smaller grid")
