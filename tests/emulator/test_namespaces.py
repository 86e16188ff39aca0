"""The network-namespace harness itself: Batch variables, isolation, faults, cleanup, CLI."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from emulator.namespaces import SUBNETS, Emulation, unavailable_reason

REPO = Path(__file__).resolve().parents[2]
_WHY = unavailable_reason()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(_WHY is not None, reason=f"{_WHY}")]

SHOW = ("import json, os, socket, subprocess, sys; print(json.dumps({'env': {k: v for k, v in "
        "os.environ.items() if k.startswith('AWS_BATCH_')}, 'host': socket.gethostname(), "
        "'peers': [socket.gethostbyname(h) for h in sys.argv[1:]], 'ecs': "
        "subprocess.run(['ip', '-o', '-4', 'addr', 'show', 'ecs-eth0'], capture_output=True, "
        "text=True).stdout.split()[3:4]}))")
SERVE = ("import socket, sys; s = socket.create_server(('0.0.0.0', 5000)); "
         "[(c := s.accept()[0]).sendall(sys.argv[1].encode()) or c.close() for _ in range(9)]")
ASK = ("import socket, sys\ntry:\n    s = socket.create_connection((sys.argv[1], 5000), "
       "timeout=2); print(s.recv(64).decode())\nexcept OSError as e:\n    print('failed', e)")


def _ns_gone(emu: Emulation) -> bool:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return (all(n.ns not in listed and n.veth not in links for n in emu.nodes)
            and emu.bridge not in links
            and not any(Path("/etc/netns", n.ns).exists() for n in emu.nodes))


def test_nodes_get_batch_variables_host_names_and_addresses(tmp_path: Path) -> None:
    with Emulation(3, job_id="j-1", attempt=2, log_dir=tmp_path) as emu:
        for n in emu.nodes:
            emu.start_node(n.index, [sys.executable, "-c", SHOW,
                                     *(m.hostname for m in emu.nodes)])
        assert emu.wait_all(30) == {0: 0, 1: 0, 2: 0}
        seen = {i: json.loads(emu.output(i)[0]) for i in range(3)}
        net = emu.subnet.rsplit(".", 1)[0]  # a /24 of 10.213.0.0/16 no other emulation holds
        assert ipaddress.ip_network(emu.subnet).subnet_of(SUBNETS)
    for i, got in seen.items():
        env = got["env"]
        assert env["AWS_BATCH_JOB_ID"] == f"j-1#{i}"
        assert env["AWS_BATCH_JOB_ATTEMPT"] == "2"
        assert env["AWS_BATCH_JOB_NODE_INDEX"] == str(i)
        assert env["AWS_BATCH_JOB_NUM_NODES"] == "3"
        assert env["AWS_BATCH_JOB_MAIN_NODE_INDEX"] == "0"
        # Batch gives the main node's address to the children only
        assert env.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS") == (
            None if i == 0 else f"{net}.1")
        assert got["host"] == f"ip-{net.replace('.', '-')}-{i + 1}"
        assert got["peers"] == [f"{net}.1", f"{net}.2", f"{net}.3"]
        # awsvpc's second interface, the same link-local address on every node
        assert got["ecs"] == ["169.254.172.2/22"]
    assert _ns_gone(emu)


def test_two_emulations_on_the_same_subnet_stay_apart_and_links_can_fail(tmp_path: Path) -> None:
    with Emulation(3, log_dir=tmp_path / "a", subnet="10.213.0.0/24") as a, \
            Emulation(2, log_dir=tmp_path / "b", subnet="10.213.0.0/24") as b:
        for emu, name in ((a, "from-a"), (b, "from-b")):
            emu.start_node(0, [sys.executable, "-c", SERVE, name])
        time.sleep(0.5)
        # the bridge has no address: the root namespace cannot reach the nodes
        addrs = subprocess.run(["ip", "-o", "addr", "show", "dev", a.bridge],
                               capture_output=True, text=True).stdout
        assert "inet " not in addrs
        a.link_down(2)
        for emu, i in ((a, 1), (a, 2), (b, 1)):
            emu.start_node(i, [sys.executable, "-c", ASK, "10.213.0.1"])
        # the servers keep running; only the clients end
        assert [emu.nodes[i].proc.wait(20) for emu, i in ((a, 1), (a, 2), (b, 1))] == [0, 0, 0]
        assert a.output(1)[0].strip() == "from-a"
        assert b.output(1)[0].strip() == "from-b"
        assert a.output(2)[0].startswith("failed")  # its link is down: silence, then timeout
    assert _ns_gone(a) and _ns_gone(b)


def test_cleanup_happens_when_the_test_body_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), Emulation(2, log_dir=tmp_path) as emu:
        emu.start_node(1, [sys.executable, "-c", "import time; time.sleep(600)"])
        pid = emu.nodes[1].proc.pid
        deadline = time.monotonic() + 30  # `ip netns exec` may take a moment on a busy machine
        while not emu.pids(1) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert emu.pids(1)
        raise RuntimeError("boom")
    assert _ns_gone(emu)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_leftovers_of_a_killed_owner_are_removed_by_the_next_emulation(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from emulator.namespaces import Emulation; "
         "e = Emulation(2, shared_dir=sys.argv[1], log_dir=sys.argv[1]); e.setup(); "
         "print(e.tag, flush=True); time.sleep(600)", str(tmp_path / "owner")],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    with owner.stdout:
        tag = owner.stdout.readline().strip()
    owner.send_signal(signal.SIGKILL)  # no atexit, no cleanup
    owner.wait()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"mnp{tag}n0" in listed
    assert list(Path(tempfile.gettempdir()).glob(f"mnp-state-{tag}-*"))
    with Emulation(1, log_dir=tmp_path):
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"mnp{tag}" not in listed
        assert not list(Path(tempfile.gettempdir()).glob(f"mnp-state-{tag}-*"))


def test_command_line_runs_a_job_and_returns_the_main_nodes_code(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MNP_HEARTBEAT_INTERVAL": "0.5"}
    prog = ("from mpi4py import MPI; import sys; c = MPI.COMM_WORLD; s = c.allreduce(1); "
            "print('sum', s) if c.rank == 0 else None; sys.exit(5)")
    run = subprocess.run([sys.executable, "-m", "emulator", "--nodes", "2",
                          "--shared-dir", str(tmp_path), "--", "python", "-c", prog],
                         env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 5, run.stderr
    assert run.stdout.split() == ["sum", "2"]
    assert "[node 1 job " in run.stderr and "[node 0 job " in run.stderr
    usage = subprocess.run([sys.executable, "-m", "emulator", "--nodes", "2"],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "give the job's command after --" in usage.stderr


def test_every_node_of_a_run_gets_the_same_random_secret_and_runs_differ() -> None:
    first, second = Emulation(3), Emulation(3)
    secrets = {first.node_env(i)["MNP_RENDEZVOUS_SECRET"] for i in range(3)}
    assert secrets == {first.secret} and len(first.secret) == 64
    assert second.secret != first.secret
    # the caller's environment may replace it (or blank it, to see the refusal)
    assert Emulation(2, env={"MNP_RENDEZVOUS_SECRET": "x" * 20}).node_env(1)[
        "MNP_RENDEZVOUS_SECRET"] == "x" * 20


def test_concurrent_emulations_get_subnets_and_host_names_of_their_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from emulator import namespaces

    # Two /24s to choose from: with one held by a running emulation, the next takes the other.
    monkeypatch.setattr(namespaces, "SUBNETS", ipaddress.ip_network("10.213.8.0/23"))
    with Emulation(2, log_dir=tmp_path / "a") as a:
        for _ in range(20):
            assert namespaces.free_subnet() != a.subnet
        with Emulation(2, log_dir=tmp_path / "b") as b:
            assert {a.subnet, b.subnet} == {"10.213.8.0/24", "10.213.9.0/24"}
            assert not {n.hostname for n in a.nodes} & {n.hostname for n in b.nodes}
            with pytest.raises(RuntimeError, match="every /24 of 10.213.8.0/23 is held"):
                Emulation(1)
    assert _ns_gone(a) and _ns_gone(b)


@pytest.mark.parametrize(("args", "named"), [
    (["--nodes", "0"], "node count 0 is out of range: 1..254"),
    (["--nodes", "-1"], "node count -1 is out of range: 1..254"),
    (["--nodes", "1000"], "node count 1000 is out of range: 1..254"),
    (["--nodes", "x"], "'x' is not a whole number"),
    (["--max-delay", "-5"], "max delay -5 is out of range: at least 0"),
    (["--max-delay", "nan"], "'nan'"),
    (["--ranks-per-node", "0"], "ranks per node 0 is out of range: at least 1"),
])
def test_command_line_refuses_bad_numbers_in_one_line(args: list[str], named: str) -> None:
    run = subprocess.run([sys.executable, "-m", "emulator", *args, "--", "true"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and named in errors[0], run.stderr


def test_a_negative_max_delay_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with Emulation(2, log_dir=tmp_path, max_delay=-5) as emu:
        with pytest.raises(ValueError, match="max_delay -5"):
            emu.start(["true"])
        assert all(n.proc is None for n in emu.nodes)


# Every rank passes a barrier (so prterun, sshd, prted and the ranks all run), then waits.
HOLD = ("from mpi4py import MPI; import time; c = MPI.COMM_WORLD; c.Barrier(); "
        "print('ready', flush=True) if c.rank == 0 else None; time.sleep(600)")


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie is dead: its PID 1 may take a while to reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _netns_leftovers(tag: str, pids: set[int], state: Path) -> list[str]:
    """What of emulation `tag` still exists: namespaces, links, rules, processes, key dirs."""
    left = [ns for ns in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                        text=True).stdout.split() if ns.startswith(f"mnp{tag}")]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left += [f"link {word}" for word in (f"mb{tag}", f"mv{tag}") if word in links]
    rules = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True,
                           text=True).stdout if shutil.which("iptables") else ""  # none added
    left += [f"rule {line}" for line in rules.splitlines() if f"mb{tag}" in line]
    left += [f"pid {pid}" for pid in pids if _alive(pid)]
    left += [str(path) for path in (state, Path("/etc/netns")) if path.exists()
             and (path == state or any(path.glob(f"mnp{tag}*")))]
    left += [f"owner {tag}" for _ in Path("/run/mnp-emulate").glob(tag)]
    return left


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_to_the_command_line_cleans_up_as_ctrl_c_does(
        sig: signal.Signals, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MNP_HEARTBEAT_INTERVAL": "0.5"}
    env.pop("MNP_STATE_DIR", None)
    emu = subprocess.Popen([sys.executable, "-m", "emulator", "--nodes", "3", "--max-delay",
                            "0.2", "--shared-dir", str(tmp_path), "--", "python", "-c", HOLD],
                           env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        first = emu.stderr.readline()
        assert first.startswith("emulate: 3 nodes on bridge mb"), first
        tag = first.split(" bridge mb")[1].split(",")[0]
        assert emu.stdout.readline().strip() == "ready"
        pids = {int(p) for i in range(3) for p in subprocess.run(
            ["ip", "netns", "pids", f"mnp{tag}n{i}"], capture_output=True,
            text=True).stdout.split()}
        names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in pids
                 if Path(f"/proc/{pid}/comm").exists()}
        assert {"sshd", "prted", "prterun"} <= names, names  # the whole MPI world is up
        state = next(Path(tempfile.gettempdir()).glob(f"mnp-state-{tag}-*"))
        assert any(state.glob("mnp-*-a1-n0-*/id_ed25519"))  # the main node's private key
        emu.send_signal(sig)
        _, err = emu.communicate(timeout=120)
    finally:
        if emu.poll() is None:
            emu.kill()
    assert emu.returncode == 128 + sig, err
    assert f"stopped by {signal.Signals(sig).name}" in err
    assert _netns_leftovers(tag, pids, state) == []
