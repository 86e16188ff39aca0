"""awsbhosts: the container instances of the stack's compute environments."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from jobs.awsb import entry, table
from jobs.awsb.awsbqueues import describe, stack_queues
from jobs.context import Context
from jobs.errors import NotFound

PROG = "awsbhosts"
# aws-parallelcluster awsbatch-cli/src/awsbatch/awsbhosts.py: detail keys and table columns.
DETAIL_KEYS = ("ec2InstanceId", "containerInstanceArn", "status", "instanceType",
               "privateIpAddress", "publicIpAddress", "privateDnsName", "publicDnsName",
               "runningJobs", "pendingJobs", "registeredCPUs", "registeredMemory[MB]",
               "availableCPUs", "availableMemory[MB]")
TABLE_KEYS = ("ec2InstanceId", "instanceType", "privateIpAddress", "publicIpAddress",
              "runningJobs")
INSTANCE_ID_RE = re.compile(r"i-[0-9a-f]{8,17}")
# ECS reports CPU in units of 1/1024 vCPU (ECS developer guide, task definition parameters).
CPU_UNITS = 1024
# DescribeContainerInstances takes at most 100 container instances a call.
DESCRIBE_CHUNK = 100


def instance_id(value: str) -> str:
    """An EC2 instance id."""
    if not INSTANCE_ID_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"instance id {value!r} is invalid: expected i- and "
                                         "8 or 17 hexadecimal digits")
    return value


def build_parser() -> argparse.ArgumentParser:
    """ParallelCluster's awsbhosts flags."""
    p = entry.parser(PROG, "Shows the hosts of the stack's compute environments.")
    p.add_argument("-d", "--details", action="store_true", help="show hosts details")
    p.add_argument("instance_ids", nargs="*", type=instance_id, metavar="INSTANCE_ID",
                   help="only these instances, in detail")
    return p


def ecs_clusters(ctx: Context) -> list[str]:
    """The ECS clusters behind the compute environments of the stack's queues."""
    queues = describe(ctx, stack_queues(ctx))
    arns = list(dict.fromkeys(o["computeEnvironment"] for q in queues
                              for o in q.get("computeEnvironmentOrder", [])))
    if not arns:
        return []
    found = ctx.api.read("batch", "describe_compute_environments",
                         computeEnvironments=arns).get("computeEnvironments", [])
    return list(dict.fromkeys(e["ecsClusterArn"] for e in found if e.get("ecsClusterArn")))


def _resources(items: list[dict[str, Any]]) -> tuple[object, object]:
    values = {r.get("name"): r.get("integerValue") for r in items}
    cpu = values.get("CPU")
    return (table.MISSING if cpu is None else cpu / CPU_UNITS,
            values.get("MEMORY", table.MISSING))


def host(container: dict[str, Any], instance: dict[str, Any]) -> dict[str, object]:
    """Every key of ParallelCluster's awsbhosts for one container instance."""
    attributes = {a.get("name"): a.get("value") for a in container.get("attributes", [])}
    cpu, memory = _resources(container.get("registeredResources", []))
    cpu_free, memory_free = _resources(container.get("remainingResources", []))
    return {
        "ec2InstanceId": container.get("ec2InstanceId", table.MISSING),
        "containerInstanceArn": container.get("containerInstanceArn", table.MISSING),
        "status": container.get("status", table.MISSING),
        "instanceType": attributes.get("ecs.instance-type")
        or instance.get("InstanceType", table.MISSING),
        "privateIpAddress": instance.get("PrivateIpAddress") or table.MISSING,
        "publicIpAddress": instance.get("PublicIpAddress") or table.MISSING,
        "privateDnsName": instance.get("PrivateDnsName") or table.MISSING,
        "publicDnsName": instance.get("PublicDnsName") or table.MISSING,
        "runningJobs": container.get("runningTasksCount", 0),
        "pendingJobs": container.get("pendingTasksCount", 0),
        "registeredCPUs": cpu, "registeredMemory[MB]": memory,
        "availableCPUs": cpu_free, "availableMemory[MB]": memory_free,
    }


def hosts(ctx: Context) -> list[dict[str, object]]:
    """Container instances of every cluster, merged with their EC2 descriptions."""
    found = []
    for cluster in ecs_clusters(ctx):
        arns = ctx.api.read_pages("ecs", "list_container_instances", "containerInstanceArns",
                                  cluster=cluster)
        for start in range(0, len(arns), DESCRIBE_CHUNK):
            found.extend(ctx.api.read("ecs", "describe_container_instances", cluster=cluster,
                                      containerInstances=arns[start:start + DESCRIBE_CHUNK])
                         .get("containerInstances", []))
    ids = [c["ec2InstanceId"] for c in found if c.get("ec2InstanceId")]
    reservations = ctx.api.read_pages("ec2", "describe_instances", "Reservations",
                                      InstanceIds=ids) if ids else []
    instances = {i["InstanceId"]: i for r in reservations for i in r.get("Instances", [])}
    return [host(c, instances.get(c.get("ec2InstanceId", ""), {})) for c in found]


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """A table of the hosts, or details with -d or when instances are named."""
    rows = hosts(ctx)
    if args.instance_ids:
        known = {r["ec2InstanceId"] for r in rows}
        missing = [i for i in args.instance_ids if i not in known]
        if missing:
            raise NotFound(f"instance {missing[0]} is not a host of the stack's compute "
                               f"environments ({len(rows)} hosts now)")
        rows = [r for r in rows if r["ec2InstanceId"] in args.instance_ids]
    print(table.records(rows, TABLE_KEYS, DETAIL_KEYS, args.details or args.instance_ids))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return entry.main(PROG, build_parser, execute, argv)
