"""The preflight checks: pure functions of the request and the facts read from AWS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobs.preflight import sizing
from jobs.preflight.facts import Environment, Facts, Unknown
from jobs.request import JobSpec

PASS, FAIL, UNKNOWN = "PASS", "FAIL", "UNKNOWN"


@dataclass(frozen=True)
class Check:
    """One line of the report: which check, its verdict, what was found, what to change."""

    name: str
    status: str
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"check": self.name, "status": self.status, "message": self.message,
                "hint": self.hint}


def _unknown(name: str, fact: Unknown) -> Check:
    return Check(name, UNKNOWN, fact.reason, fact.hint)


def _managed(name: str, facts: Facts) -> Environment | Check:
    """The compute environment, or the UNKNOWN check saying why its types cannot be seen."""
    env = facts.environment
    if isinstance(env, Unknown):
        return _unknown(name, env)
    if not env.managed:
        return Check(name, UNKNOWN, f"compute environment {env.name} is UNMANAGED: its "
                     "instances are yours, Batch does not know their types",
                     "check the instances you registered by hand")
    return env


def fitting(facts: Facts, spec: JobSpec) -> list[str]:
    """Allowed types that hold one node's vCPUs and memory, smallest first."""
    if not isinstance(facts.types, dict):
        return []
    fits = [t for t, info in facts.types.items()
            if sizing.vcpus_of(info) >= spec.vcpus
            and sizing.registered_memory(sizing.memory_of(info)) >= spec.memory]
    return sorted(fits, key=lambda t: (sizing.vcpus_of(facts.types[t]),
                                       sizing.memory_of(facts.types[t]), t))


def choose(facts: Facts, spec: JobSpec) -> str | None:
    """The type Batch would launch: the smallest fitting one offered in the subnets' AZs."""
    fits = fitting(facts, spec)
    if isinstance(facts.offered, dict) and isinstance(facts.zones, dict):
        zones = set(facts.zones.values())
        offered = [t for t in fits if facts.offered.get(t, set()) & zones]
        fits = offered or fits
    return fits[0] if fits else None


def check_fit(facts: Facts, spec: JobSpec) -> Check:
    """1. Some allowed type holds one node: vCPUs, and memory as ECS registers it."""
    name = "instance type"
    env = _managed(name, facts)
    if isinstance(env, Check):
        return env
    if env.resource_type != "EC2" and not spec.single_node:
        return Check(name, FAIL, f"compute environment {env.name} is {env.resource_type}: "
                     "multi-node jobs run on EC2 on-demand only (never Spot or Fargate)",
                     "use the stack's multi-node queue (job_queue_name)")
    if isinstance(facts.types, Unknown):
        return _unknown(name, facts.types)
    if not facts.types:
        chosen = ", ".join(facts.unresolved) or "none"
        return Check(name, UNKNOWN, f"instance types {chosen} are chosen by Batch at launch",
                     "name instance types or families in the compute environment to check them")
    fits = fitting(facts, spec)
    if fits:
        info = facts.types[fits[0]]
        return Check(name, PASS, f"{fits[0]} holds {spec.vcpus} vCPUs and {spec.memory} MiB per "
                     f"node (ECS registers {sizing.registered_memory(sizing.memory_of(info))} "
                     f"of its {sizing.memory_of(info)} MiB)")
    enough = [t for t, i in facts.types.items() if sizing.vcpus_of(i) >= spec.vcpus]
    if not enough:
        top = max(facts.types, key=lambda t: sizing.vcpus_of(facts.types[t]))
        most = sizing.vcpus_of(facts.types[top])
        return Check(name, FAIL, f"no allowed type has {spec.vcpus} vCPUs: the largest, {top}, "
                     f"has {most}", f"use --vcpus {most} or less, or add a larger type to "
                     "instance_types")
    best = max(enough, key=lambda t: sizing.memory_of(facts.types[t]))
    room = sizing.registered_memory(sizing.memory_of(facts.types[best]))
    return Check(name, FAIL, f"--memory {spec.memory} MiB fits no allowed type with {spec.vcpus} "
                 f"vCPUs: the largest that fits is {room} MiB on {best} (ECS registers "
                 f"{sizing.memory_of(facts.types[best])} MiB less the kernel's and agent's share)",
                 f"use --memory {room} or less, or add a type with more memory to instance_types")


def check_max_vcpus(facts: Facts, spec: JobSpec, chosen: str | None) -> Check:
    """2a. All nodes fit the compute environment's maxvCpus, counting what it already runs."""
    name = "max vCPUs"
    env = _managed(name, facts)
    if isinstance(env, Check):
        return env
    if isinstance(facts.types, Unknown):
        return _unknown(name, facts.types)
    if chosen is None or env.max_vcpus is None:
        return Check(name, UNKNOWN, "no instance type fits the request (see above)")
    per = sizing.vcpus_of(facts.types[chosen])
    need = spec.nodes * per
    what = (f"{spec.nodes} nodes x {per} vCPUs ({chosen}) = {need} + {env.used_vcpus} "
            f"in use")
    if need + env.used_vcpus > env.max_vcpus:
        room = max(0, (env.max_vcpus - env.used_vcpus) // per)
        return Check(name, FAIL, f"{what} > maxvCpus {env.max_vcpus} of {env.name}",
                     f"use --nodes {room} or less, or raise max_vcpus in the stack")
    return Check(name, PASS, f"{what} <= maxvCpus {env.max_vcpus} of {env.name}")


def check_quota(spec: JobSpec, chosen: str | None, facts: Facts,
                quota: float | Unknown | None, running: int | Unknown | None) -> Check:
    """2b. All nodes fit the account's EC2 vCPU quota for the type's family."""
    name = "vCPU quota"
    env = _managed(name, facts)
    if isinstance(env, Check):
        return env
    if chosen is None or not isinstance(facts.types, dict):
        return Check(name, UNKNOWN, "no instance type fits the request (see above)")
    mapped = sizing.quota_for(chosen, spot=env.resource_type == "SPOT")
    if mapped is None or quota is None:
        return Check(name, UNKNOWN, f"no EC2 vCPU quota is mapped for {chosen}",
                     "check its family's quota in the Service Quotas console")
    code, quota_name = mapped
    need = spec.nodes * sizing.vcpus_of(facts.types[chosen])
    if isinstance(quota, Unknown):
        return _unknown(name, quota)
    limit = int(quota)
    if isinstance(running, Unknown) and need <= limit:
        return Check(name, UNKNOWN, f"{need} vCPUs fit quota {code} ({quota_name}) of {limit}, "
                     f"but what already runs is unknown: {running.reason}", running.hint)
    # Over the quota on its own: what runs cannot make it fit.
    in_use = running if isinstance(running, int) else 0
    what = f"{need} vCPUs ({spec.nodes} x {chosen}) + {in_use} running"
    if need + in_use > limit:
        return Check(name, FAIL, f"{what} > quota {code} ({quota_name}) of {limit}",
                     f"request an increase of {code} (Service Quotas, ec2) to at least "
                     f"{need + in_use}, or use fewer nodes")
    return Check(name, PASS, f"{what} <= quota {code} ({quota_name}) of {limit}")


def check_offering(facts: Facts, spec: JobSpec, chosen: str | None) -> Check:
    """3. The type is offered in the AZ of the compute environment's subnet."""
    name = "AZ offering"
    env = _managed(name, facts)
    if isinstance(env, Check):
        return env
    for fact in (facts.zones, facts.offered):
        if isinstance(fact, Unknown):
            return _unknown(name, fact)
    if chosen is None or not isinstance(facts.offered, dict) \
            or not isinstance(facts.zones, dict):
        return Check(name, UNKNOWN, "no instance type fits the request (see above)")
    zones = set(facts.zones.values())
    where = ", ".join(f"{s} ({az})" for s, az in sorted(facts.zones.items()))
    offered = facts.offered.get(chosen, set())
    if offered & zones:
        return Check(name, PASS, f"{chosen} is offered in the AZ of subnet {where}")
    elsewhere = ", ".join(sorted(offered)) or "no AZ of this region"
    return Check(name, FAIL, f"{chosen} is not offered in the AZ of subnet {where}: only in "
                 f"{elsewhere}", "use a subnet in an AZ that offers it (the placement group "
                 "follows it), or another instance type")


def check_image(facts: Facts) -> Check:
    """4. The job definition's image (or --image-tag) exists in ECR."""
    name = "image"
    if isinstance(facts.definition, Unknown):
        return _unknown(name, facts.definition)
    if not facts.images:
        return Check(name, UNKNOWN, "the job definition names no image")
    for found in facts.images.values():
        if isinstance(found, str):
            return Check(name, FAIL, found, "build and push that tag first; ECR tags are "
                         "immutable (or pick a pushed tag with --image-tag)")
    for found in facts.images.values():
        if isinstance(found, Unknown):
            return _unknown(name, found)
    return Check(name, PASS, f"{', '.join(sorted(facts.images))} is in ECR")


def check_efa(facts: Facts, spec: JobSpec) -> Check:
    """5. With EFA on (job definition or launch template), every fitting type supports it."""
    name = "EFA"
    definition = facts.definition
    requested = isinstance(definition, dict) and sizing.efa_requested(definition)
    template = facts.template_efa
    if not requested and template is not True:
        for fact in (definition, template):
            if isinstance(fact, Unknown):
                return _unknown(name, fact)
        return Check(name, PASS, "EFA is off (no MNP_NETWORK=efa in the job definition, no efa "
                     "interface in the launch template)")
    if requested and template is False:
        return Check(name, FAIL, "MNP_NETWORK=efa but the launch template has no network "
                     "interface of type efa: the nodes would have no EFA device",
                     "turn EFA on in the stack (it sets both), or off in the job definition")
    env = _managed(name, facts)
    if isinstance(env, Check):
        return env
    if isinstance(facts.types, Unknown):
        return _unknown(name, facts.types)
    fits = fitting(facts, spec)
    if not fits:
        return Check(name, UNKNOWN, "no instance type fits the request (see above)")
    lacking = [t for t in fits if not sizing.efa_supported(facts.types[t])]
    if lacking:
        capable = sorted(t for t, i in facts.types.items() if sizing.efa_supported(i))
        return Check(name, FAIL, f"EFA is on but {', '.join(lacking)} does not support EFA "
                     f"(EFA types allowed: {', '.join(capable) or 'none'})",
                     "allow only EFA-capable types (e.g. c5n.18xlarge, c6in.32xlarge, "
                     "hpc7a.96xlarge) in instance_types, or turn EFA off")
    verb = "supports" if len(fits) == 1 else "support"
    return Check(name, PASS, f"EFA is on and {', '.join(fits)} {verb} it")


def check_shared_memory(facts: Facts, spec: JobSpec) -> Check:
    """6. /dev/shm leaves the application room: tmpfs pages count in the container's memory."""
    name = "/dev/shm"
    if isinstance(facts.definition, Unknown):
        return _unknown(name, facts.definition)
    shm, configured = sizing.shared_memory(facts.definition)
    source = "sharedMemorySize" if configured else "Docker's default"
    room = spec.memory - shm
    # A /dev/shm that Open MPI (or the application) fills is charged to the container's memory
    # cgroup; we ask the application to keep at least as much as /dev/shm can take.
    if room < shm:
        return Check(name, FAIL, f"/dev/shm {shm} MiB ({source}) counts inside --memory "
                     f"{spec.memory} MiB: full, it leaves the application {max(room, 0)} MiB, "
                     "less than itself", f"use --memory {2 * shm} or more, or lower "
                     "linuxParameters.sharedMemorySize in the job definition")
    return Check(name, PASS, f"/dev/shm {shm} MiB ({source}) of --memory {spec.memory} MiB "
                 f"leaves the application {room} MiB")


def summary(checks: list[Check]) -> dict[str, Any]:
    """Counts by status."""
    return {s: sum(c.status == s for c in checks) for s in (PASS, FAIL, UNKNOWN)}
