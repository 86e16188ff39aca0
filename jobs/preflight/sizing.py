"""Pure facts about instance types: what ECS registers, which vCPU quota, EFA, /dev/shm."""

from __future__ import annotations

import re
from typing import Any

from launcher.contract import NETWORK_ENV

# AWS Batch "Compute resource memory management": an m4.large's 8192 MiB shows as 7985 MiB to the
# ECS agent and the Batch AMI keeps 32 MiB of that (https://docs.aws.amazon.com/batch/latest/userguide/memory-management.html).
KERNEL_SHARE = (8192 - 7985) / 8192
AGENT_RESERVED_MIB = 32
# Docker's /dev/shm when the job definition sets no linuxParameters.sharedMemorySize.
DOCKER_DEFAULT_SHM_MIB = 64

# EC2 On-Demand vCPU quotas (Service Quotas, service code ec2) by family prefix, longest prefix
# first; the family is the type name before the generation digit ("c6in.32xlarge" -> "c",
# "hpc7a.96xlarge" -> "hpc", "u-6tb1.metal" -> "u-"). Names and codes as in the EC2 User Guide's
# On-Demand Instance quotas table (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-on-demand-instances.html#ec2-on-demand-instances-limits).
ON_DEMAND_QUOTAS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("u-",), "L-43DA4232", "Running On-Demand High Memory instances"),
    (("hpc",), "L-F7808C92", "Running On-Demand HPC instances"),
    (("inf",), "L-1945791B", "Running On-Demand Inf instances"),
    (("trn",), "L-2C3B7624", "Running On-Demand Trn instances"),
    (("dl",), "L-6E869C2A", "Running On-Demand DL instances"),
    (("vt", "g"), "L-DB2E81BA", "Running On-Demand G and VT instances"),
    (("p",), "L-417A185B", "Running On-Demand P instances"),
    (("x",), "L-7295265B", "Running On-Demand X instances"),
    (("f",), "L-74FC7D96", "Running On-Demand F instances"),
    (tuple("acdhimrtz"), "L-1216C47A",
     "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"),
)
# The Spot queue's single-node jobs count against the Spot request quotas instead
# (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-spot-limits.html).
SPOT_QUOTAS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("inf",), "L-B5D1601B", "All Inf Spot Instance Requests"),
    (("trn",), "L-6B0D517C", "All Trn Spot Instance Requests"),
    (("dl",), "L-85EED4F7", "All DL Spot Instance Requests"),
    (("vt", "g"), "L-3819A6DF", "All G and VT Spot Instance Requests"),
    (("p",), "L-7212CCBC", "All P Spot Instance Requests"),
    (("x",), "L-E3A00192", "All X Spot Instance Requests"),
    (("f",), "L-88CF9481", "All F Spot Instance Requests"),
    (tuple("acdhimrtz"), "L-34B43A08",
     "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"),
)
_FAMILY_RE = re.compile(r"^(u-|[a-z]+?)(?=\d|-)")


def registered_memory(installed_mib: int) -> int:
    """MiB the ECS agent registers for jobs on an instance with this much memory."""
    return int(installed_mib * (1 - KERNEL_SHARE)) - AGENT_RESERVED_MIB


def registered_memory_hcl(installed_mib: str) -> str:
    """The same rule as a Terraform expression of `installed_mib` (the stack sizes fallback
    queues' whole nodes with it)."""
    return f"floor({installed_mib} * {1 - KERNEL_SHARE!r}) - {AGENT_RESERVED_MIB}"


def vcpus_of(info: dict[str, Any]) -> int:
    """Default vCPUs of a DescribeInstanceTypes entry."""
    return int(info.get("VCpuInfo", {}).get("DefaultVCpus", 0))


def memory_of(info: dict[str, Any]) -> int:
    """Installed MiB of a DescribeInstanceTypes entry."""
    return int(info.get("MemoryInfo", {}).get("SizeInMiB", 0))


def efa_supported(info: dict[str, Any]) -> bool:
    """Whether the type has an Elastic Fabric Adapter."""
    return bool(info.get("NetworkInfo", {}).get("EfaSupported"))


def quota_for(instance_type: str, spot: bool = False) -> tuple[str, str] | None:
    """(quota code, quota name) of the vCPU quota that counts this type, or None if unmapped."""
    match = _FAMILY_RE.match(instance_type.lower())
    if not match:
        return None
    family = match.group(1)
    # Rows are ordered so that multi-letter prefixes ("inf", "dl") win over letters ("i", "d").
    for prefixes, code, name in SPOT_QUOTAS if spot else ON_DEMAND_QUOTAS:
        if any(family.startswith(p) if len(p) > 1 else family[0] == p for p in prefixes):
            return code, name
    return None


def efa_requested(definition: dict[str, Any]) -> bool:
    """The job definition selects EFA (MNP_NETWORK=efa in any container's environment)."""
    return any(env.get("name") == NETWORK_ENV and env.get("value") == "efa"
               for container in containers_of(definition)
               for env in container.get("environment", []))


def template_has_efa(template_data: dict[str, Any]) -> bool:
    """A launch template version's data has a network interface of type efa."""
    return any(nic.get("InterfaceType") == "efa"
               for nic in template_data.get("NetworkInterfaces", []))


def containers_of(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container block of a job definition (single-node or multi-node)."""
    found = []
    if "containerProperties" in definition:
        found.append(definition["containerProperties"])
    for node_range in definition.get("nodeProperties", {}).get("nodeRangeProperties", []):
        if "container" in node_range:
            found.append(node_range["container"])
    return found


def shared_memory(definition: dict[str, Any]) -> tuple[int, bool]:
    """Largest /dev/shm MiB of the definition's containers, and whether it was set."""
    sizes = [int(c["linuxParameters"]["sharedMemorySize"]) for c in containers_of(definition)
             if (c.get("linuxParameters") or {}).get("sharedMemorySize")]
    return (max(sizes), True) if sizes else (DOCKER_DEFAULT_SHM_MIB, False)
