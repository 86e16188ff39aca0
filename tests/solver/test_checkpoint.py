"""Checkpoint/restart: SIGTERM and SIGKILL mid-run, resume, --restart-from, torn checkpoints."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from solver import checkpoint, seal
from solver.config import SolverConfig

pytestmark = pytest.mark.mpi

GRID = ["--nx", "129", "--ny", "97"]
STEPS = 3000
BASE = ["heat", *GRID, "--steps", str(STEPS), "--no-png"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory, solver_env: dict[str, str],
             mpi_command) -> np.ndarray:
    """Field of an uninterrupted run (2 ranks, no checkpoints)."""
    out = tmp_path_factory.mktemp("straight")
    proc = subprocess.run(mpi_command(2, [*BASE, "--checkpoint-every", "0", "--output-path",
                                          str(out)]),
                          env={**solver_env, "AWS_BATCH_JOB_ID": "straight"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return np.load(out / "straight" / "field.npy")


class Background:
    """A solver run in its own session whose stderr is read line by line."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, predicate, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, "".join(self.lines)
            time.sleep(0.002)

    def ranks(self) -> dict[int, int]:
        """{MPI rank: pid} of the rank processes (children of mpiexec)."""
        found = {}
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        for pid in map(int, children):
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for item in env:
                if item.startswith(b"OMPI_COMM_WORLD_RANK="):
                    found[int(item.split(b"=")[1])] = pid
        return found

    def finish(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code


def _start(out: Path, job: str, solver_env: dict[str, str], mpi_command,
           extra: list[str]) -> Background:
    """A run that would go on far past STEPS, so it cannot finish before it is stopped; its
    checkpoints still resume a STEPS run (dt does not depend on the step count). The ranks run
    niced so that they cannot starve this test of the CPU it needs to stop them in time."""
    cmd = mpi_command(2, ["heat", *GRID, "--steps", "1000000", "--no-png", "--output-path",
                          str(out), "--log-every", "20", *extra])
    python = cmd.index(sys.executable)
    cmd[python:python] = ["nice", "-n", "10"]
    return Background(cmd, {**solver_env, "AWS_BATCH_JOB_ID": f"{job}#0"})


def _logged_step(bg: Background, at_least: int) -> bool:
    return any(f"step {s}/" in line for line in bg.lines for s in range(at_least, STEPS, 20))


@pytest.mark.parametrize("how", ["sigterm-one-rank", "sigterm-each-rank", "sigusr1-mpiexec"])
def test_stop_signal_checkpoints_and_resume_is_bit_identical(
        tmp_path: Path, solver_env: dict[str, str], mpi_command, run_solver,
        straight: np.ndarray, how: str) -> None:
    bg = _start(tmp_path, "stopped", solver_env, mpi_command, ["--checkpoint-every", "0"])
    bg.wait_for(lambda: len(bg.ranks()) == 2)
    ranks = bg.ranks()
    bg.wait_for(lambda: _logged_step(bg, 20))
    if how == "sigterm-one-rank":
        os.kill(ranks[1], signal.SIGTERM)  # one rank is enough: the stop is agreed
    elif how == "sigterm-each-rank":
        # like Batch, where each node's launcher relays SIGTERM on its own time: a late (or a
        # repeated) SIGTERM arriving while the agreed checkpoint is written must not kill a rank
        for _ in range(30):
            for pid in (ranks[1], ranks[0]):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            time.sleep(0.003)
    else:
        os.kill(bg.proc.pid, signal.SIGUSR1)  # mpiexec forwards SIGUSR1 to every rank
    code = bg.finish()
    assert code == 143, f"exit {code}\n" + "".join(bg.lines)
    job = tmp_path / "stopped"
    assert not (job / "field.npy").exists()
    found = checkpoint.find_latest(str(job / "checkpoints"),
                                   SolverConfig(nx=129, ny=97, steps=STEPS))
    assert found is not None and 20 <= found.step < STEPS
    assert found.meta["ranks"] == 2
    # the Batch retry: same job id, next attempt, and a different rank count
    run = run_solver([*BASE, "--output-path", str(tmp_path)], ranks=3,
                     env={"AWS_BATCH_JOB_ID": "stopped#0", "AWS_BATCH_JOB_ATTEMPT": "2"})
    assert run.returncode == 0, run.stderr
    assert run.summary["restarted_from_step"] == found.step
    np.testing.assert_array_equal(np.load(job / "field.npy"), straight)


def test_sigkill_at_a_random_step_then_retry(tmp_path: Path, solver_env: dict[str, str],
                                             mpi_command, run_solver,
                                             straight: np.ndarray) -> None:
    rng = random.Random()
    every = 37
    target = every * rng.randint(1, 30)
    bg = _start(tmp_path, "killed", solver_env, mpi_command, ["--checkpoint-every", str(every)])
    ckpts = tmp_path / "killed" / "checkpoints"
    bg.wait_for(lambda: ckpts.is_dir() and any(
        int(p.name.split("-")[-1]) >= target for p in ckpts.glob("step-*")))
    time.sleep(rng.uniform(0, 0.05))  # anywhere between steps, or inside a checkpoint write
    for pid in [*bg.ranks().values(), bg.proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    bg.finish()
    assert not (tmp_path / "killed" / "field.npy").exists()
    run = run_solver([*BASE, "--output-path", str(tmp_path), "--checkpoint-every", "0"],
                     ranks=2, env={"AWS_BATCH_JOB_ID": "killed", "AWS_BATCH_JOB_ATTEMPT": "2"})
    assert run.returncode == 0, run.stderr
    assert run.summary["restarted_from_step"] >= target
    np.testing.assert_array_equal(np.load(tmp_path / "killed" / "field.npy"), straight)


def test_restart_from_another_job(tmp_path: Path, run_solver, heat_here,
                                  straight: np.ndarray) -> None:
    first = run_solver(["heat", *GRID, "--steps", "260", "--checkpoint-every", "100", "--no-png",
                        "--output-path", str(tmp_path)], ranks=2,
                       env={"AWS_BATCH_JOB_ID": "first"})
    assert first.returncode == 0, first.stderr
    second = run_solver([*BASE, "--output-path", str(tmp_path), "--restart-from",
                         str(tmp_path / "first")], ranks=4, env={"AWS_BATCH_JOB_ID": "second"})
    assert second.returncode == 0, second.stderr
    assert second.summary["restarted_from_step"] == 200
    np.testing.assert_array_equal(np.load(tmp_path / "second" / "field.npy"), straight)
    # a checkpoint for another grid is refused, and nothing is written for the new job
    third = heat_here(["--nx", "65", "--ny", "97", "--output-path", str(tmp_path),
                       "--restart-from", str(tmp_path / "first")],
                      env={"AWS_BATCH_JOB_ID": "third"})
    assert third.returncode == 2
    assert "is for grid [129, 97], this run has [65, 97]" in third.stderr
    assert not (tmp_path / "third").exists()


def _fake_checkpoint(root: Path, step: int, cfg: SolverConfig, torn: bool = False) -> None:
    d = root / f"step-{step:010d}"
    d.mkdir(parents=True)
    np.save(d / "field.npy", np.zeros(cfg.grid))
    meta = {"format": checkpoint.FORMAT, "step": step, "t": step * cfg.time_step,
            "grid": list(cfg.grid), "dt": cfg.time_step, "alpha": cfg.alpha, "ranks": 1}
    meta["seal"], _ = seal.seal(meta, str(d / "field.npy"), None)
    if torn:
        with open(d / "field.npy", "r+b") as f:
            f.truncate(100)
    (d / "meta.json").write_text(json.dumps(meta))


def test_torn_and_partial_checkpoints_are_skipped(tmp_path: Path) -> None:
    cfg = SolverConfig(nx=9, ny=7, steps=50)
    _fake_checkpoint(tmp_path, 10, cfg)
    _fake_checkpoint(tmp_path, 20, cfg, torn=True)
    (tmp_path / ".tmp-step-0000000030").mkdir()
    (tmp_path / "step-0000000040").mkdir()  # no meta.json
    found = checkpoint.find_latest(str(tmp_path), cfg)
    assert found is not None and found.step == 10
    assert checkpoint.find_latest(str(tmp_path / "missing"), cfg) is None


def test_checkpoints_past_ten_digits_are_ordered_by_step(tmp_path: Path) -> None:
    cfg = SolverConfig(nx=9, ny=7, steps=20_000_000_000)
    _fake_checkpoint(tmp_path, 9_999_999_999, cfg)
    _fake_checkpoint(tmp_path, 10_000_000_000, cfg)
    found = checkpoint.find_latest(str(tmp_path), cfg)
    assert found is not None and found.step == 10_000_000_000
    # one step, one name: a longer zero padding is not the same checkpoint
    (tmp_path / "step-10000000000").rename(tmp_path / "step-010000000000")
    found = checkpoint.find_latest(str(tmp_path), cfg)
    assert found is not None and found.step == 9_999_999_999


def test_a_runs_continuation_with_no_checkpoint_yet_starts_over(tmp_path: Path,
                                                                  heat_here) -> None:
    """A run's continuation names the run's own directory as both --checkpoint-dir and the
    last --restart-from (continuation/README.md, "Checkpoints"); when no member reached a
    checkpoint it is empty, and the run starts over rather than ending with exit 2."""
    family = tmp_path / "first" / "checkpoints"
    family.mkdir(parents=True)
    args = ["--nx", "9", "--ny", "9", "--steps", "20", "--no-png", "--output-path",
            str(tmp_path)]
    continued = heat_here([*args, "--checkpoint-dir", str(family), "--restart-from",
                           str(family)], env={"AWS_BATCH_JOB_ID": "second"})
    assert continued.returncode == 0, continued.stderr
    assert "holds no checkpoint yet; starting from step 0" in continued.stderr
    plain = heat_here(args, env={"AWS_BATCH_JOB_ID": "plain"})
    assert plain.returncode == 0, plain.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "second" / "field.npy"),
                                  np.load(tmp_path / "plain" / "field.npy"))
    # another job's directory with nothing in it is still a mistake
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    refused = heat_here([*args, "--restart-from", str(elsewhere)],
                        env={"AWS_BATCH_JOB_ID": "third"})
    assert refused.returncode == 2 and "no valid checkpoint there" in refused.stderr
