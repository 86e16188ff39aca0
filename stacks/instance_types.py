"""What EC2 says about each instance type at plan: one lookup per type, and the capacity check."""

from __future__ import annotations

from cdktf import Precondition, TerraformLocal, TerraformVariable
from cdktf_cdktf_provider_aws.data_aws_ec2_instance_type import DataAwsEc2InstanceType
from constructs import Construct

VCPUS_LOCAL = "instance_vcpus"
LARGEST_LOCAL = "largest_instance_type"
# A multi-node job's nodes all start before it runs, and the smallest job has two nodes.
MIN_NODES = 2


def vcpus_by_type(types: str, wanted: str) -> str:
    """HCL: {type => its default vCPUs}."""
    return f"{{for t in {wanted} : t => {types}[t].default_vcpus}}"


def largest_type(vcpus: str) -> str:
    """HCL: the type with the most vCPUs (the first listed of equals)."""
    return f"[for t, v in {vcpus} : t if v == max(values({vcpus})...)][0]"


def capacity_condition(vcpus: str, largest: str, max_vcpus: str) -> str:
    """HCL: max_vcpus holds MIN_NODES nodes of the largest type."""
    return f"{max_vcpus} >= {MIN_NODES} * {vcpus}[{largest}]"


def capacity_message(vcpus: str, largest: str, max_vcpus: str) -> str:
    """The plan-time error when it does not: it names the type and the smallest max_vcpus."""
    return (f"max_vcpus = ${{{max_vcpus}}} holds fewer than {MIN_NODES} nodes of "
            f"${{{largest}}} (${{{vcpus}[{largest}]}} vCPUs each): Batch never exceeds "
            "max_vcpus by more than one instance, so a multi-node job would stay RUNNABLE until "
            f"the queue cancels it. Set max_vcpus to at least ${{{MIN_NODES} * "
            f"{vcpus}[{largest}]}} (nodes x vCPUs of the largest type), or list smaller "
            "instance_types.")


class InstanceTypes(Construct):
    """Looks up every type of `instance_types` (DescribeInstanceTypes) for the plan-time checks."""

    def __init__(self, scope: Construct, id_: str, *, instance_types: TerraformVariable,
                 max_vcpus: TerraformVariable) -> None:
        super().__init__(scope, id_)
        self.wanted = f"var.{instance_types.friendly_unique_id}"
        self._max_vcpus = f"var.{max_vcpus.friendly_unique_id}"
        lookup = DataAwsEc2InstanceType(self, "lookup", instance_type="${each.key}")
        # Raw for_each: CDKTF's iterator would wrap it in a second toset(${...}).
        lookup.add_override("for_each", f"${{toset({self.wanted})}}")
        self.lookups = f"data.{lookup.terraform_resource_type}.{lookup.friendly_unique_id}"
        self._local(VCPUS_LOCAL, vcpus_by_type(self.lookups, self.wanted))
        self._local(LARGEST_LOCAL, largest_type(f"local.{VCPUS_LOCAL}"))

    def capacity_preconditions(self) -> list[Precondition]:
        """Checked at plan: max_vcpus holds two nodes of the largest type."""
        # "AWS Batch never exceeds maxvCpus by more than a single instance"
        # (docs.aws.amazon.com/batch/latest/APIReference/API_ComputeResource.html, maxvCpus).
        args = (f"local.{VCPUS_LOCAL}", f"local.{LARGEST_LOCAL}", self._max_vcpus)
        return [Precondition(condition=f"${{{capacity_condition(*args)}}}",
                             error_message=capacity_message(*args))]

    def _local(self, local_name: str, expression: str) -> TerraformLocal:
        local = TerraformLocal(self, local_name, f"${{{expression}}}")
        # Fixed names: the checks refer to local.<name>.
        local.override_logical_id(local_name)
        return local
