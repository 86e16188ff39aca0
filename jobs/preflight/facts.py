"""What preflight reads from AWS: queue -> compute environment -> types, subnets, template."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobs.client import BatchJobs, ecr_parts
from jobs.errors import JobsError, NotFound
from jobs.preflight import sizing
from jobs.request import images_of, with_tag

# Error codes AWS APIs use for "this caller may not call that"; "403" is what botocore keeps
# when a 403 body does not parse as the protocol's error shape.
DENIED = frozenset({"AccessDeniedException", "AccessDenied", "UnauthorizedOperation",
                    "UnauthorizedException", "AuthFailure", "403"})
# Instance-type entries Batch resolves itself at launch time, not EC2 type names.
BATCH_CHOSEN = frozenset({"optimal", "default_x86_64", "default_arm64"})
_MISSING_IMAGE = frozenset({"ImageNotFoundException", "RepositoryNotFoundException"})


@dataclass(frozen=True)
class Unknown:
    """A fact preflight could not read, with why and what would let it."""

    reason: str
    hint: str = ""


@dataclass
class Environment:
    """The parts of one compute environment a job's start depends on."""

    name: str
    managed: bool
    resource_type: str  # EC2, SPOT, FARGATE, FARGATE_SPOT ("" when unmanaged)
    max_vcpus: int | None
    used_vcpus: int
    instance_types: list[str]
    subnets: list[str]
    launch_template: dict[str, Any] | None


@dataclass
class Facts:
    """Everything read once per run; per-type reads (quota, usage, price) are cached here too."""

    queue: str
    environment: Environment | Unknown
    definition: dict[str, Any] | Unknown
    types: dict[str, dict[str, Any]] | Unknown = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)
    zones: dict[str, str] | Unknown = field(default_factory=dict)  # subnet -> AZ
    offered: dict[str, set[str]] | Unknown = field(default_factory=dict)  # type -> AZs
    template_efa: bool | Unknown | None = None  # None: the environment has no launch template
    images: dict[str, str | Unknown | None] = field(default_factory=dict)  # None: found


class Reader:
    """AWS reads that turn a denied or failed call into Unknown instead of an error."""

    def __init__(self, api: BatchJobs) -> None:
        self.api = api

    def unknown(self, exc: JobsError, service: str, method: str) -> Unknown:
        """Denied calls name the IAM action to allow; other failures keep AWS's message."""
        action = self.api.api_name(service, method)
        if exc.code in DENIED:
            return Unknown(f"{action} was denied to the caller",
                           hint=f"allow {action} in the caller's IAM policy")
        return Unknown(f"{action} failed: {exc.line()}", hint=exc.hint)

    def call(self, service: str, method: str, **kwargs: Any) -> Any:
        """One call, or Unknown."""
        try:
            return self.api.read(service, method, **kwargs)
        except JobsError as exc:
            return self.unknown(exc, service, method)

    def pages(self, service: str, method: str, key: str, **kwargs: Any) -> Any:
        """All items of a paginated call, or Unknown."""
        try:
            return self.api.read_pages(service, method, key, **kwargs)
        except JobsError as exc:
            return self.unknown(exc, service, method)


def _environment(reader: Reader, queue: str) -> Environment | Unknown:
    found = reader.call("batch", "describe_job_queues", jobQueues=[queue])
    if isinstance(found, Unknown):
        return found
    if not found.get("jobQueues"):
        raise NotFound(f"Job queue {queue} does not exist",
                       hint="check --job-queue/--job-definition, JOB_QUEUE_NAME/"
                       "JOB_DEFINITION_NAME, the stack outputs and AWS_REGION")
    order = sorted(found["jobQueues"][0].get("computeEnvironmentOrder", []),
                   key=lambda o: o.get("order", 0))
    if not order:
        return Unknown(f"job queue {queue} has no compute environment")
    # The first environment in the queue's order is where Batch places a job first.
    arn = order[0]["computeEnvironment"]
    envs = reader.call("batch", "describe_compute_environments", computeEnvironments=[arn])
    if isinstance(envs, Unknown):
        return envs
    if not envs.get("computeEnvironments"):
        return Unknown(f"compute environment {arn} of queue {queue} was not found")
    env = envs["computeEnvironments"][0]
    resources = env.get("computeResources") or {}
    return Environment(
        name=env.get("computeEnvironmentName", arn), managed=env.get("type") == "MANAGED",
        resource_type=resources.get("type", ""),
        max_vcpus=resources.get("maxvCpus"), used_vcpus=int(resources.get("desiredvCpus") or 0),
        instance_types=list(resources.get("instanceTypes") or []),
        subnets=list(resources.get("subnets") or []),
        launch_template=resources.get("launchTemplate"))


def _definition(api: BatchJobs, name: str) -> dict[str, Any] | Unknown:
    try:
        return api.latest_definition(name)
    except NotFound as exc:  # SubmitJob says so itself, with Batch's own words
        return Unknown(str(exc), hint=exc.hint)
    except JobsError as exc:
        return Reader(api).unknown(exc, "batch", "describe_job_definitions")


def _types(reader: Reader, names: list[str]) -> tuple[dict[str, dict[str, Any]] | Unknown,
                                                      list[str]]:
    exact = [n for n in names if "." in n]
    families = [n for n in names if "." not in n and n not in BATCH_CHOSEN]
    found: dict[str, dict[str, Any]] = {}
    for kwargs in ([{"InstanceTypes": exact}] if exact else []) + [
            {"Filters": [{"Name": "instance-type", "Values": [f"{f}.*"]}]} for f in families]:
        infos = reader.pages("ec2", "describe_instance_types", "InstanceTypes", **kwargs)
        if isinstance(infos, Unknown):
            return infos, []
        found.update({i["InstanceType"]: i for i in infos})
    return found, [n for n in names if n in BATCH_CHOSEN]


def _template_efa(reader: Reader, template: dict[str, Any] | None) -> bool | Unknown | None:
    if not template:
        return None
    key = ({"LaunchTemplateId": template["launchTemplateId"]} if template.get("launchTemplateId")
           else {"LaunchTemplateName": template.get("launchTemplateName", "")})
    # Batch uses the template's $Default version when the environment names none.
    found = reader.call("ec2", "describe_launch_template_versions",
                        Versions=[str(template.get("version") or "$Default")], **key)
    if isinstance(found, Unknown):
        return found
    versions = found.get("LaunchTemplateVersions") or [{}]
    return sizing.template_has_efa(versions[0].get("LaunchTemplateData") or {})


def _image(reader: Reader, image: str) -> str | Unknown | None:
    parts = ecr_parts(image)
    if parts is None:
        return Unknown(f"image {image} is not in ECR: its registry is not checked")
    registry, repository, image_id = parts
    try:
        reader.api.read("ecr", "describe_images", registryId=registry,
                        repositoryName=repository, imageIds=[image_id])
    except JobsError as exc:
        if exc.code in _MISSING_IMAGE:
            return f"image {image} is not in ECR"
        return reader.unknown(exc, "ecr", "describe_images")
    return None


def gather(api: BatchJobs, queue: str, definition: str, image_tag: str | None) -> Facts:
    """Read everything every check needs (per-type reads come later, for the chosen type)."""
    reader = Reader(api)
    facts = Facts(queue=queue, environment=_environment(reader, queue),
                  definition=_definition(api, definition))
    if isinstance(facts.definition, dict):
        for image in images_of(facts.definition):
            image = with_tag(image, image_tag) if image_tag else image
            facts.images[image] = _image(reader, image)
    env = facts.environment
    if not isinstance(env, Environment) or not env.managed:
        return facts
    facts.types, facts.unresolved = _types(reader, env.instance_types)
    if env.subnets:
        subnets = reader.pages("ec2", "describe_subnets", "Subnets", SubnetIds=env.subnets)
        facts.zones = subnets if isinstance(subnets, Unknown) else {
            s["SubnetId"]: s["AvailabilityZone"] for s in subnets}
    if isinstance(facts.types, dict) and facts.types:
        offerings = reader.pages(
            "ec2", "describe_instance_type_offerings", "InstanceTypeOfferings",
            LocationType="availability-zone",
            Filters=[{"Name": "instance-type", "Values": sorted(facts.types)}])
        if isinstance(offerings, Unknown):
            facts.offered = offerings
        else:
            for offering in offerings:
                facts.offered.setdefault(offering["InstanceType"], set()).add(
                    offering["Location"])
    facts.template_efa = _template_efa(reader, env.launch_template)
    return facts


def quota_value(reader: Reader, code: str) -> float | Unknown:
    """The applied value of an EC2 vCPU quota."""
    found = reader.call("service-quotas", "get_service_quota", ServiceCode="ec2", QuotaCode=code)
    return found if isinstance(found, Unknown) else float(found["Quota"]["Value"])


def running_vcpus(reader: Reader, code: str, spot: bool,
                  known: dict[str, dict[str, Any]]) -> int | Unknown:
    """vCPUs of running instances in the region that count against the quota `code`."""
    reservations = reader.pages("ec2", "describe_instances", "Reservations",
                                Filters=[{"Name": "instance-state-name", "Values": ["running"]}])
    if isinstance(reservations, Unknown):
        return reservations
    instances = [i for r in reservations for i in r.get("Instances", [])
                 if (i.get("InstanceLifecycle") == "spot") == spot
                 and (sizing.quota_for(i.get("InstanceType", ""), spot) or ("",))[0] == code]
    missing = sorted({i["InstanceType"] for i in instances if "CpuOptions" not in i} - set(known))
    infos = dict(known)
    if missing:
        more = reader.pages("ec2", "describe_instance_types", "InstanceTypes",
                            InstanceTypes=missing)
        if isinstance(more, Unknown):
            return more
        infos.update({i["InstanceType"]: i for i in more})
    total = 0
    for instance in instances:
        cpu = instance.get("CpuOptions")
        total += (int(cpu["CoreCount"]) * int(cpu.get("ThreadsPerCore", 1)) if cpu
                  else sizing.vcpus_of(infos.get(instance["InstanceType"], {})))
    return total
