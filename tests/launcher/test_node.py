"""The launcher without network namespaces: Batch variables, settings, one-node runs, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher.flavours import job_networks
from launcher.node import BatchNode, Settings
from launcher.procs import kill_tree
from launcher.roles import state_dir

REPO = Path(__file__).resolve().parents[2]
CHILD = {"AWS_BATCH_JOB_ID": "abc#2", "AWS_BATCH_JOB_ATTEMPT": "2",
         "AWS_BATCH_JOB_NODE_INDEX": "2", "AWS_BATCH_JOB_NUM_NODES": "3",
         "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
         "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.1.7"}


def test_child_variables_become_one_typed_object() -> None:
    node = BatchNode.from_env(CHILD)
    assert node == BatchNode(index=2, num_nodes=3, main_index=0, main_ip="10.0.1.7",
                             job_id="abc#2", attempt=2)
    assert not node.is_main and node.job == "abc"


def test_main_node_gets_no_address_and_needs_none() -> None:
    env = {**CHILD, "AWS_BATCH_JOB_NODE_INDEX": "0", "AWS_BATCH_JOB_ID": "abc#0"}
    del env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"]
    node = BatchNode.from_env(env)
    assert node.is_main and node.main_ip is None and node.attempt == 2


def test_outside_batch_is_one_node_with_a_local_job_id() -> None:
    node = BatchNode.from_env({})
    assert (node.index, node.num_nodes, node.main_index, node.attempt) == (0, 1, 0, 1)
    assert node.is_main and node.job_id.startswith("local-")


@pytest.mark.parametrize(("change", "message"), [
    ({"AWS_BATCH_JOB_NODE_INDEX": "x"}, "AWS_BATCH_JOB_NODE_INDEX='x' is not an integer"),
    # int() takes other scripts' digits and underscores; the launcher reads ASCII only.
    ({"AWS_BATCH_JOB_NODE_INDEX": "\u0661"}, "AWS_BATCH_JOB_NODE_INDEX='\u0661' is not an integer"),
    ({"AWS_BATCH_JOB_NUM_NODES": "1_0"}, "AWS_BATCH_JOB_NUM_NODES='1_0' is not an integer"),
    ({"AWS_BATCH_JOB_NODE_INDEX": None}, "AWS_BATCH_JOB_NODE_INDEX is not set"),
    ({"AWS_BATCH_JOB_NODE_INDEX": "3"}, "AWS_BATCH_JOB_NODE_INDEX=3 is not below"),
    ({"AWS_BATCH_JOB_MAIN_NODE_INDEX": None}, "AWS_BATCH_JOB_MAIN_NODE_INDEX is not set"),
    ({"AWS_BATCH_JOB_NUM_NODES": "0"}, "AWS_BATCH_JOB_NUM_NODES=0 must be at least 1"),
    ({"AWS_BATCH_JOB_ATTEMPT": "0"}, "AWS_BATCH_JOB_ATTEMPT=0 must be at least 1"),
    ({"AWS_BATCH_JOB_ID": ""}, "AWS_BATCH_JOB_ID is not set"),
    ({"AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": None},
     "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS is not set on a child"),
])
def test_bad_batch_variables_are_named(change: dict, message: str) -> None:
    env = {**CHILD, **{k: v for k, v in change.items() if v is not None}}
    for k in (k for k, v in change.items() if v is None):
        del env[k]
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        BatchNode.from_env(env)


@pytest.mark.parametrize(("ips", "nets"), [
    (["10.0.1.7", "10.0.1.9"], "10.0.1.0/28"),
    (["10.0.1.7", "10.0.200.9"], "10.0.0.0/16"),
    (["10.213.0.1", "10.213.0.2", "10.213.0.3"], "10.213.0.0/30"),
    # no network of /8 or narrower holds both: each address alone, never 0.0.0.0/0
    (["10.0.0.5", "172.16.0.5"], "10.0.0.5/32,172.16.0.5/32"),
    # a supernet would take in awsvpc's link-local ecs-eth0 (169.254.172.x)
    (["169.254.10.1", "169.254.200.1"], "169.254.10.1/32,169.254.200.1/32"),
])
def test_mpi_is_held_to_the_nodes_addresses(ips: list[str], nets: str) -> None:
    assert job_networks(ips) == nets


def test_settings_defaults_and_overrides() -> None:
    s = Settings.from_env({}, None)
    assert s.slots == os.cpu_count() and s.rendezvous_timeout == 600
    assert s.mpiexec_args is None and s.secret is None
    s = Settings.from_env({"MNP_RANKS_PER_NODE": "16", "MNP_RENDEZVOUS_TIMEOUT": "42",
                           "MNP_HEARTBEAT_INTERVAL": "2"}, None)
    assert (s.slots, s.rendezvous_timeout, s.hb_interval, s.hb_timeout) == (16, 42, 2, 30)
    assert Settings.from_env({"MNP_RENDEZVOUS_TIMEOUT": "42"}, 7.5).rendezvous_timeout == 7.5
    assert Settings.from_env({"MNP_MPIEXEC_ARGS": "--map-by 'ppr:1:node'"}, None
                             ).mpiexec_args == ("--map-by", "ppr:1:node")
    assert Settings.from_env({"MNP_MPIEXEC_ARGS": ""}, None).mpiexec_args == ()  # no options
    s = Settings.from_env({"MNP_SSH_PORT": "22", "MNP_MPI": "mpich", "MNP_NETWORK": "efa"},
                          None)
    assert (s.ssh_port, s.mpi, s.network.name) == (None, "mpich", "efa")  # one node: no sshd


def test_launcher_state_is_private_and_keyed_by_job_attempt_and_node(tmp_path: Path) -> None:
    first = state_dir(BatchNode.from_env({**CHILD, "AWS_BATCH_JOB_ATTEMPT": "1"}),
                      str(tmp_path))
    second = state_dir(BatchNode.from_env(CHILD), str(tmp_path))
    assert first.name.startswith("mnp-abc-a1-n2-") and second.name.startswith("mnp-abc-a2-n2-")
    assert first.stat().st_mode & 0o777 == 0o700 == second.stat().st_mode & 0o777


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_BATCH_", "MNP_", "OMPI_", "PMIX_", "PRTE_"))}
    # `python` in the job's command is the venv's, as in the image
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.defpath)}"
    env.update(PYTHONPATH=str(REPO), OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", **extra)
    return env


def _launcher(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen([sys.executable, "-m", "launcher", *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)  # mpiexec runs in its own session: kill below the launcher too
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--rendezvous-timeout", "soon", "true"], {}, "--rendezvous-timeout: 'soon': not a number"),
    (["--rendezvous-timeout", "0", "true"], {}, "--rendezvous-timeout: '0': out of range; "
     "allowed: a number of seconds from 1 to 86400"),
    (["--rendezvous-timeout", "nan", "true"], {}, "--rendezvous-timeout: 'nan': not a number"),
    ([], {}, "no command to run"),
    (["true"], {"AWS_BATCH_JOB_NUM_NODES": "2"}, "AWS_BATCH_JOB_NODE_INDEX is not set"),
])
def test_usage_errors_exit_2_with_one_clear_line(args: list[str], env: dict, message: str) -> None:
    run = _launcher(args, _env(**env))
    assert run.returncode == 2
    assert message in run.stderr
    assert run.stdout == ""


SECRET = "0123456789abcdef0123456789abcdef"
MAIN = {**CHILD, "AWS_BATCH_JOB_NODE_INDEX": "0", "AWS_BATCH_JOB_ID": "abc#0",
        "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": ""}


@pytest.mark.parametrize(("env", "message"), [
    # the hijack's precondition: a multi-node job whose key is public
    (MAIN, "MNP_RENDEZVOUS_SECRET is not set, and a multi-node job needs it"),
    (CHILD, "MNP_RENDEZVOUS_SECRET is not set"),
    ({**MAIN, "MNP_RENDEZVOUS_SECRET": ""}, "MNP_RENDEZVOUS_SECRET is not set"),
    ({**MAIN, "AWS_BATCH_JOB_NUM_NODES": "1000", "MNP_INSECURE_RENDEZVOUS": "0"},
     "MNP_RENDEZVOUS_SECRET is not set"),
    ({**MAIN, "MNP_RENDEZVOUS_SECRET": "hunter2"},
     "MNP_RENDEZVOUS_SECRET (7 characters): too short; allowed: at least 16 random"),
    ({**MAIN, "MNP_INSECURE_RENDEZVOUS": "yes"},
     "MNP_INSECURE_RENDEZVOUS='yes': unknown value; allowed: 0 or 1"),
    ({**MAIN, "MNP_INSECURE_RENDEZVOUS": "true", "MNP_RENDEZVOUS_SECRET": SECRET},
     "MNP_INSECURE_RENDEZVOUS='true': unknown value; allowed: 0 or 1"),
])
def test_multi_node_without_a_secret_is_refused_in_one_line(tmp_path: Path, env: dict,
                                                           message: str) -> None:
    run = _launcher(["true"], _env(**env, MNP_STATE_DIR=str(tmp_path)))
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert run.stderr.count("\n") == 1 and run.stdout == ""
    if "is not set" in message:  # it says how to provide one
        assert "Secrets Manager" in run.stderr and "`secrets` entry" in run.stderr
        assert "MNP_INSECURE_RENDEZVOUS=1" in run.stderr
    assert list(tmp_path.iterdir()) == []  # nothing started: no key, no state


def test_secret_settings() -> None:
    assert Settings.from_env({}, None).secret is None  # one node needs none
    assert Settings.from_env({"MNP_RENDEZVOUS_SECRET": SECRET}, None, 3).secret == SECRET
    assert Settings.from_env({"MNP_INSECURE_RENDEZVOUS": "1"}, None, 3).secret is None
    with pytest.raises(ValueError, match="MNP_RENDEZVOUS_SECRET is not set"):
        Settings.from_env({"MNP_INSECURE_RENDEZVOUS": "0"}, None, 2)


@pytest.mark.parametrize("env", [MAIN, CHILD], ids=["main", "child"])
def test_the_insecure_opt_out_is_logged_on_every_node(tmp_path: Path, env: dict) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # the child finds nobody there
    env = {**env, "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS":
           "" if env is MAIN else "127.0.0.1"}
    run = _launcher(["--rendezvous-timeout", "1", "true"],
                    _env(**env, MNP_INSECURE_RENDEZVOUS="1", MNP_RENDEZVOUS_PORT=str(port),
                         MNP_STATE_DIR=str(tmp_path)))
    assert run.returncode == 3, run.stderr
    assert (f"WARNING MNP_INSECURE_RENDEZVOUS=1: the rendezvous has no secret: anyone who "
            f"can reach port {port} can join this job") in run.stderr


ENV_OF_RANKS = ("import os; from mpi4py import MPI; print(MPI.COMM_WORLD.rank, "
                "'MNP_RENDEZVOUS_SECRET' in os.environ, "
                "any(os.environ['SEEN'] in v for v in os.environ.values() if v != "
                "os.environ['SEEN']), flush=True)")


@pytest.mark.mpi
def test_one_node_ranks_do_not_get_the_secret() -> None:
    run = _launcher(["python", "-c", ENV_OF_RANKS],
                    _env(MNP_RANKS_PER_NODE="2", MNP_RENDEZVOUS_SECRET=SECRET, SEEN=SECRET[:20]))
    assert run.returncode == 0, run.stderr
    assert sorted(run.stdout.splitlines()) == ["0 False False", "1 False False"]


RANKS = ("from mpi4py import MPI; import os, sys; c = MPI.COMM_WORLD; s = c.allreduce(c.rank); "
         "print(c.size, s, os.environ.get('AWS_BATCH_JOB_ID'), flush=True) if c.rank == 0 "
         "else None; sys.exit(int(sys.argv[1]))")


@pytest.mark.mpi
def test_one_node_runs_the_command_under_local_mpiexec() -> None:
    env = _env(MNP_RANKS_PER_NODE="3", AWS_BATCH_JOB_ID="j-123#0", AWS_BATCH_JOB_NUM_NODES="1")
    run = _launcher(["--", "python", "-c", RANKS, "0"], env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["3", "3", "j-123#0"]  # 3 ranks: 0+1+2
    assert "[node 0 job j-123#0 attempt 1]" in run.stderr
    assert "single node: 3 ranks" in run.stderr


@pytest.mark.mpi
def test_the_exit_code_is_the_programs() -> None:
    run = _launcher(["python", "-c", RANKS, "7"], _env(MNP_RANKS_PER_NODE="1"))
    assert run.returncode == 7, run.stderr


@pytest.mark.mpi
def test_a_rank_killed_by_a_signal_counts_as_a_lost_node() -> None:
    prog = ("from mpi4py import MPI; import os, time; c = MPI.COMM_WORLD; c.Barrier(); "
            "os.kill(os.getpid(), 9) if c.rank == 1 else time.sleep(30)")
    run = _launcher(["python", "-c", prog], _env(MNP_RANKS_PER_NODE="2"))
    assert run.returncode == 4, run.stderr
    assert "a rank was killed by signal 9" in run.stderr


SLEEPER = """
import signal, sys, time
from pathlib import Path
from mpi4py import MPI
rank = MPI.COMM_WORLD.Get_rank()
def stop(*_):
    time.sleep(1)  # a checkpoint takes a moment; the launcher must wait for it
    Path(sys.argv[1], f"stopped-{rank}").write_text("ok")
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
Path(sys.argv[1], f"started-{rank}").write_text("ok")
while True:
    time.sleep(0.05)
"""


@pytest.mark.mpi
def test_sigterm_reaches_every_rank_which_may_finish_its_checkpoint(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "python", "-c", SLEEPER,
                             str(tmp_path)], env=_env(MNP_RANKS_PER_NODE="2"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("started-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        kill_tree(proc.pid)
    assert proc.returncode == 143, err
    assert sorted(p.name for p in tmp_path.glob("stopped-*")) == ["stopped-0", "stopped-1"]
    assert "SIGTERM: forwarding to local ranks" in err


IGNORES_TERM = """
import signal, sys, time
from pathlib import Path
from mpi4py import MPI
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a checkpoint that would never end
Path(sys.argv[1], f"started-{MPI.COMM_WORLD.Get_rank()}").write_text("ok")
time.sleep(120)
"""


@pytest.mark.mpi
def test_ranks_still_running_after_the_term_grace_are_killed(tmp_path: Path) -> None:
    # MNP_TERM_GRACE=2: the launcher must end the run about 2 s after SIGTERM, not after the
    # default 30 s (the Spot job definition sets it below the instance's stop timeout).
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "python", "-c", IGNORES_TERM,
                             str(tmp_path)], env=_env(MNP_RANKS_PER_NODE="1",
                                                      MNP_TERM_GRACE="2"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("started-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        kill_tree(proc.pid)
    waited = time.monotonic() - sent
    assert proc.returncode == 143, err
    # At least the grace, and well short of the default 30 s (slack for a loaded machine).
    assert 2 <= waited < 15, (waited, err)
