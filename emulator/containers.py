"""A Batch multi-node job as containers of the real image on one machine.

Each node is what ECS makes of an awsvpc task: a pause container that owns the network
namespace (its own address on a user-defined bridge, standing for the task's ENI, its own
host name) plus `ecs-eth0`, and the job's container joined to it with the job definition's
user, environment, secrets, Linux parameters, ulimits and resources. The main node starts
first, children in random order after random delays; the job's exit code is the main node's.
"""

from __future__ import annotations

import atexit
import os
import random
import re
import secrets
import subprocess
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from emulator.awsvpc import ecs_eth0_commands
from emulator.batchorder import BatchNodeGroup
from emulator.engine import EngineError, docker
from emulator.jobdef import LocalJob, resource
from launcher.contract import RENDEZVOUS_SECRET_ENV

LABEL_RUN, LABEL_OWNER = "mnp.run", "mnp.owner"
STOP_GRACE = 30  # ECS sends SIGKILL 30 s after SIGTERM (ECS_CONTAINER_STOP_TIMEOUT default)
_refused_ulimits: dict[tuple[str, str], str | None] = {}


@dataclass
class ContainerNode:
    """One node: its pause (network) container, the job's container, address and logs."""

    index: int
    ip: str
    hostname: str
    pause: str
    name: str
    task_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: bool = False


def host_memory_mib() -> int:
    """This machine's memory in MiB (the cap for a node's MEMORY)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 1 << 20


def _refused(image: str, limit: str) -> str | None:
    """Why the engine refuses `--ulimit limit` here (None when it accepts it); cached."""
    key = (image, limit)
    if key not in _refused_ulimits:
        res = docker("run", "--rm", "--ulimit", limit, "--entrypoint", "true", image,
                     check=False, timeout=60)
        found = re.search(r"(error setting rlimit[^:]*: [^:]+)", res.stderr)
        _refused_ulimits[key] = None if res.returncode == 0 else (
            found.group(1) if found else res.stderr.strip()[-200:])
    return _refused_ulimits[key]


def stack_secret_values(path: Path) -> dict[str, str]:
    """The local stand-in for the stack's Secrets Manager secret, kept at `path` (0600, made
    once): the same for every job and attempt of the local stack, as on Batch, so that a
    retry or `--restart-from` accepts the checkpoints sealed under a key derived from it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return {RENDEZVOUS_SECRET_ENV: path.read_text().strip()}


def cleanup_stale() -> None:
    """Remove containers and networks of runs whose owning process is gone."""
    res = docker("ps", "-a", "--filter", f"label={LABEL_OWNER}", "--format",
                 f'{{{{.ID}}}} {{{{.Label "{LABEL_OWNER}"}}}} {{{{.Label "{LABEL_RUN}"}}}}',
                 check=False)
    dead: set[str] = set()
    for line in res.stdout.splitlines():
        cid, owner, run = (line.split() + ["", ""])[:3]
        try:
            os.kill(int(owner), 0)
        except (ProcessLookupError, ValueError):
            docker("rm", "-f", cid, check=False)
            dead.add(run)
    for run in dead:
        docker("network", "rm", f"mnp-{run}", check=False)


class ContainerJob(BatchNodeGroup):
    """Run `job` (from emulator.jobdef) as containers of `image`; a context manager."""

    def __init__(self, job: LocalJob, image: str, *, efs_dir: Path, log_dir: Path,
                 job_id: str | None = None, attempt: int = 1, max_delay: float = 1.0,
                 seed: int | None = None, secret_values: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None, notes: list[str] | None = None) -> None:
        self.job, self.image, self.attempt = job, image, attempt
        self.job_id = job_id or str(uuid.uuid4())
        self.efs_dir, self.log_dir = Path(efs_dir), Path(log_dir)
        self.max_delay, self._rng = max_delay, random.Random(seed)
        self.secret_values = dict(secret_values or {})
        self.extra_env = dict(env or {})
        self.notes = notes if notes is not None else []  # what differs from Batch, said once
        self.tag = secrets.token_hex(3)
        self.network = f"mnp-{self.tag}"
        self.nodes: list[ContainerNode] = []
        self._closed = False

    # -- setup and teardown ------------------------------------------------------------------
    # An awsvpc task's second interface (FACTS.md); a host-network job has none.
    awsvpc = True

    def labels(self) -> list[str]:
        """Labels that tie a container to this run (removed with it, or by cleanup_stale)."""
        return ["--label", f"{LABEL_RUN}={self.tag}", "--label", f"{LABEL_OWNER}={os.getpid()}"]

    def _create_network(self) -> str:
        """A user-defined bridge on a free /24 of 10.214.0.0/16 (the job's subnet)."""
        third = list(range(256))
        self._rng.shuffle(third)
        for octet in third[:32]:
            subnet = f"10.214.{octet}.0/24"
            res = docker("network", "create", "--driver", "bridge", "--subnet", subnet,
                         *self.labels(), self.network, check=False)
            if res.returncode == 0:
                return subnet
            if "overlap" not in res.stderr:
                raise EngineError(f"docker network create failed: {res.stderr.strip()}")
        raise EngineError("no free /24 in 10.214.0.0/16 for the job's network")

    def setup(self) -> None:
        """Network, one pause container per node with `ecs-eth0`, the EFS stand-in."""
        cleanup_stale()
        atexit.register(self.close)
        try:
            prefix = self._create_network().rsplit(".", 1)[0]
            for i in range(self.job.num_nodes):
                ip = f"{prefix}.{i + 2}"  # .1 is the bridge's gateway
                node = ContainerNode(i, ip, "ip-" + ip.replace(".", "-"),
                                     f"{self.network}-p{i}", f"{self.network}-n{i}")
                docker("run", "-d", "--name", node.pause, "--network", self.network,
                       "--ip", ip, "--hostname", node.hostname, *self.labels(),
                       "--entrypoint", "sleep", self.image, "infinity")
                self.nodes.append(node)
                for args in ecs_eth0_commands() if self.awsvpc else ():
                    self._in_netns(node, "ip", *args)
            self._prepare_efs()
            names = sorted({s["name"] for c in self.job.containers for s in c.get("secrets", [])
                            if s["name"] not in self.secret_values})
            if names:
                self._note(f"secrets {', '.join(names)}: a random local value for this run "
                           "(on Batch: from Secrets Manager)")
        except BaseException:
            self.close()
            raise

    def _prepare_efs(self) -> None:
        self.efs_dir.mkdir(parents=True, exist_ok=True)
        uid, gid = self.job.owner
        try:
            os.chown(self.efs_dir, uid, gid)
        except PermissionError:
            self.notes.append(f"cannot give {self.efs_dir} to uid {uid}: the job's user may "
                              "not be able to write there (run as root)")

    def _pid(self, name: str) -> int:
        return int(docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip())

    def _in_netns(self, node: ContainerNode, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", "-t", str(self._pid(node.pause)), "-n", *argv],
                              capture_output=True, text=True, check=True)

    def close(self) -> None:
        """Collect the logs, then remove every container and the network of this run."""
        if self._closed:
            return
        self._closed = True
        self.join_starter(self.max_delay * self.job.num_nodes + 5)
        self.write_logs()
        ids = docker("ps", "-aq", "--filter", f"label={LABEL_RUN}={self.tag}",
                     check=False).stdout.split()
        if ids:
            docker("rm", "-f", *ids, check=False, timeout=120)
        docker("network", "rm", self.network, check=False)
        atexit.unregister(self.close)

    # -- running -----------------------------------------------------------------------------
    def node_env(self, index: int) -> dict[str, str]:
        """The job definition's environment and secrets, then the variables Batch sets."""
        return {**self.definition_env(index), **self.batch_env(index)}

    def definition_env(self, index: int) -> dict[str, str]:
        """Node `index`'s environment and secrets from the job definition and the request."""
        container = self.job.containers[index]
        env = {e["name"]: e["value"] for e in container.get("environment", [])}
        for s in container.get("secrets", []):
            env[s["name"]] = self.secret_values.setdefault(s["name"], secrets.token_hex(32))
        if RENDEZVOUS_SECRET_ENV not in env:
            # The launcher refuses a multi-node job without it; the stack's job definition
            # brings it from Secrets Manager, so a hand-made one gets the same per run here.
            env[RENDEZVOUS_SECRET_ENV] = self.secret_values.setdefault(RENDEZVOUS_SECRET_ENV,
                                                                   secrets.token_hex(32))
            self._note(f"the job definition has no {RENDEZVOUS_SECRET_ENV} secret: each run "
                       "gives every node one random value, as a `secrets` entry would")
        env.update(self.extra_env)
        return env

    def batch_env(self, index: int) -> dict[str, str]:
        """What Batch sets in a multi-node job's node `index` (job_env_vars.html)."""
        env = {
            "AWS_BATCH_JOB_ID": f"{self.job_id}#{index}",
            "AWS_BATCH_JOB_ATTEMPT": str(self.attempt),
            "AWS_BATCH_JOB_NODE_INDEX": str(index),
            "AWS_BATCH_JOB_NUM_NODES": str(self.job.num_nodes),
            "AWS_BATCH_JOB_MAIN_NODE_INDEX": str(self.job.main_node),
            "AWS_BATCH_CE_NAME": "local", "AWS_BATCH_JQ_NAME": "local",
            "AWS_EXECUTION_ENV": "AWS_ECS_EC2",
        }
        if index != self.job.main_node:  # Batch gives the main address to children only
            env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = self.nodes[
                self.job.main_node].ip
        return env

    def _limits(self, container: dict) -> list[str]:
        """Resources, Linux parameters and ulimits as `docker run` flags (capped here)."""
        args: list[str] = []
        vcpus, memory = resource(container, "VCPU"), resource(container, "MEMORY")
        if vcpus:  # ECS turns vCPUs into CPU shares (1024 each), a weight, not a limit
            args += ["--cpu-shares", str(1024 * vcpus)]
        if memory:
            cap = host_memory_mib()
            if memory > cap:
                self._note(f"MEMORY {memory} MiB is more than this machine's {cap} MiB: capped")
                memory = cap
            args += ["--memory", f"{memory}m"]
        linux = container.get("linuxParameters", {})
        if linux.get("sharedMemorySize"):
            args += ["--shm-size", f"{int(linux['sharedMemorySize'])}m"]
        if linux.get("initProcessEnabled"):
            args.append("--init")
        for dev in linux.get("devices", []):
            args += ["--device", f"{dev['hostPath']}:{dev.get('containerPath', dev['hostPath'])}"]
        for u in container.get("ulimits", []):
            limit = f"{u['name']}={u['softLimit']}:{u['hardLimit']}"
            why = _refused(self.image, limit)
            if why:
                self._note(f"ulimit {limit} is refused by this machine ({why}): the local "
                           "run keeps the engine's default; on Batch the job definition's "
                           "value applies")
            else:
                args += ["--ulimit", limit]
        if container.get("privileged"):
            args.append("--privileged")
        return args

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def efs_mounts(self, index: int | None = None) -> list[str]:
        """`-v` flags of node `index`'s (default: the main node's) EFS mount points."""
        return self._mounts(self.job.containers[self.job.main_node if index is None else index])

    def _mounts(self, container: dict) -> list[str]:
        volumes = {v["name"]: v for v in container.get("volumes", [])}
        args: list[str] = []
        for mp in container.get("mountPoints", []):
            volume = volumes.get(mp["sourceVolume"], {})
            if "efsVolumeConfiguration" not in volume:
                raise EngineError(f"volume {mp['sourceVolume']!r} is not EFS: run-local "
                                  "stands in for EFS volumes only")
            ro = ":ro" if mp.get("readOnly") else ""
            args += ["-v", f"{self.efs_dir}:{mp['containerPath']}{ro}"]
        return args

    def start_node(self, index: int) -> None:
        """Start node `index`'s job container in its task's network namespace."""
        node, container = self.nodes[index], self.job.containers[index]
        env_args = [a for k, v in self.node_env(index).items() for a in ("-e", f"{k}={v}")]
        user = ["--user", container["user"]] if container.get("user") else []
        docker("run", "-d", "--name", node.name, "--network", f"container:{node.pause}",
               *self.labels(), *user, *self._limits(container), *self._mounts(container),
               *env_args, self.image, *container.get("command", []))
        node.started = True

    def start(self, skip: Iterable[int] = ()) -> None:
        """The main node now, the children in random order after random delays."""
        main, skipped = self.job.main_node, set(skip)
        self.start_in_order(main, [n.index for n in self.nodes
                                   if n.index != main and n.index not in skipped])

    def wait(self, timeout: float) -> int:
        """The main node's exit code (subprocess.TimeoutExpired after `timeout` s)."""
        return self._wait_index(self.job.main_node, timeout)

    def _start_index(self, index: int) -> None:
        self.start_node(index)

    def _started(self) -> list[int]:
        return [n.index for n in self.nodes if n.started]

    def _wait_index(self, index: int, timeout: float) -> int:
        res = subprocess.run(["docker", "wait", self.nodes[index].name], capture_output=True,
                             text=True, timeout=timeout, check=True)
        return int(res.stdout.strip())

    def running(self) -> list[int]:
        """Indices of nodes whose job container still runs."""
        names = docker("ps", "--filter", f"label={LABEL_RUN}={self.tag}", "--format",
                       "{{.Names}}").stdout.split()
        return [n.index for n in self.nodes if n.name in names]

    # -- faults ------------------------------------------------------------------------------
    def kill_node(self, index: int) -> None:
        """SIGKILL node `index`'s container: the node is gone at once."""
        docker("kill", self.nodes[index].name, check=False)

    def link_down(self, index: int) -> None:
        """Take the host end of node `index`'s ENI down: silence, no reset reaches anyone."""
        # The container's own sysfs names its eth0's peer; only a port of this job's bridge
        # is ever touched.
        peer = docker("exec", self.nodes[index].pause, "cat",
                      "/sys/class/net/eth0/iflink").stdout.strip()
        bridge = "br-" + docker("network", "inspect", "-f", "{{.Id}}",
                                self.network).stdout.strip()[:12]
        ports = subprocess.run(["ip", "-o", "link", "show", "master", bridge],
                               capture_output=True, text=True, check=True).stdout
        for line in ports.splitlines():
            number, name = line.split(":")[:2]
            if number.strip() == peer:
                subprocess.run(["ip", "link", "set", name.strip().split("@")[0], "down"],
                               check=True, capture_output=True)
                return
        raise EngineError(f"node {index}'s eth0 (peer {peer}) is not a port of {bridge}")

    def stop_job(self, grace: float = STOP_GRACE) -> None:
        """As Batch terminates a job: SIGTERM to every container, SIGKILL `grace` s later."""
        threads = [threading.Thread(target=docker, args=("stop", "-t", str(int(grace)), n.name),
                                    kwargs={"check": False, "timeout": grace + 60})
                   for n in self.nodes if n.started]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    # -- logs --------------------------------------------------------------------------------
    def stream_name(self, index: int) -> str:
        """The CloudWatch stream Batch's awslogs driver would write: prefix/default/task."""
        options = self.job.containers[index].get("logConfiguration", {}).get("options", {})
        prefix = options.get("awslogs-stream-prefix", self.job.name)
        return f"{prefix}/default/{self.nodes[index].task_id}"

    def output(self, index: int) -> tuple[str, str]:
        """Node `index`'s (stdout, stderr) so far."""
        node = self.nodes[index]
        if not node.started:
            return "", ""
        res = docker("logs", node.name, check=False)
        return res.stdout, res.stderr

    def timed_lines(self, index: int) -> list[tuple[float, str]]:
        """Node `index`'s stdout and stderr lines with the engine's receive time, in order."""
        res = subprocess.run(["docker", "logs", "-t", self.nodes[index].name],
                             capture_output=True, text=True, check=False)
        lines = []
        for line in res.stdout.splitlines() + res.stderr.splitlines():
            stamp, _, text = line.partition(" ")
            try:  # RFC 3339 with nanoseconds: keep microseconds for datetime
                head, _, frac = stamp.rstrip("Z").partition(".")
                when = datetime.fromisoformat(f"{head}.{(frac + '000000')[:6]}+00:00")
            except ValueError:
                continue
            lines.append((when.timestamp(), text))
        return sorted(lines, key=lambda pair: pair[0])

    def write_logs(self) -> None:
        """Each started node's log as its CloudWatch stream would hold it, time-ordered."""
        for n in self.nodes:
            if not n.started:
                continue
            path = self.log_dir / self.stream_name(n.index)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(text + "\n" for _, text in self.timed_lines(n.index)))
