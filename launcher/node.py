"""This node's place in the Batch job and the launcher's settings, read once from the
environment Batch and the job definition give the container."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from launcher import account, contract, fabric, gang, settings
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
    gang: bool = False  # MNP_GANG=1: an array child of a Spot gang (launcher.gang)

    @property
    def is_main(self) -> bool:
        return self.index == self.main_index

    @property
    def job(self) -> str:
        """The parent job id (`<uuid>#<node>` without `#<node>`, a gang member's
        `<uuid>:<index>` without `:<index>`), safe in paths."""
        if self.gang:
            return self.job_id.split(gang.CHILD_SEPARATOR, 1)[0]
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

        if settings.value(env, contract.GANG_ENV):
            return cls._gang_member(env, num)
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

    @classmethod
    def _gang_member(cls, env: Mapping[str, str], num: Callable[..., int]) -> BatchNode:
        """An array child of a gang: its array index is its node index, index 0 the main node
        (whose address comes from the shared file system, launcher.gang)."""
        if env.get("AWS_BATCH_JOB_NUM_NODES", "").strip():
            raise ValueError(f"{contract.GANG_ENV}=1 but AWS_BATCH_JOB_NUM_NODES is set: a gang is "
                             "an array job of single-node jobs, not a multi-node parallel job")
        for name in (gang.ARRAY_SIZE_ENV, gang.ARRAY_INDEX_ENV, "AWS_BATCH_JOB_ID"):
            if not env.get(name, "").strip():
                raise ValueError(f"{contract.GANG_ENV}=1 but {name} is not set: submit the gang as "
                                 "an array job (arrayProperties.size = the node count)")
        size = num(gang.ARRAY_SIZE_ENV, None, 2)
        index = num(gang.ARRAY_INDEX_ENV, None, 0)
        if index >= size:
            raise ValueError(f"{gang.ARRAY_INDEX_ENV}={index} is not below "
                             f"{gang.ARRAY_SIZE_ENV}={size}")
        return cls(index, size, 0, None, env["AWS_BATCH_JOB_ID"].strip(),
                   num("AWS_BATCH_JOB_ATTEMPT", 1, 1), gang=True)


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
    gang_dir: str = settings.GANG_DIR  # MNP_GANG_DIR
    gang_bound: gang.Bound | None = None  # a gang member's wait; None: not in a gang
    term_grace: float = settings.TERM_GRACE  # MNP_TERM_GRACE

    @classmethod
    def from_env(cls, env: Mapping[str, str], timeout_flag: float | None,
                 num_nodes: int = 1) -> Settings:
        """Read the MNP_* variables; ValueError names the offending one."""
        knobs = settings.read(env, num_nodes=num_nodes)
        if num_nodes > 1 and knobs.secret is None and not knobs.insecure_rendezvous:
            raise ValueError(NO_SECRET)
        bound, port = None, knobs.rendezvous_port
        if knobs.gang:
            if knobs.gang_cost_cap is not None and knobs.gang_price is None:
                raise ValueError("MNP_GANG_COST_CAP is set but MNP_GANG_PRICE_PER_NODE_HOUR is "
                                 "not: the cap needs the price of one member per hour")
            bound = gang.wait_bound(knobs.gang_timeout, num_nodes, knobs.gang_cost_cap,
                                    knobs.gang_price)
            # The address is published with the port: any free one will do, so two gangs'
            # main nodes on one instance (host networking) cannot collide.
            if not env.get("MNP_RENDEZVOUS_PORT", "").strip():
                port = 0
        return cls(
            slots=knobs.ranks_per_node or os.cpu_count() or 1,
            rendezvous_timeout=bound.seconds if bound is not None
            else knobs.rendezvous_timeout if timeout_flag is None else timeout_flag,
            port=port,
            hb_interval=knobs.heartbeat_interval,
            hb_timeout=knobs.heartbeat_timeout,
            mpiexec_args=knobs.mpiexec_args,
            secret=knobs.secret,
            network=fabric.Fabric(knobs.network),
            mpi=knobs.mpi,
            ssh_port=knobs.ssh_port,
            state_dir=knobs.state_dir,
            run_as=knobs.run_as,
            gang_dir=knobs.gang_dir,
            gang_bound=bound,
            term_grace=knobs.term_grace,
        )


NO_SECRET = (
    f"{SECRET_ENV} is not set, and a multi-node job needs it: the stack's job definition "
    "injects one per stack from Secrets Manager (its `secrets`); for a job definition of "
    f"your own add a `secrets` entry or an environment variable {SECRET_ENV} of at least "
    f"{settings.MIN_SECRET} random characters (or set {INSECURE_ENV}=1 to let anyone who can "
    "reach the rendezvous port join)")
