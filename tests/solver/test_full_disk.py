"""A full disk ends the run with one error line, the previous checkpoint intact and no
temporary left (it aborted with MPI_ERR_OTHER and left .tmp-step-* behind)."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from solver import checkpoint
from solver.config import SolverConfig

# 321 x 241 float64: one field of ~605 KiB fits a 1 MiB file system once, not twice
GRID = ["--nx", "321", "--ny", "241"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a 1 MiB tmpfs to fill needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp" in p.name)


def _check_ended_cleanly(result, disk: Path, what: str) -> None:
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    assert what in errors[0] and "bytes free there" in errors[0], errors[0]
    assert "Traceback" not in result.stderr
    assert _leftovers(disk) == []


def _heat(tmp_path: Path, disk: Path, steps: str) -> list[str]:
    return [*GRID, "--steps", steps, "--checkpoint-every", "10", "--no-png",
            "--output-path", str(tmp_path / "out"), "--checkpoint-dir", str(disk / "ckpt")]


def _check_previous_checkpoint(disk: Path, tmp_path: Path) -> None:
    assert sorted(p.name for p in (disk / "ckpt").iterdir()) == ["step-0000000010"]
    found = checkpoint.find_latest(str(disk / "ckpt"), SolverConfig(nx=321, ny=241, steps=40))
    assert found is not None and found.step == 10
    assert not (tmp_path / "out" / "job" / "field.npy").exists()


def test_a_full_disk_while_checkpointing(tmp_path: Path, small_disk: Path, heat_here) -> None:
    result = heat_here(_heat(tmp_path, small_disk, "40"), env={"AWS_BATCH_JOB_ID": "job"})
    _check_ended_cleanly(result, small_disk, "the checkpoint at step 20 was not written")
    assert "the checkpoint " + str(small_disk / "ckpt" / "step-0000000010") in result.stderr
    _check_previous_checkpoint(small_disk, tmp_path)


@pytest.mark.mpi
def test_a_full_disk_while_checkpointing_on_two_ranks(tmp_path: Path, small_disk: Path,
                                                      run_solver) -> None:
    result = run_solver(["heat", *_heat(tmp_path, small_disk, "40")], ranks=2,
                        env={"AWS_BATCH_JOB_ID": "job"})
    _check_ended_cleanly(result, small_disk, "the checkpoint at step 20 was not written")
    _check_previous_checkpoint(small_disk, tmp_path)


def test_a_full_disk_while_writing_the_results(tmp_path: Path, small_disk: Path,
                                               heat_here) -> None:
    # 401 x 401 float64 (~1.2 MiB) cannot fit at all
    result = heat_here(["--nx", "401", "--ny", "401", "--steps", "5", "--no-png",
                        "--output-path", str(small_disk)], env={"AWS_BATCH_JOB_ID": "job"})
    _check_ended_cleanly(result, small_disk, "the results were not written")
    assert sorted(p.name for p in (small_disk / "job").iterdir()) == []


def test_a_full_disk_while_writing_the_metadata(tmp_path: Path, heat_here,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """meta.json is rank 0's alone: its failure is shared with every rank all the same."""
    real_fsync, calls = os.fsync, []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) > 3:  # step 10's meta.json and its two directories, then no more space
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    result = heat_here([*GRID, "--steps", "40", "--checkpoint-every", "10", "--no-png",
                        "--output-path", str(tmp_path)], env={"AWS_BATCH_JOB_ID": "job"})
    _check_ended_cleanly(result, tmp_path, "the checkpoint at step 20 was not written")
    assert "meta.json failed ([Errno 28] No space left on device)" in result.stderr
    assert sorted(p.name for p in (tmp_path / "job" / "checkpoints").iterdir()) == [
        "step-0000000010"]
