"""The communication check: healthy ranks, a silent rank, bad options."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest


@pytest.mark.mpi
def test_all_ranks_answer(run_solver) -> None:
    result = run_solver(["commcheck", "--sizes", "8,4096,262144", "--iterations", "5"], ranks=3)
    assert result.returncode == 0, result.stderr
    summary = result.summary
    assert summary["ok"] is True and summary["errors"] == [] and summary["unreachable"] == []
    assert summary["ranks"] == 3 and summary["nodes"] == 1
    assert sorted(sum(summary["hosts"].values(), [])) == [0, 1, 2]
    assert [p["rank"] for p in summary["pairs"]] == [1, 2]
    for pair in summary["pairs"]:
        assert pair["latency_us"] > 0
        assert set(pair["bandwidth_MBps"]) == {"8", "4096", "262144"}
    assert summary["allreduce_ok"] is True


def test_single_rank_checks_allreduce_only(capsys: pytest.CaptureFixture[str]) -> None:
    from mpi4py import MPI

    from solver.commcheck import run

    assert run(MPI.COMM_SELF, [], {}) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"] == [] and summary["allreduce_ok"] is True and summary["ok"] is True


def _rank_pids(mpiexec_pid: int) -> dict[int, int]:
    found = {}
    children = Path(f"/proc/{mpiexec_pid}/task/{mpiexec_pid}/children").read_text().split()
    for pid in map(int, children):
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            if item.startswith(b"OMPI_COMM_WORLD_RANK="):
                found[int(item.split(b"=")[1])] = pid
    return found


@pytest.mark.mpi
def test_silent_rank_is_reported_and_exits_4(mpi_command, solver_env: dict[str, str]) -> None:
    cmd = mpi_command(4, ["commcheck", "--sizes", "8,65536", "--iterations", "2000",
                          "--timeout", "2"])
    proc = subprocess.Popen(cmd, env=solver_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    pids: dict[int, int] = {}
    try:
        # once rank 1 has been measured every rank is past MPI_Init; freeze rank 3 before its turn
        for line in proc.stderr:
            if "rank 1 (" in line:
                pids = _rank_pids(proc.pid)
                os.kill(pids[3], signal.SIGSTOP)
                break
        out, err = proc.communicate(timeout=60)
    finally:
        for pid in pids.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 4, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["ok"] is False
    assert summary["unreachable"] == [3]
    assert "rank 3 did not answer" in summary["errors"]


@pytest.mark.parametrize(("args", "fragment"), [
    (["--sizes", "8,big"], "--sizes: not a list of integers"),
    (["--sizes", "0"], "--sizes: byte counts must be >= 1"),
    (["--timeout", "0"], "--iterations and --timeout must be positive"),
    (["--timeout", "nan"], "argument --timeout: 'nan' is not a number (ASCII"),
    (["--timeout", "inf"], "argument --timeout: 'inf' is not a number (ASCII"),
    (["--timeout=-inf"], "argument --timeout: '-inf' is not a number (ASCII"),
    (["--timeout", "-1"], "--iterations and --timeout must be positive"),
    (["--iterations", "\uff15"], "argument --iterations: '\uff15' is not a whole number"),
    (["--iterations", "1_0"], "argument --iterations: '1_0' is not a whole number"),
    (["--sizes", "8,+16"], "--sizes: not a list of integers"),
    # too large to allocate (ENOMEM) or to map at all (OverflowError)
    (["--sizes", "8,1000000000000"], "--sizes: byte counts must be at most 1073741824 (1 GiB), "
                                     "got 1000000000000"),
    (["--sizes", "1" * 23], f"at most 1073741824 (1 GiB), got {'1' * 23}"),
    (["--sizes", "1073741825"], "at most 1073741824 (1 GiB), got 1073741825"),
    (["--timeout", "\u0661"], "argument --timeout: '\u0661' is not a number (ASCII digits"),
    (["--timeout", "1_0"], "argument --timeout: '1_0' is not a number (ASCII digits"),
])
def test_bad_commcheck_option(capsys: pytest.CaptureFixture[str], args: list[str],
                              fragment: str) -> None:
    from mpi4py import MPI

    from solver.commcheck import run

    assert run(MPI.COMM_SELF, args, {}) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count(fragment) == 1


def test_message_buffers_are_page_aligned_written_and_writable() -> None:
    import mmap

    from solver.commcheck import message_buffer

    buf = message_buffer(3 * mmap.PAGESIZE + 5, 7)
    assert buf.ctypes.data % mmap.PAGESIZE == 0
    assert buf.size == 3 * mmap.PAGESIZE + 5 and (buf == 7).all()
    buf[-1] = 9
    assert buf[-1] == 9
