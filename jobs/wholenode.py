"""--whole-node: one node's vCPUs and memory (and ranks) from the compute environment's type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobs.client import BatchJobs
from jobs.errors import InvalidInput
from jobs.preflight import sizing
from jobs.preflight.facts import BATCH_CHOSEN

# What --whole-node=RANKS sets MNP_RANKS_PER_NODE to: every vCPU, or one rank per physical core.
RANKS = ("vcpus", "cores")


@dataclass(frozen=True)
class NodeSize:
    """What one node of an instance type offers a job."""

    instance_type: str
    vcpus: int
    cores: int
    installed_mib: int

    @property
    def memory_mib(self) -> int:
        """What ECS registers for jobs: the installed memory less the kernel's share and the
        Batch AMI's 32 MiB ECS_RESERVED_MEMORY (Batch user guide: ecs-reserved-memory)."""
        return sizing.registered_memory(self.installed_mib)

    def ranks(self, per: str) -> int:
        """MPI ranks per node for --whole-node=`per`."""
        return self.cores if per == "cores" else self.vcpus


def node_size(info: dict[str, Any]) -> NodeSize:
    """A DescribeInstanceTypes entry (VCpuInfo.DefaultVCpus/DefaultCores, MemoryInfo.SizeInMiB)."""
    vcpus = sizing.vcpus_of(info)
    return NodeSize(str(info["InstanceType"]), vcpus,
                    int(info.get("VCpuInfo", {}).get("DefaultCores") or vcpus),
                    sizing.memory_of(info))


def pick(allowed: list[str], wanted: str | None, environment: str) -> str:
    """The instance type a whole node means: --instance-type (one the environment allows), or
    the environment's only exact type."""
    exact = [t for t in allowed if "." in t]
    if wanted is None:
        if len(exact) == 1 and len(allowed) == 1:
            return exact[0]
        raise InvalidInput(
            f"--whole-node: compute environment {environment} allows "
            f"{', '.join(allowed) or 'no instance types'}: which one a node is cannot be known",
            hint="name it with --instance-type TYPE (e.g. --instance-type "
            f"{exact[0] if exact else 'c6i.8xlarge'})")
    family = wanted.partition(".")[0]
    if wanted in allowed or family in allowed or any(t in BATCH_CHOSEN for t in allowed):
        return wanted
    raise InvalidInput(f"--instance-type {wanted} is not allowed in compute environment "
                       f"{environment} (allows {', '.join(allowed)})",
                       hint="pick one of those, or add it to the stack's instance_types")


def read_size(api: BatchJobs, queue: str, wanted: str | None) -> NodeSize:
    """Queue -> its first compute environment -> the type -> DescribeInstanceTypes."""
    queues = api.read("batch", "describe_job_queues", jobQueues=[queue]).get("jobQueues") or []
    order = sorted((queues[0].get("computeEnvironmentOrder") or []) if queues else [],
                   key=lambda o: o.get("order", 0))
    if not order:
        raise InvalidInput(f"--whole-node: job queue {queue} "
                           f"{'has no compute environment' if queues else 'does not exist'}")
    # The first environment in the queue's order is where Batch places a job first.
    arn = order[0]["computeEnvironment"]
    envs = api.read("batch", "describe_compute_environments",
                    computeEnvironments=[arn]).get("computeEnvironments") or [{}]
    resources = envs[0].get("computeResources") or {}
    name = envs[0].get("computeEnvironmentName", arn)
    chosen = pick(list(resources.get("instanceTypes") or []), wanted, name)
    found = api.read("ec2", "describe_instance_types", InstanceTypes=[chosen])
    infos = found.get("InstanceTypes") or []
    if not infos:
        raise InvalidInput(f"--instance-type {chosen}: EC2 does not know this type here")
    return node_size(infos[0])
