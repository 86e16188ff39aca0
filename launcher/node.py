"""This node's place in the Batch job and the launcher's settings, read once from the
environment Batch and the job definition give the container."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from launcher import account, fabric, settings
from launcher.inputs import whole_number
from launcher.rendezvous import INSECURE_ENV, SECRET_ENV


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
                value = whole_number(raw)  # ASCII digits: int() also takes '٣' and '1_0'
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
    """Launcher knobs from MNP_* variables (launcher.settings) and flags."""

    slots: int
    rendezvous_timeout: float
    port: int
    hb_interval: float
    hb_timeout: float
    mpiexec_args: tuple[str, ...] | None  # None: the MPI flavour's defaults
    secret: str | None  # None only for one node, or multi-node with MNP_INSECURE_RENDEZVOUS=1
    network: fabric.Fabric = fabric.Fabric()  # MNP_NETWORK
    mpi: str | None = None  # MNP_MPI; None: detected from mpiexec --version
    ssh_port: int | None = None  # MNP_SSH_PORT; None: a free port
    state_dir: str | None = None  # MNP_STATE_DIR; None: $TMPDIR
    run_as: account.Account | None = None  # MNP_RUN_AS; None: the launcher's own user

    @classmethod
    def from_env(cls, env: Mapping[str, str], timeout_flag: float | None,
                 num_nodes: int = 1) -> Settings:
        """Read the MNP_* variables; ValueError names the offending one."""
        knobs = settings.read(env, num_nodes=num_nodes)
        if num_nodes > 1 and knobs.secret is None and not knobs.insecure_rendezvous:
            raise ValueError(NO_SECRET)
        return cls(
            slots=knobs.ranks_per_node or os.cpu_count() or 1,
            rendezvous_timeout=knobs.rendezvous_timeout if timeout_flag is None
            else timeout_flag,
            port=knobs.rendezvous_port,
            hb_interval=knobs.heartbeat_interval,
            hb_timeout=knobs.heartbeat_timeout,
            mpiexec_args=knobs.mpiexec_args,
            secret=knobs.secret,
            network=fabric.Fabric(knobs.network),
            mpi=knobs.mpi,
            ssh_port=knobs.ssh_port,
            state_dir=knobs.state_dir,
            run_as=knobs.run_as,
        )


NO_SECRET = (
    f"{SECRET_ENV} is not set, and a multi-node job needs it: the stack's job definition "
    "injects one per stack from Secrets Manager (its `secrets`); for a job definition of "
    f"your own add a `secrets` entry or an environment variable {SECRET_ENV} of at least "
    f"{settings.MIN_SECRET} random characters (or set {INSECURE_ENV}=1 to let anyone who can "
    "reach the rendezvous port join)")
