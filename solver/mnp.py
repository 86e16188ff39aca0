"""Multi-node launcher (the image ENTRYPOINT): turn a Batch MNP node group into one MPI world."""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from solver import _mnp_ssh as ssh
from solver import exitcodes
from solver._mnp_proto import INSECURE_ENV, SECRET_ENV, log
from solver._mnp_roles import _Term, run_child, run_local, run_main


@dataclass(frozen=True)
class BatchNode:
    """This container's place in the Batch job, read once from Batch's variables."""

    index: int
    num_nodes: int
    main_index: int
    main_ip: str | None
    job_id: str
    attempt: int

    @property
    def is_main(self) -> bool:
        return self.index == self.main_index

    @property
    def job(self) -> str:
        """The parent job id (`<uuid>#<node>` without `#<node>`), safe in paths."""
        return self.job_id.split("#", 1)[0]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BatchNode:
        """Parse the AWS_BATCH_JOB_* variables; ValueError names the offending one."""
        def num(name: str, default: int | None, low: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                if default is None:
                    raise ValueError(f"{name} is not set")
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not an integer") from None
            if value < low:
                raise ValueError(f"{name}={value} must be at least {low}")
            return value

        nodes = num("AWS_BATCH_JOB_NUM_NODES", 1, 1)
        multi = nodes > 1
        index = num("AWS_BATCH_JOB_NODE_INDEX", None if multi else 0, 0)
        main = num("AWS_BATCH_JOB_MAIN_NODE_INDEX", None if multi else 0, 0)
        for name, value in (("AWS_BATCH_JOB_NODE_INDEX", index),
                            ("AWS_BATCH_JOB_MAIN_NODE_INDEX", main)):
            if value >= nodes:
                raise ValueError(f"{name}={value} is not below AWS_BATCH_JOB_NUM_NODES={nodes}")
        main_ip = env.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS", "").strip() or None
        if multi and index != main and main_ip is None:
            raise ValueError("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS is not set on a child")
        job_id = env.get("AWS_BATCH_JOB_ID", "").strip()
        if not job_id:
            if multi:
                raise ValueError("AWS_BATCH_JOB_ID is not set")
            job_id = f"local-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        attempt = num("AWS_BATCH_JOB_ATTEMPT", 1, 1)
        return cls(index, nodes, main, main_ip, job_id, attempt)


@dataclass(frozen=True)
class Settings:
    """Launcher knobs from MNP_* variables and flags."""

    slots: int
    rendezvous_timeout: float
    port: int
    hb_interval: float
    hb_timeout: float
    mpiexec_args: tuple[str, ...]
    secret: str | None  # None only for one node, or multi-node with MNP_INSECURE_RENDEZVOUS=1

    @classmethod
    def from_env(cls, env: Mapping[str, str], timeout_flag: float | None,
                 num_nodes: int = 1) -> Settings:
        """Read the MNP_* variables; ValueError names the offending one."""
        def pos(name: str, default: float, kind: type = float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a {kind.__name__}") from None
            if value <= 0:
                raise ValueError(f"{name}={raw} must be positive")
            return value

        timeout = timeout_flag if timeout_flag is not None else pos("MNP_RENDEZVOUS_TIMEOUT", 600)
        interval = pos("MNP_HEARTBEAT_INTERVAL", 5)
        return cls(
            slots=int(pos("MNP_RANKS_PER_NODE", os.cpu_count() or 1, int)),
            rendezvous_timeout=timeout,
            port=int(pos("MNP_RENDEZVOUS_PORT", 47470, int)),
            hb_interval=interval,
            hb_timeout=pos("MNP_HEARTBEAT_TIMEOUT", max(30.0, 3 * interval)),
            mpiexec_args=tuple(shlex.split(env.get("MNP_MPIEXEC_ARGS", "--bind-to none"))),
            secret=_secret(env, num_nodes),
        )


MIN_SECRET = 16
NO_SECRET = (
    f"{SECRET_ENV} is not set, and a multi-node job needs it: the stack's job definition "
    "injects one per stack from Secrets Manager (its `secrets`); for a job definition of "
    f"your own add a `secrets` entry or an environment variable {SECRET_ENV} of at least "
    f"{MIN_SECRET} random characters (or set {INSECURE_ENV}=1 to let anyone who can reach "
    "the rendezvous port join)")


def _secret(env: Mapping[str, str], num_nodes: int) -> str | None:
    """The rendezvous secret; refuse a multi-node job without one unless opted out."""
    insecure = env.get(INSECURE_ENV, "").strip()
    if insecure not in ("", "0", "1"):
        raise ValueError(f"{INSECURE_ENV}={insecure!r} must be 1 (or 0, or unset)")
    secret = env.get(SECRET_ENV, "")
    if not secret:
        if num_nodes > 1 and insecure != "1":
            raise ValueError(NO_SECRET)
        return None
    if len(secret) < MIN_SECRET:
        raise ValueError(f"{SECRET_ENV} has {len(secret)} characters: it needs at least "
                         f"{MIN_SECRET} random ones (the stack's secret has 64)")
    return secret




def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        msg = f"--rendezvous-timeout: {text!r} is not a number"
        raise argparse.ArgumentTypeError(msg) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--rendezvous-timeout: {text} must be positive")
    return value


def _logging(prefix: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        f"[{prefix}] %(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m solver.mnp [--rendezvous-timeout S] CMD...` on every node of the job."""
    p = argparse.ArgumentParser(
        prog="python -m solver.mnp",
        description="Run CMD under MPI across the nodes of an AWS Batch multi-node job.")
    p.add_argument("--rendezvous-timeout", type=_positive, metavar="S",
                   help="seconds to wait for all nodes (default: MNP_RENDEZVOUS_TIMEOUT or 600)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command every rank runs")
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    try:
        node = BatchNode.from_env(os.environ)
        settings = Settings.from_env(os.environ, args.rendezvous_timeout, node.num_nodes)
    except ValueError as e:
        print(f"mnp: error: {e}", file=sys.stderr)
        return exitcodes.USAGE
    # Read once: nothing the launcher starts (ssh-keygen, sshd, mpiexec, ssh, ranks) gets it.
    os.environ.pop(SECRET_ENV, None)
    _logging(f"node {node.index} job {node.job_id} attempt {node.attempt}")
    if node.num_nodes > 1 and settings.secret is None:
        log.warning("%s=1: the rendezvous has no secret: anyone who can reach port %d can "
                    "join this job and run commands on its nodes", INSECURE_ENV, settings.port)
    if not cmd and (node.is_main or node.num_nodes == 1):
        log.error("no command to run (give it after the options, e.g. python -m solver heat)")
        return exitcodes.USAGE
    ssh.become_subreaper()
    term = _Term()
    log.info("node %d of %d (main is %d), %d slots", node.index, node.num_nodes,
             node.main_index, settings.slots)
    try:
        if node.num_nodes == 1:
            code = run_local(node, settings, cmd, term)
        elif node.is_main:
            code = run_main(node, settings, cmd, term)
        else:
            code = run_child(node, settings, term)
    finally:
        # Nothing outlives the launcher: ranks, daemons and sshd sessions it adopted.
        ssh.kill_tree(os.getpid(), include_root=False)
        ssh.reap()
    log.info("exit %d", code)
    return code


if __name__ == "__main__":
    sys.exit(main())
