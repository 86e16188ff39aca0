"""Process control for the launcher: adopt orphans, find ranks, signal and reap trees."""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

# Processes that carry ranks but are not ranks: SIGTERM goes past them to the ranks.
PLUMBING = {"sshd", "sshd-session", "ssh", "sh", "bash", "dash",
            "mpiexec", "mpirun", "prted", "prterun", "ompirun_wrapper",  # Open MPI 5
            "orted", "orterun", "mpiexec.openmpi", "mpirun.openmpi",  # Open MPI 4
            "hydra_pmi_proxy", "mpiexec.hydra", "mpirun.mpich", "mpiexec.mpich"}  # MPICH


def become_subreaper() -> None:
    """Adopt orphaned descendants, so ranks whose parent died can still be found and killed."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def descendants(pid: int) -> list[int]:
    """All live descendants of `pid` (parents before children)."""
    kids, out, todo = _children_map(), [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def rank_pids(root: int) -> list[int]:
    """Descendants of `root` that are MPI ranks rather than launch plumbing."""
    return [p for p in descendants(root) if comm(p) not in PLUMBING]


def signal_pids(pids: Iterable[int], sig: int) -> None:
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def kill_tree(root: int, include_root: bool = True) -> None:
    """SIGKILL `root` and everything below it, sweeping until nothing is left."""
    for _ in range(5):
        pids = descendants(root) + ([root] if include_root else [])
        live = [p for p in pids if Path(f"/proc/{p}").exists() and comm(p)]
        if not live:
            return
        signal_pids(live, signal.SIGKILL)
        time.sleep(0.05)


def reap() -> None:
    """Collect adopted zombies (call only after every Popen was waited for)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
