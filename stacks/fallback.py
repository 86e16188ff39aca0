"""Fallback capacity: per failover instance type, a placement group, environment and queue.

`fallback_instance_types` lists them in failover order. Each type gets its own cluster placement
group, MANAGED on-demand environment (the stack's launch template, one subnet) and job queue;
the continuation controller moves a run stuck RUNNABLE for capacity to the next one
(continuation/README.md, "Decisions"). Resources are keyed by type (`for_each`), so reordering
the list changes only the controller's order, never a resource.

Zone rule: a type goes to the stack's second zone when that zone offers it, else to the
placement zone; the plan refuses a type neither offers. A capacity shortage is one (type, zone)
pool, so the second zone is a different pool even for the primary's own type, and both zones
already have a private subnet and an EFS mount target.
"""

from __future__ import annotations

from cdktf import Precondition, TerraformLocal, TerraformVariable, Token
from cdktf_cdktf_provider_aws.data_aws_ec2_instance_type import DataAwsEc2InstanceType
from cdktf_cdktf_provider_aws.data_aws_ec2_instance_type_offerings import (
    DataAwsEc2InstanceTypeOfferings,
    DataAwsEc2InstanceTypeOfferingsFilter,
)
from cdktf_cdktf_provider_aws.placement_group import PlacementGroup
from constructs import Construct

from jobs.preflight.sizing import registered_memory_hcl
from stacks.compute import Compute
from stacks.config import PlatformConfig, name, tags
from stacks.instance_types import capacity_condition, capacity_message
from stacks.scheduling import add_job_queue

SUBNETS_LOCAL = "fallback_subnet_ids"
SPECS_LOCAL = "fallback_queue_specs"
NAMES_LOCAL = "fallback_queue_names"
PRIMARY_LABEL = "mpi"  # the stack's multi-node queue is "<cluster>-mpi" (stacks/scheduling.py)
# "<cluster>-mpi_c6i-4xlarge": the primary queue's name, "_", the type with its dot made a hyphen
# (queue, environment and placement group names take letters, digits, hyphens and underscores).
# Cluster names have no "_", so "<primary>_" starts only this stack's fallback queues, never
# another stack's queue (whose cluster name might start with ours and a hyphen).
SEPARATOR = "_"
LABEL = PRIMARY_LABEL + SEPARATOR + '${replace(each.key, ".", "-")}'


def offered_pairs(offerings: str) -> str:
    """HCL: "type@zone-id" for every offering found."""
    return (f'[for i, z in {offerings}.locations : '
            f'format("%s@%s", {offerings}.instance_types[i], z)]')


def subnet_choice(wanted: str, pairs: str, second: tuple[str, str], pinned: str) -> str:
    """HCL: {type => subnet id}: the second zone's when it offers the type, else the pinned one."""
    zone, subnet = second
    return (f'{{for t in {wanted} : t => contains({pairs}, format("%s@%s", t, {zone})) '
            f"? {subnet} : {pinned}}}")


def zone_message(pinned_zone: str, second_zone: str) -> str:
    """The plan-time error when neither zone of the stack offers a fallback type."""
    return (f"fallback_instance_types: ${{each.key}} is offered in neither of the stack's zones "
            f"(${{{pinned_zone}}}, ${{{second_zone}}}): a fallback runs in one of them. Remove "
            "it, or check with aws ec2 describe-instance-type-offerings --location-type "
            "availability-zone-id --filters Name=instance-type,Values=${each.key}.")


def queue_arn_filter(queue_arn: str) -> list[object]:
    """An event pattern's `jobQueue`: the primary queue and every fallback queue."""
    # Fallback queues are named "<primary queue>_<type>", so one prefix matches them all
    # (EventBridge "Prefix matching", eventbridge/latest/userguide/eb-create-pattern-operators.html)
    # and the pattern stays plain JSON, the same for any list of fallbacks.
    return [queue_arn, {"prefix": f"{queue_arn}{SEPARATOR}"}]


def queue_arn_resources(queue_arn: str) -> list[str]:
    """IAM resources: the primary queue and every fallback queue (the same naming rule)."""
    return [queue_arn, f"{queue_arn}{SEPARATOR}*"]


def queue_specs_json(queue_name: str, slots: int, vcpus: int, memory_mib: int) -> str:
    """The controller's MNP_CONTINUATION_QUEUES: the primary's spec then each fallback's."""
    # queue_name is a reference: unquoted, CDKTF writes it bare inside the expression.
    primary = (f"{{name = {queue_name}, slots = {slots}, vcpus = {vcpus}, "
               f"memory_mib = {memory_mib}}}")
    return f"${{jsonencode(concat([{primary}], local.{SPECS_LOCAL}))}}"


class Fallback(Construct):
    """The failover environments and queues, and what the controller and outputs read of them."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 fallback_types: TerraformVariable, max_vcpus: TerraformVariable,
                 compute: Compute, zones: tuple[str, str], subnet_ids: tuple[str, str]) -> None:
        super().__init__(scope, id_)
        wanted = f"var.{fallback_types.friendly_unique_id}"
        each = f"${{toset({wanted})}}"
        lookup = DataAwsEc2InstanceType(self, "lookup", instance_type="${each.key}")
        # Raw for_each: CDKTF's iterator would wrap it in a second toset(${...}).
        lookup.add_override("for_each", each)
        types = f"data.{lookup.terraform_resource_type}.{lookup.friendly_unique_id}"
        # None asked, none looked up: EC2 filters need at least one value.
        offerings = DataAwsEc2InstanceTypeOfferings(
            self, "offerings", location_type="availability-zone-id",
            count=Token.as_number(f"${{length({wanted}) > 0 ? 1 : 0}}"),
            filter=[DataAwsEc2InstanceTypeOfferingsFilter(name="instance-type",
                                                          values=fallback_types.list_value)])
        found = f"data.{offerings.terraform_resource_type}.{offerings.friendly_unique_id}[0]"
        pairs = offered_pairs(found)
        pinned_zone, second_zone = zones
        pinned_subnet, second_subnet = subnet_ids
        self._local(SUBNETS_LOCAL, subnet_choice(
            wanted, pairs, (second_zone, second_subnet), pinned_subnet))
        group = PlacementGroup(self, "placement_group", name=name(cluster, LABEL),
                               strategy="cluster", tags=tags(cluster))
        group.add_override("for_each", each)
        vcpus = f"{{for t in {wanted} : t => {types}[t].default_vcpus}}"
        offered = (f"contains({pairs}, format(\"%s@%s\", each.key, {second_zone})) || "
                   f"contains({pairs}, format(\"%s@%s\", each.key, {pinned_zone}))")
        max_ = f"var.{max_vcpus.friendly_unique_id}"
        environment = compute.add_mnp_environment(
            "fallback_compute_environment", LABEL,
            [f"${{local.{SUBNETS_LOCAL}[each.key]}}"],
            f"${{{group.terraform_resource_type}.{group.friendly_unique_id}[each.key].name}}",
            checks=[Precondition(condition=f"${{{offered}}}",
                                 error_message=zone_message(pinned_zone, second_zone)),
                    Precondition(condition=f"${{{capacity_condition(vcpus, 'each.key', max_)}}}",
                                 error_message=capacity_message(vcpus, "each.key", max_))])
        environment.add_override("for_each", each)
        environment.add_override("compute_resources.instance_type", "${[each.key]}")
        queue = add_job_queue(
            self, "job_queue", queue_name=name(cluster, LABEL),
            environment_arn=(f"${{{environment.terraform_resource_type}."
                             f"{environment.friendly_unique_id}[each.key].arn}}"),
            cancel_after_s=config.limits.runnable_cancel_after_s, cluster=cluster)
        queue.add_override("for_each", each)
        queues = f"{queue.terraform_resource_type}.{queue.friendly_unique_id}"
        self._local(NAMES_LOCAL, f"[for t in {wanted} : {queues}[t].name]")
        # A whole node of each type, as the CLI's --whole-node sizes one (jobs/preflight/sizing).
        self._local(SPECS_LOCAL, (
            f"[for t in {wanted} : {{name = {queues}[t].name, slots = {types}[t].default_vcpus, "
            f"vcpus = {types}[t].default_vcpus, "
            f"memory_mib = {registered_memory_hcl(f'{types}[t].memory_size')}}}]"))

    @property
    def queue_names(self) -> str:
        """The fallback queues' names in failover order (a Terraform list)."""
        return f"${{local.{NAMES_LOCAL}}}"

    def _local(self, local_name: str, expression: str) -> TerraformLocal:
        local = TerraformLocal(self, local_name, f"${{{expression}}}")
        # Fixed names: the other constructs refer to local.<name>.
        local.override_logical_id(local_name)
        return local

