"""The launcher on emulated Batch nodes (network namespaces): runs, failures, retries."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from emulator.namespaces import Emulation, unavailable_reason

REPO = Path(__file__).resolve().parents[2]
_WHY = unavailable_reason() or (
    None if Path("/usr/sbin/sshd").exists()
    else "sshd is not installed (apt-get install openssh-server openssh-client)")
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_WHY is not None, reason=f"{_WHY}")]

COMPARED = ("grid", "steps", "t", "l2_error", "max_error")
HB_TIMEOUT = 5.0  # generous: other test suites may load the machine at the same time


def _env(solver_env: dict[str, str], state: Path, ranks: int = 1) -> dict[str, str]:
    return {"NUMBA_CACHE_DIR": solver_env["NUMBA_CACHE_DIR"], "PYTHONPATH": str(REPO),
            "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
            "MNP_RANKS_PER_NODE": str(ranks), "MNP_STATE_DIR": str(state),
            "MNP_HEARTBEAT_INTERVAL": "0.5", "MNP_HEARTBEAT_TIMEOUT": str(HB_TIMEOUT)}


def _emulation(tmp_path: Path, solver_env: dict[str, str], *, ranks: int = 1,
               **kw: object) -> Emulation:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    (tmp_path / "efs").mkdir(exist_ok=True)
    return Emulation(3, shared_dir=tmp_path / "efs", log_dir=tmp_path,
                     env=_env(solver_env, state, ranks), max_delay=1.0, **kw)


def _summary(emu: Emulation) -> dict:
    out, err = emu.output(0)
    assert out.strip(), err
    return json.loads(out.strip().splitlines()[-1])


def _finished_cleanly(emu: Emulation, tmp_path: Path, killed: int | None = None) -> dict:
    """Every launcher ended, nothing runs in any namespace, no launcher state is left.

    A SIGKILLed node cannot clean up; on Batch its container's /tmp goes with it.
    """
    codes = emu.wait_all(30)
    assert None not in codes.values(), codes
    for n in emu.nodes:
        assert emu.pids(n.index) == [], f"processes left on node {n.index}"
    left = [p.name for p in (tmp_path / "state").iterdir()]
    assert [name for name in left if f"-n{killed}-" not in name] == []
    for p in (tmp_path / "state").iterdir():
        shutil.rmtree(p)
    return codes


def _heat(out: Path, steps: int, *extra: str) -> list[str]:
    return ["python", "-m", "solver", "heat", "--nx", "67", "--ny", "45", "--steps", str(steps),
            "--output-path", str(out), "--no-png", *extra]


def test_heat_runs_across_three_nodes_like_one_process(tmp_path: Path, solver_env,
                                                       run_solver) -> None:
    ref = run_solver(_heat(tmp_path / "ref", 100)[3:], env={"AWS_BATCH_JOB_ID": "ref#0"})
    assert ref.returncode == 0, ref.stderr
    with _emulation(tmp_path, solver_env, job_id="heat-3") as emu:
        emu.start(_heat(emu.shared_dir, 100), cwd=REPO)
        assert emu.wait(120) == 0, emu.output(0)[1]
        codes = _finished_cleanly(emu, tmp_path)
        summary = _summary(emu)
    assert codes == {0: 0, 1: 0, 2: 0}
    assert (summary["ranks"], summary["nodes"]) == (3, 3)  # one rank on each node's host
    for key in COMPARED:
        assert summary[key] == pytest.approx(ref.summary[key], rel=1e-12, abs=0), key
    np.testing.assert_array_equal(np.load(tmp_path / "efs" / "heat-3" / "field.npy"),
                                  np.load(tmp_path / "ref" / "ref" / "field.npy"))


def test_commcheck_every_rank_on_every_node_answers(tmp_path: Path, solver_env) -> None:
    with _emulation(tmp_path, solver_env, ranks=2) as emu:
        emu.start(["python", "-m", "solver", "commcheck", "--sizes", "8,65536",
                   "--iterations", "5", "--timeout", "30"], cwd=REPO)
        assert emu.wait(120) == 0, emu.output(0)[1]
        _finished_cleanly(emu, tmp_path)
        summary = _summary(emu)
        hostnames = {n.hostname for n in emu.nodes}
    assert summary["ok"] and summary["allreduce_ok"] and summary["unreachable"] == []
    assert summary["ranks"] == 6 and summary["nodes"] == 3
    assert set(summary["hosts"]) == hostnames
    assert all(len(ranks) == 2 for ranks in summary["hosts"].values())
    assert sorted(p["rank"] for p in summary["pairs"]) == [1, 2, 3, 4, 5]


def test_a_child_that_never_starts_fails_the_rendezvous_naming_it(tmp_path: Path,
                                                                   solver_env) -> None:
    with _emulation(tmp_path, solver_env) as emu:
        began = time.monotonic()
        emu.start(_heat(emu.shared_dir, 10), launcher_args=["--rendezvous-timeout", "4"],
                  skip=[2], cwd=REPO)
        assert emu.wait(60) == 3
        took = time.monotonic() - began
        codes = _finished_cleanly(emu, tmp_path)
        err = emu.output(0)[1]
    assert 4 <= took < 12
    assert "rendezvous timeout after 4s: node(s) 2 never reported" in err
    assert codes[1] == 0  # the child that came was dismissed, not left waiting


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.parametrize("fault", ["kill", "link-down"])
def test_a_child_lost_mid_run_ends_the_job_with_exit_4(tmp_path: Path, solver_env,
                                                       fault: str) -> None:
    with _emulation(tmp_path, solver_env, job_id=f"lost-{fault}") as emu:
        emu.start(_heat(emu.shared_dir, 100000, "--log-every", "20",
                        "--checkpoint-every", "0"), cwd=REPO)
        _wait_for(lambda: "step 20/" in emu.output(0)[1], 90, "the run to start")
        began = time.monotonic()
        if fault == "kill":
            emu.kill_node(2)
        else:
            emu.link_down(2)
        assert emu.wait(60) == 4
        took = time.monotonic() - began
        codes = _finished_cleanly(emu, tmp_path, killed=2 if fault == "kill" else None)
        err = emu.output(0)[1]
    assert "node 2 lost mid-run" in err
    # kill: the connection drops at once; link down: the heartbeat timeout, then mpiexec's stop
    assert took < (10 if fault == "kill" else HB_TIMEOUT + 10), took
    assert codes[1] == 0
    if fault == "link-down":
        assert codes[2] == 4  # the cut-off node noticed the silent main node and gave up


def test_children_give_up_when_the_main_node_dies(tmp_path: Path, solver_env) -> None:
    with _emulation(tmp_path, solver_env) as emu:
        emu.start(_heat(emu.shared_dir, 100000, "--log-every", "20", "--checkpoint-every", "0"),
                  cwd=REPO)
        _wait_for(lambda: "step 20/" in emu.output(0)[1], 90, "the run to start")
        began = time.monotonic()
        emu.kill_node(0)
        codes = emu.wait_all(HB_TIMEOUT + 15)
        took = time.monotonic() - began
        _finished_cleanly(emu, tmp_path, killed=0)
        errs = [emu.output(i)[1] for i in (1, 2)]
    assert (codes[1], codes[2]) == (4, 4)
    assert took < HB_TIMEOUT + 10
    assert all("main node lost" in err for err in errs)


def test_sigterm_on_every_node_checkpoints_and_exits_143(tmp_path: Path, solver_env) -> None:
    job = "stopped-job"
    with _emulation(tmp_path, solver_env, job_id=job) as emu:
        emu.start(_heat(emu.shared_dir, 100000, "--log-every", "20", "--checkpoint-every", "0"),
                  cwd=REPO)
        _wait_for(lambda: "step 20/" in emu.output(0)[1], 90, "the run to start")
        for n in emu.nodes:  # Batch signals every container's PID 1 at once
            emu.signal_launcher(n.index)
        assert emu.wait(40) == 143, emu.output(0)[1]
        codes = _finished_cleanly(emu, tmp_path)
        err = emu.output(0)[1]
    assert codes == {0: 143, 1: 143, 2: 143}
    assert "stop requested: checkpoint at step" in err
    assert any((tmp_path / "efs" / job / "checkpoints").glob("step-*/meta.json"))


# Children's ranks end at once (exit 0, so mpiexec keeps going); the main node's takes 8 s,
# longer than a child launcher waits once its ranks are gone (5 s), so the children leave first.
_SLOW_MAIN_STOP = (
    "import os, signal, sys, time\n"
    "slow = os.environ['OMPI_COMM_WORLD_RANK'] == '0'\n"  # rank 0 runs on the main node
    "def stop(*_):\n"
    "    time.sleep(8 if slow else 0)\n"
    "    sys.exit(143 if slow else 0)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "print('running', flush=True)\n"
    "while True:\n"
    "    time.sleep(0.1)\n")


def test_a_stop_where_children_leave_first_is_still_a_stop(tmp_path: Path, solver_env) -> None:
    with _emulation(tmp_path, solver_env, job_id="slow-stop") as emu:
        emu.start(["python3", "-c", _SLOW_MAIN_STOP], cwd=REPO)
        _wait_for(lambda: emu.output(0)[0].count("running") == 3, 60, "every rank to start")
        for n in emu.nodes:
            emu.signal_launcher(n.index)
        assert emu.wait(40) == 143, emu.output(0)[1]
        codes = _finished_cleanly(emu, tmp_path)
        err = emu.output(0)[1]
    assert codes == {0: 143, 1: 143, 2: 143}
    assert "lost mid-run" not in err


def test_a_retry_resumes_from_the_checkpoint_and_ends_bit_identical(tmp_path: Path,
                                                                    solver_env,
                                                                    run_solver) -> None:
    steps, job = 300, "retry-job"
    ref = run_solver(_heat(tmp_path / "ref", steps)[3:], env={"AWS_BATCH_JOB_ID": "ref#0"})
    assert ref.returncode == 0, ref.stderr
    ckpts = tmp_path / "efs" / job / "checkpoints"
    # One stack secret for both attempts, as Batch gives every attempt the stack's secret: the
    # checkpoint key derives from it.
    secret = "s" * 64
    with _emulation(tmp_path, solver_env, job_id=job, attempt=1, secret=secret) as emu:
        emu.start(_heat(emu.shared_dir, steps, "--checkpoint-every", "20"), cwd=REPO)
        _wait_for(lambda: any(ckpts.glob("step-*/meta.json")), 90, "a checkpoint")
        emu.kill_node(1)
        assert emu.wait(60) == 4
        _finished_cleanly(emu, tmp_path, killed=1)
    assert not (tmp_path / "efs" / job / "field.npy").exists()
    with _emulation(tmp_path, solver_env, job_id=job, attempt=2, secret=secret) as emu:
        emu.start(_heat(emu.shared_dir, steps, "--checkpoint-every", "20"), cwd=REPO)
        assert emu.wait(120) == 0, emu.output(0)[1]
        _finished_cleanly(emu, tmp_path)
        summary = _summary(emu)
        assert "attempt 2" in emu.output(0)[1]
    assert 0 < summary["restarted_from_step"] < steps
    for key in COMPARED:
        assert summary[key] == pytest.approx(ref.summary[key], rel=1e-12, abs=0), key
    np.testing.assert_array_equal(np.load(tmp_path / "efs" / job / "field.npy"),
                                  np.load(tmp_path / "ref" / "ref" / "field.npy"))


# Run by every rank: which processes below this node's launcher carry the secret, in their
# environment or argv? argv[1] is the secret's SHA-256 (the secret itself would be in argv).
SCAN = """
import hashlib, json, os, socket, sys
from mpi4py import MPI
MPI.COMM_WORLD.Barrier()  # every node's sshd, prted, ssh and ranks are up
digest, name = sys.argv[1], b"MNP_RENDEZVOUS_SECRET"
def read(pid, what):
    try:
        with open(f"/proc/{pid}/{what}", "rb") as f:
            return f.read()
    except OSError:
        return b""
def ppid(pid):  # 0 for a process gone meanwhile
    stat = read(pid, "stat").rsplit(b")", 1)
    return int(stat[1].split()[1]) if len(stat) == 2 else 0
launcher = os.getpid()
while b"launcher" not in read(launcher, "cmdline").split(b"\\0"):  # -m launcher
    launcher = ppid(launcher)
kids = {}
for p in filter(str.isdigit, os.listdir("/proc")):
    kids.setdefault(ppid(int(p)), []).append(int(p))
below, todo = [], [launcher]
while todo:
    for c in kids.get(todo.pop(), []):
        below.append(c)
        todo.append(c)
def leaks(pid):
    parts = read(pid, "environ").split(b"\\0") + read(pid, "cmdline").split(b"\\0")
    values = [p.split(b"=", 1)[-1] for p in parts] + parts
    return any(p.startswith(name + b"=") for p in parts) or any(
        hashlib.sha256(v).hexdigest() == digest for v in values)
comms = {p: read(p, "comm").decode().strip() for p in below}
print(json.dumps({"rank": MPI.COMM_WORLD.rank, "host": socket.gethostname(),
                  "seen": sorted(set(comms.values())),
                  "leaked": sorted(comms[p] for p in below if leaks(p))}), flush=True)
"""


def test_no_process_the_launcher_starts_carries_the_secret(tmp_path: Path, solver_env) -> None:
    with _emulation(tmp_path, solver_env, ranks=2) as emu:
        digest = hashlib.sha256(emu.secret.encode()).hexdigest()
        emu.start(["python", "-c", SCAN, digest], cwd=REPO)
        assert emu.wait(120) == 0, emu.output(0)[1]
        _finished_cleanly(emu, tmp_path)
        reports = [json.loads(line) for line in emu.output(0)[0].splitlines()]
        hosts = {n.index: n.hostname for n in emu.nodes}
    assert sorted(r["rank"] for r in reports) == list(range(6))
    assert {r["host"] for r in reports} == set(hosts.values())
    for r in reports:
        assert r["leaked"] == [], r
        if r["host"] == hosts[0]:  # mpiexec and its ssh to every child
            assert {"prterun", "ssh", "python"} <= set(r["seen"]), r
        else:  # the child's sshd and what it started for mpiexec
            assert {"sshd", "prted", "python"} <= set(r["seen"]), r


def test_an_emulation_whose_nodes_lack_the_secret_is_refused(tmp_path: Path,
                                                             solver_env) -> None:
    env = {**_env(solver_env, tmp_path), "MNP_RENDEZVOUS_SECRET": ""}
    with Emulation(2, shared_dir=tmp_path, log_dir=tmp_path, env=env, max_delay=0) as emu:
        emu.start(["true"], cwd=REPO)
        codes = emu.wait_all(30)
        errs = [emu.output(i)[1] for i in (0, 1)]
    assert codes == {0: 2, 1: 2}
    assert all("MNP_RENDEZVOUS_SECRET is not set" in err for err in errs)
