"""The stack's fallback queues beside the job: what the same total ranks would need on each,
the vCPU quota headroom of its type and its on-demand price (stacks/README.md, "Fallback
capacity"). Advice only: no check, nothing refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from continuation.decide import nodes_for
from jobs import wholenode
from jobs.errors import JobsError
from jobs.preflight import sizing
from jobs.preflight.facts import Reader, Unknown, quota_value, running_vcpus
from jobs.preflight.pricing import on_demand_price
from jobs.request import JobSpec
from launcher.contract import RANKS_PER_NODE_ENV

OUTPUT = "fallback_job_queue_names"  # the stack output listing them in failover order


@dataclass(frozen=True)
class Fallback:
    """One fallback queue as the job would use it, and what could not be read."""

    queue: str
    instance_type: str | None = None
    nodes: int | None = None
    vcpus_per_node: int | None = None
    quota_code: str | None = None
    quota_vcpus: int | None = None
    running_vcpus: int | None = None
    hourly_usd: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def vcpus(self) -> int | None:
        """vCPUs all the nodes take."""
        return None if self.nodes is None or self.vcpus_per_node is None else (
            self.nodes * self.vcpus_per_node)

    @property
    def headroom(self) -> int | None:
        """vCPUs of the quota not yet used by running instances."""
        if self.quota_vcpus is None or self.running_vcpus is None:
            return None
        return self.quota_vcpus - self.running_vcpus

    def line(self) -> str:
        """One line: nodes and type, quota headroom, price; what is unknown says why."""
        if self.instance_type is None:
            return f"fallback {self.queue}: unknown ({'; '.join(self.notes)})"
        parts = [f"fallback {self.queue}: {self.nodes} x {self.instance_type} "
                 f"({self.vcpus} vCPUs)"]
        if self.headroom is not None:
            fits = "fits" if self.vcpus is not None and self.vcpus <= self.headroom else "EXCEEDS"
            parts.append(f"quota {self.quota_code} headroom {self.headroom} vCPUs "
                         f"({self.quota_vcpus} - {self.running_vcpus} running): {fits}")
        if self.hourly_usd is not None and self.nodes is not None:
            parts.append(f"${self.hourly_usd:.4f}/h per node, "
                         f"${self.hourly_usd * self.nodes:,.2f}/h in all")
        return "; ".join(parts + list(self.notes))

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"queue": self.queue, "instanceType": self.instance_type, "nodes": self.nodes,
                "vcpusPerNode": self.vcpus_per_node, "vcpus": self.vcpus,
                "quotaCode": self.quota_code, "quotaVcpus": self.quota_vcpus,
                "runningVcpus": self.running_vcpus, "headroomVcpus": self.headroom,
                "hourlyUsd": self.hourly_usd, "notes": list(self.notes)}


def queue_names(value: Any) -> list[str]:
    """The output's value: a list of queue names (an older stack has none)."""
    if not isinstance(value, list) or not all(isinstance(q, str) for q in value):
        return []
    return value


def total_ranks(spec: JobSpec) -> int:
    """Ranks the job runs: its nodes x its ranks per node (MNP_RANKS_PER_NODE, else vCPUs)."""
    return spec.nodes * int(spec.env.get(RANKS_PER_NODE_ENV) or spec.vcpus)


def read(reader: Reader, queues: list[str], spec: JobSpec) -> list[Fallback]:
    """Each fallback queue: its type, the nodes the same total ranks take there (one rank per
    vCPU, as the controller moves a run), the type's quota headroom and price."""
    region = reader.api.region()
    running: dict[str, int | Unknown] = {}  # one DescribeInstances per quota, not per queue
    return [_one(reader, queue, spec, region, running) for queue in queues]


def _one(reader: Reader, queue: str, spec: JobSpec, region: str,
         running: dict[str, int | Unknown]) -> Fallback:
    try:
        size = wholenode.read_size(reader.api, queue, None)
    except JobsError as exc:
        return Fallback(queue, notes=(exc.line(),))
    nodes = nodes_for(total_ranks(spec), size.vcpus)
    notes: list[str] = []
    fields: dict[str, Any] = {}
    mapped = sizing.quota_for(size.instance_type)
    if mapped is None:
        notes.append(f"no EC2 vCPU quota is mapped for {size.instance_type}")
    else:
        code = mapped[0]
        quota = quota_value(reader, code)
        if code not in running:
            running[code] = running_vcpus(reader, code, False, {})
        in_use = running[code]
        fields["quota_code"] = code
        for known in (quota, in_use):
            if isinstance(known, Unknown):
                notes.append(f"quota headroom unknown: {known.reason}")
        if not isinstance(quota, Unknown) and not isinstance(in_use, Unknown):
            fields.update(quota_vcpus=int(quota), running_vcpus=in_use)
    price = on_demand_price(reader, size.instance_type, region)
    if isinstance(price, Unknown):
        notes.append(f"price unknown: {price.reason}")
    else:
        fields["hourly_usd"] = price
    return Fallback(queue, size.instance_type, nodes, size.vcpus, notes=tuple(notes), **fields)
