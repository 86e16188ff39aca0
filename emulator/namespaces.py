"""Emulate an AWS Batch multi-node parallel job on one machine with network namespaces."""

from __future__ import annotations

import argparse
import atexit
import glob
import ipaddress
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from emulator import netns
from emulator.batchorder import BatchNodeGroup
from emulator.interrupts import exit_code, stop_signals_interrupt
from emulator.netns import cleanup_stale, unavailable_reason
from launcher.contract import OUTPUT_PATH_ENV, RANKS_PER_NODE_ENV, RENDEZVOUS_SECRET_ENV
from launcher.inputs import finite_number_arg, mpi_starter_refusal, whole_number_arg

__all__ = ["SUBNETS", "Emulation", "Node", "cleanup_stale", "main", "unavailable_reason"]

# Each emulation takes a /24 of this that no live one holds. PRRTE and PMIx name their files
# in the shared /tmp after the host names, which the emulator makes from the addresses.
SUBNETS = ipaddress.ip_network("10.213.0.0/16")
# Every node has an address of the emulation's /24 (network and broadcast excluded).
MAX_NODES = 254
STATE_DIR_ENV = "MNP_STATE_DIR"  # where the launcher makes its per-node state (roles.py)
# Batch gives these to the nodes of a multi-node parallel job only, never to array children.
MNP_ONLY = ("AWS_BATCH_JOB_NUM_NODES", "AWS_BATCH_JOB_NODE_INDEX",
            "AWS_BATCH_JOB_MAIN_NODE_INDEX", "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS")


def free_subnet() -> str:
    """A /24 of SUBNETS that no live emulation on this machine has (owner files record them)."""
    taken = {subnet for _, subnet in netns.owners().values()}
    free = [str(n) for n in SUBNETS.subnets(new_prefix=24) if str(n) not in taken]
    if not free:
        raise RuntimeError(f"every /24 of {SUBNETS} is held by a running emulation")
    return random.SystemRandom().choice(free)  # two starting at once rarely pick the same


@dataclass
class Node:
    """One emulated Batch node: its namespace, address and launcher process."""

    index: int
    ns: str
    veth: str
    ip: str
    hostname: str
    proc: subprocess.Popen[bytes] | None = None
    started_at: float | None = None
    files: list = field(default_factory=list)


class Emulation(BatchNodeGroup):
    """N network namespaces on a private bridge, each running the launcher as a Batch node."""

    def __init__(
        self,
        nodes: int,
        *,
        job_id: str | None = None,
        attempt: int = 1,
        shared_dir: Path | None = None,
        log_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        subnet: str | None = None,
        max_delay: float = 1.0,
        seed: int | None = None,
        capture: bool = True,
        secret: str | None = None,
        gang: bool = False,
    ) -> None:
        if nodes < 1:
            raise ValueError("nodes must be at least 1")
        subnet = subnet or free_subnet()
        net = ipaddress.ip_network(subnet)
        if net.num_addresses < nodes + 2:
            raise ValueError(f"subnet {subnet} is too small for {nodes} nodes")
        self.tag = secrets.token_hex(3)
        self.job_id = job_id or str(uuid.uuid4())
        self.attempt = attempt
        # The same on every node: what the stack's Secrets Manager secret is. Attempts of one
        # job must share it (their checkpoints are sealed with a key derived from it): pass it.
        self.secret = secret or secrets.token_hex(32)
        self.extra_env = dict(env or {})
        # An array job of single-node jobs (a Spot gang) instead of a multi-node parallel job.
        self.gang = gang
        self.max_delay = max_delay
        self.capture = capture
        self._rng = random.Random(seed)
        self._owned: list[Path] = []
        if shared_dir is None:
            shared_dir = Path(tempfile.mkdtemp(prefix=f"mnp-efs-{self.tag}-"))
            self._owned.append(shared_dir)
        self.shared_dir = Path(shared_dir)
        if log_dir is None:
            log_dir = Path(tempfile.mkdtemp(prefix=f"mnp-logs-{self.tag}-"))
            self._owned.append(log_dir)
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # Where the launchers make their 0700 key directories, which close() removes when
        # it killed them first; one of our own (made by setup) unless the caller names one.
        given = self.extra_env.get(STATE_DIR_ENV) or os.environ.get(STATE_DIR_ENV)
        self.state_dir: Path | None = Path(given) if given else None
        self.bridge = f"mb{self.tag}"
        hosts = list(net.hosts())
        self.prefixlen = net.prefixlen
        self.subnet = str(net)
        self.nodes = [
            Node(i, f"mnp{self.tag}n{i}", f"mv{self.tag}{i}", str(hosts[i]),
                 "ip-" + str(hosts[i]).replace(".", "-"))
            for i in range(nodes)
        ]
        self._closed = False
        self._up = False

    # -- setup and teardown ---------------------------------------------------------------
    def setup(self) -> None:
        """Create the bridge, namespaces, veth pairs and per-node /etc/hosts."""
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        cleanup_stale()
        netns.claim(self.tag, self.subnet)
        self._up = True
        if self.state_dir is None:
            self.state_dir = Path(tempfile.mkdtemp(prefix=netns.state_prefix(self.tag)))
            self._owned.append(self.state_dir)
        atexit.register(self.close)
        try:
            netns.build(self.bridge, self.prefixlen, self.nodes)
        except BaseException:  # a failure or a stop signal: undo what was made so far
            self.close()
            raise

    def close(self) -> None:
        """Kill every process in the namespaces and remove namespaces, links and files."""
        if self._closed:
            return
        self._closed = True
        self.join_starter(self.max_delay * len(self.nodes) + 5)
        if self._up:
            for n in self.nodes:
                self.kill_node(n.index)
            for n in self.nodes:
                if n.proc is not None:
                    try:
                        n.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        n.proc.kill()
                for f in n.files:
                    f.close()
            netns.remove(self.tag, [n.ns for n in self.nodes])
        # roles.state_dir's names: mnp-<job>-a<attempt>-n<index>-<random>
        job = glob.escape(self.job_id.split("#")[0].split(":")[0])
        for path in self.state_dir.glob(f"mnp-{job}-a{self.attempt}-n*-*") \
                if self.state_dir else ():
            shutil.rmtree(path, ignore_errors=True)
        for path in self._owned:
            shutil.rmtree(path, ignore_errors=True)
        atexit.unregister(self.close)

    # -- running ----------------------------------------------------------------------------
    def node_env(self, index: int) -> dict[str, str]:
        """The environment Batch gives node `index` (children alone get the main address)."""
        env = dict(os.environ)
        # Namespaces need root, so the launchers run as root: Open MPI must be told it is fine.
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
        env[RENDEZVOUS_SECRET_ENV] = self.secret  # `env` may replace or blank it
        if self.state_dir is not None:
            env[STATE_DIR_ENV] = str(self.state_dir)
        env.update(self.extra_env)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        if self.gang:
            for name in MNP_ONLY:
                env.pop(name, None)
            env.setdefault("MNP_GANG_DIR", str(self.shared_dir / ".mnp" / "gang"))
            return {**env, **self.gang_env(index)}
        env.update({
            "AWS_BATCH_JOB_ID": f"{self.job_id}#{index}",
            "AWS_BATCH_JOB_ATTEMPT": str(self.attempt),
            "AWS_BATCH_JOB_NODE_INDEX": str(index),
            "AWS_BATCH_JOB_NUM_NODES": str(len(self.nodes)),
            "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
            "AWS_BATCH_CE_NAME": "emulated",
            "AWS_BATCH_JQ_NAME": "emulated",
        })
        env.pop("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS", None)
        if index != 0:
            env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = self.nodes[0].ip
        return env

    def gang_env(self, index: int) -> dict[str, str]:
        """What Batch gives array child `index` (docs.aws.amazon.com/batch/latest/userguide/
        job_env_vars.html, array_jobs.html: id `<parent>:<index>`), plus the gang's opt-in and
        nothing of a multi-node job's."""
        return {"AWS_BATCH_JOB_ID": f"{self.job_id}:{index}",
                "AWS_BATCH_JOB_ATTEMPT": str(self.attempt),
                "AWS_BATCH_JOB_ARRAY_INDEX": str(index),
                "AWS_BATCH_JOB_ARRAY_SIZE": str(len(self.nodes)),
                "AWS_BATCH_CE_NAME": "emulated", "AWS_BATCH_JQ_NAME": "emulated",
                "MNP_GANG": "1"}

    def entrypoint(self, cmd: Sequence[str], launcher_args: Sequence[str] = ()) -> list[str]:
        """The image's ENTRYPOINT followed by the job's command."""
        return [sys.executable, "-m", "launcher", *launcher_args, *cmd]

    def start_node(self, index: int, argv: Sequence[str], cwd: Path | None = None) -> None:
        """Start `argv` in node `index`'s namespace under its own host name."""
        n = self.nodes[index]
        wrap = ["ip", "netns", "exec", n.ns, "unshare", "--uts", "--",
                "sh", "-c", 'hostname "$0" && exec "$@"', n.hostname, *argv]
        out = err = None
        if self.capture:
            out = open(self.log_dir / f"node{index}.out", "wb")  # noqa: SIM115
            err = open(self.log_dir / f"node{index}.err", "wb")  # noqa: SIM115
            n.files += [out, err]
        n.started_at = time.monotonic()
        n.proc = subprocess.Popen(wrap, env=self.node_env(index), stdout=out, stderr=err,
                                  stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)

    def start(self, cmd: Sequence[str], *, launcher_args: Sequence[str] = (),
              skip: Iterable[int] = (), cwd: Path | None = None) -> None:
        """Start the main node now and the children in random order with random delays."""
        argv = self.entrypoint(cmd, launcher_args)
        skipped = set(skip)
        self.start_in_order(0, [n.index for n in self.nodes[1:] if n.index not in skipped],
                            lambda index: self.start_node(index, argv, cwd))

    def wait(self, timeout: float) -> int:
        """Wait for the main node's launcher; its exit code is the job's."""
        main = self.nodes[0].proc
        assert main is not None, "start() first"
        return main.wait(timeout=timeout)

    def _started(self) -> list[int]:
        return [n.index for n in self.nodes if n.proc is not None]

    def _wait_index(self, index: int, timeout: float) -> int:
        proc = self.nodes[index].proc
        assert proc is not None
        return proc.wait(timeout=timeout)

    # -- faults and inspection --------------------------------------------------------------
    def pids(self, index: int) -> list[int]:
        """Processes living in node `index`'s namespace."""
        res = netns.ip("netns", "pids", self.nodes[index].ns, check=False)
        return [int(p) for p in res.stdout.split()]

    def kill_node(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Signal every process of node `index` (SIGKILL: the node dies at once)."""
        for _ in range(3):  # a dying sshd may still fork; sweep until the namespace is empty
            pids = self.pids(index)
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if sig != signal.SIGKILL:
                return
            time.sleep(0.1)

    def signal_launcher(self, index: int, sig: int = signal.SIGTERM) -> None:
        """Signal node `index`'s launcher alone, as Batch signals a container's PID 1."""
        proc = self.nodes[index].proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)

    def link_down(self, index: int) -> None:
        """Take node `index`'s link down: it goes silent, no reset reaches its peers."""
        netns.ip("link", "set", self.nodes[index].veth, "down")

    def output(self, index: int) -> tuple[str, str]:
        """Captured (stdout, stderr) of node `index` so far."""
        read = lambda s: (self.log_dir / f"node{index}.{s}").read_text(errors="replace")  # noqa: E731
        return read("out"), read("err")


def _ranged(low: float, high: float | None, kind: type, what: str) -> Callable[[str], float]:
    """An argparse type: a finite `kind` (int or float) within [low, high], named in errors."""

    def parse(text: str) -> float:
        number = (whole_number_arg if kind is int else finite_number_arg)(text)
        if number < low or (high is not None and number > high):
            allowed = f"{low:g}..{high:g}" if high is not None else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"{what} {number:g} is out of range: {allowed}")
        return number

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m emulator --nodes N [options] -- CMD...`: run CMD as a Batch MNP job."""
    # allow_abbrev=False: a misspelt option is an error, never another option's prefix.
    p = argparse.ArgumentParser(prog="python -m emulator", description=main.__doc__,
                                allow_abbrev=False)
    p.add_argument("--nodes", type=_ranged(1, MAX_NODES, int, "node count"), default=3,
                   help=f"number of emulated nodes, 1..{MAX_NODES} (default 3; Batch allows "
                   "up to 1000, the emulator gives every node an address of one /24)")
    p.add_argument("--ranks-per-node", type=_ranged(1, None, int, "ranks per node"), default=1,
                   help="MNP_RANKS_PER_NODE (default 1)")
    p.add_argument("--attempt", type=_ranged(1, None, int, "attempt"), default=1,
                   help="AWS_BATCH_JOB_ATTEMPT (default 1)")
    p.add_argument("--job-id", help="AWS_BATCH_JOB_ID (default: a random uuid)")
    p.add_argument("--shared-dir", type=Path, help="stand-in for EFS (default: a temp dir)")
    p.add_argument("--max-delay", type=_ranged(0, None, float, "max delay"), default=1.0,
                   help="max child start delay in s (default 1)")
    p.add_argument("--timeout", type=_ranged(0, None, float, "timeout"), default=3600,
                   help="give up after this many s")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD... (the job's command)")
    a = p.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        p.print_usage(sys.stderr)
        print("error: give the job's command after --", file=sys.stderr)
        return 2
    refusal = mpi_starter_refusal(cmd)  # every node's launcher would refuse it alike
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    reason = unavailable_reason()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    try:
        with stop_signals_interrupt():
            return _emulate(a, cmd)
    except KeyboardInterrupt as stop:  # after Emulation.close: nothing of the run is left
        print(f"emulate: stopped by {stop or 'SIGINT'}; cleaned up", file=sys.stderr)
        return exit_code(stop)


def _emulate(a: argparse.Namespace, cmd: list[str]) -> int:
    # Kept after the run (unlike a library Emulation's default): it holds the results.
    shared = a.shared_dir or Path(tempfile.mkdtemp(prefix="mnp-efs-"))
    env = {RANKS_PER_NODE_ENV: str(a.ranks_per_node),
           OUTPUT_PATH_ENV: os.environ.get(OUTPUT_PATH_ENV, str(shared / "output"))}
    with Emulation(a.nodes, job_id=a.job_id, attempt=a.attempt, shared_dir=shared,
                   env=env, max_delay=a.max_delay, capture=False) as emu:
        print(f"emulate: {a.nodes} nodes on bridge {emu.bridge}, job {emu.job_id}, "
              f"OUTPUT_PATH={env['OUTPUT_PATH']}", file=sys.stderr)
        emu.start(cmd, cwd=Path.cwd())
        try:
            return emu.wait(a.timeout)
        except subprocess.TimeoutExpired:
            print(f"emulate: main node still running after {a.timeout:g}s", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            emu.kill_node(0, signal.SIGTERM)  # the launcher's own stop path first
            raise

if __name__ == "__main__":
    sys.exit(main())
