"""The stack's Terraform variables, each typed, described and validated."""

from __future__ import annotations

from cdktf import TerraformResource, TerraformVariable, TerraformVariableValidationConfig, Token
from constructs import Construct

from stacks.config import (
    CLUSTER_NAME_FORBIDDEN_PREFIX,
    CLUSTER_NAME_PATTERN,
    CLUSTER_NAME_RULE,
    EFS_THROUGHPUT_MAX,
    EFS_THROUGHPUT_MIN,
    EFS_THROUGHPUT_MODES,
    FSX_CAPACITY_RULE,
    FSX_CAPACITY_STEP_GIB,
    FSX_SMALLEST_GIB,
    FSX_THROUGHPUTS,
    IMAGE_TAG_PATTERN,
    INSTANCE_TYPE_PATTERN,
    MAX_VCPUS_LIMIT,
    S3_BUCKET_PATTERN,
    S3_PREFIX_PATTERN,
    S3_PREFIX_RULE,
    VPC_PREFIX_MAX,
    VPC_PREFIX_MIN,
    StackSettings,
    StagingDefaults,
)
from stacks.zones import ZONE_ID_PATTERN

SPOT_ENABLED = "var.enable_spot_queue"
COMPLIANCE_ENABLED = "var.enable_compliance"
RECORDER_CHOICES = ("create", "existing")
RECORDER_CREATED = 'var.config_recorder == "create"'
EFA_ENABLED = "var.enable_efa"
CONTINUATION_ENABLED = "var.enable_continuation"
EFA_NOT_SYNTHESIZED = ("enable_efa = true needs a stack synthesized for EFA: run "
                       "ENABLE_EFA=1 make synth, then plan again (the job definition's EFA "
                       "devices and settings are written at synth time).")
FSX_ENABLED = "var.enable_fsx"
FSX_NOT_SYNTHESIZED = ("enable_fsx = true needs a stack synthesized for FSx: run "
                       "ENABLE_FSX=1 make synth, then plan again (the file system, its mount in "
                       "the node user data and the job definition's volume are written at synth "
                       "time).")


def spot_count() -> float:
    """`count` of every Spot resource: 1 when enable_spot_queue, else 0."""
    # Raw expression: CDKTF's conditional helpers render 'undefined' from Python.
    return Token.as_number(f"${{{SPOT_ENABLED} ? 1 : 0}}")


def counted_ref(resource: TerraformResource, attribute: str) -> str:
    """Reference an attribute of a counted resource (instance 0), without the ${}."""
    return (f"{resource.terraform_resource_type}.{resource.friendly_unique_id}[0]"
            f".{attribute}")


def _hcl(pattern: str) -> str:
    """A Python regex as an HCL string literal (backslashes doubled)."""
    return '"' + pattern.replace("\\", "\\\\") + '"'


class Variables(Construct):
    """Declares every input a user sets in terraform.tfvars; defaults come from StackSettings."""

    def __init__(self, scope: Construct, id_: str, *, settings: StackSettings,
                 staging: StagingDefaults) -> None:
        # One declaration per variable, in tfvars order: long because the table is.
        super().__init__(scope, id_)
        modes = ", ".join(f'"{m}"' for m in EFS_THROUGHPUT_MODES)
        self.cluster_name = self._add(
            "cluster_name", "string", settings.cluster_name,
            f"Prefix of every resource name: {CLUSTER_NAME_RULE} (ECR repository and "
            "security group names).",
            f"can(regex({_hcl(CLUSTER_NAME_PATTERN)}, var.cluster_name)) && "
            f'!startswith(var.cluster_name, "{CLUSTER_NAME_FORBIDDEN_PREFIX}")',
            f"cluster_name must be {CLUSTER_NAME_RULE}.")
        self.vpc_cidr = self._add(
            "vpc_cidr", "string", settings.vpc_cidr,
            f"IPv4 range of the VPC, /{VPC_PREFIX_MIN} to /{VPC_PREFIX_MAX}: the one pinned "
            "private subnet needs an address per node container and per instance.",
            "can(regex(\"^\\\\d+\\\\.\\\\d+\\\\.\\\\d+\\\\.\\\\d+/\\\\d+$\", var.vpc_cidr)) && "
            "try(cidrsubnet(var.vpc_cidr, 0, 0) == var.vpc_cidr, false) && "
            f"try(tonumber(split(\"/\", var.vpc_cidr)[1]) >= {VPC_PREFIX_MIN} && "
            f"tonumber(split(\"/\", var.vpc_cidr)[1]) <= {VPC_PREFIX_MAX}, false)",
            f"vpc_cidr must be an IPv4 network address like 10.42.0.0/16 with a prefix from "
            f"/{VPC_PREFIX_MIN} to /{VPC_PREFIX_MAX}.")
        self.instance_types = self._add(
            "instance_types", "list(string)", list(settings.instance_types),
            "EC2 instance types the compute environment may launch; every node of one job "
            "runs the same type.",
            "length(var.instance_types) > 0 && alltrue([for t in var.instance_types : "
            f"can(regex({_hcl(INSTANCE_TYPE_PATTERN)}, t))])",
            "instance_types must be a non-empty list of EC2 instance types such as "
            "[\"c6i.2xlarge\"].")
        bad = (f"[for t in var.fallback_instance_types : t "
               f"if !can(regex({_hcl(INSTANCE_TYPE_PATTERN)}, t))]")
        self.fallback_instance_types = self._add(
            "fallback_instance_types", "list(string)", list(settings.fallback_instance_types),
            "Failover instance types, in order: each gets its own multi-node compute "
            "environment, cluster placement group and job queue (empty ones cost nothing), and "
            "the continuation controller moves a run stuck RUNNABLE for capacity to the next "
            "one with the same total ranks (stacks/README.md, \"Fallback capacity\").",
            f"length({bad}) == 0 && length(distinct(var.fallback_instance_types)) == "
            "length(var.fallback_instance_types)",
            f"fallback_instance_types must list distinct EC2 instance types such as "
            f"[\"c6i.4xlarge\"] (pattern {INSTANCE_TYPE_PATTERN}); not allowed: "
            f"[${{join(\", \", length({bad}) > 0 ? {bad} : "
            "[for i, t in var.fallback_instance_types : t "
            "if index(var.fallback_instance_types, t) != i])}].")
        self.placement_zone_id = self._add(
            "placement_zone_id", "string", "",
            "Zone id (such as use1-az4) of the cluster placement group and its subnet; \"\" "
            "lets the stack choose at the first apply (the lowest id offering every instance "
            "type) and keep that zone. Changing it replaces the pinned subnet, its EFS mount "
            "target and the multi-node compute environment.",
            f'var.placement_zone_id == "" || can(regex({_hcl(ZONE_ID_PATTERN)}, '
            "var.placement_zone_id))",
            'placement_zone_id must be "" or an availability zone id such as use1-az4 (aws ec2 '
            "describe-availability-zones --query 'AvailabilityZones[].ZoneId').")
        self.max_vcpus = self._add(
            "max_vcpus", "number", settings.max_vcpus,
            "Most vCPUs the compute environment runs at once (nodes x vCPUs per node).",
            f"var.max_vcpus >= 1 && var.max_vcpus <= {MAX_VCPUS_LIMIT} && "
            "floor(var.max_vcpus) == var.max_vcpus",
            f"max_vcpus must be a whole number from 1 to {MAX_VCPUS_LIMIT} (1,000 nodes, "
            "Batch's multi-node limit, of the largest EC2 instance, 896 vCPUs).")
        self.efs_throughput_mode = self._add(
            "efs_throughput_mode", "string", settings.efs_throughput_mode,
            f"EFS throughput mode: one of {modes}.",
            f"contains([{modes}], var.efs_throughput_mode)",
            f"efs_throughput_mode must be one of {modes}.")
        self.efs_provisioned_throughput = self._add(
            "efs_provisioned_throughput", "number", settings.efs_provisioned_throughput,
            f"EFS throughput in MiB/s ({EFS_THROUGHPUT_MIN}-{EFS_THROUGHPUT_MAX}), used only "
            "when efs_throughput_mode is \"provisioned\".",
            f"var.efs_provisioned_throughput >= {EFS_THROUGHPUT_MIN} && "
            f"var.efs_provisioned_throughput <= {EFS_THROUGHPUT_MAX}",
            f"efs_provisioned_throughput must be from {EFS_THROUGHPUT_MIN} to "
            f"{EFS_THROUGHPUT_MAX} MiB/s.")
        self.image_tag = self._add(
            "image_tag", "string", "latest",
            "Tag of the solver image in the stack's ECR repository (tags are immutable: push "
            "each build under a new tag).",
            f"can(regex({_hcl(IMAGE_TAG_PATTERN)}, var.image_tag))",
            "image_tag must be 1-128 letters, digits, '_', '.' or '-', not starting with "
            "'.' or '-'.")
        self.alarm_email = self._add(
            "alarm_email", "string", "",
            "Email address notified of failed jobs and alarms; empty for none.",
            "var.alarm_email == \"\" || can(regex(\"^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$\", "
            "var.alarm_email))",
            "alarm_email must be empty or an email address like name@example.com.")
        self.enable_spot_queue = self._add(
            "enable_spot_queue", "bool", False,
            "Also create a single-node Spot queue for embarrassingly parallel work "
            "(multi-node jobs never run on Spot). Terraform's bool type rejects other values.",
            None, None)
        # The job definition's EFA devices and settings are written at synth time (its JSON
        # text is also read as plain JSON by run-local), so a stack synthesized without EFA
        # refuses enable_efa = true instead of half-enabling it.
        self.enable_efa = self._add(
            "enable_efa", "bool", settings.enable_efa,
            "Elastic Fabric Adapter on the multi-node nodes: EFA interfaces in the launch "
            "template, the uverbs devices and MNP_NETWORK=efa in the job definition; every "
            "instance type must support EFA. The stack must be synthesized with ENABLE_EFA=1 "
            "to turn it on.",
            None if settings.enable_efa else "!var.enable_efa",
            None if settings.enable_efa else EFA_NOT_SYNTHESIZED)
        self._add_compliance(settings)
        self._add_fsx(settings)
        self.enable_continuation = self._add(
            "enable_continuation", "bool", True,
            "The continuation controller: a Lambda function that continues runs submitted with "
            "--min-nodes on fewer nodes after a lost node, a stop or a capacity wait "
            "(continuation/README.md). Jobs without that tag are left alone.", None, None)
        self._add_data(staging)

    def _add_fsx(self, settings: StackSettings) -> None:
        """The Lustre switch (synth-time, as EFA) and the file system's size and speed."""
        self.enable_fsx = self._add(
            "enable_fsx", "bool", settings.enable_fsx,
            "FSx for Lustre (PERSISTENT_2) in the pinned zone, linked to the data bucket (import "
            "and export), mounted on every node and passed to the job definition. The stack "
            "must be synthesized with ENABLE_FSX=1 to turn it on.",
            None if settings.enable_fsx else f"!{FSX_ENABLED}",
            None if settings.enable_fsx else FSX_NOT_SYNTHESIZED)
        self.fsx_storage_capacity_gib = self._add(
            "fsx_storage_capacity_gib", "number", settings.fsx_storage_capacity_gib,
            f"With enable_fsx: Lustre storage in GiB, {FSX_CAPACITY_RULE}; billed per GiB-month.",
            f"var.fsx_storage_capacity_gib == {FSX_SMALLEST_GIB} || "
            f"(var.fsx_storage_capacity_gib > 0 && "
            f"var.fsx_storage_capacity_gib % {FSX_CAPACITY_STEP_GIB} == 0)",
            f"fsx_storage_capacity_gib must be {FSX_CAPACITY_RULE}.")
        throughputs = ", ".join(map(str, FSX_THROUGHPUTS))
        self.fsx_throughput_per_unit = self._add(
            "fsx_throughput_per_unit", "number", settings.fsx_throughput_per_unit,
            f"With enable_fsx: MB/s per TiB of storage, one of {throughputs} (PERSISTENT_2); "
            "the file system's throughput is this times its TiB, and its price rises with it.",
            f"contains([{throughputs}], var.fsx_throughput_per_unit)",
            f"fsx_throughput_per_unit must be one of {throughputs} MB/s/TiB.")

    def _add_compliance(self, settings: StackSettings) -> None:
        """The audit switch and whether the account's Config recorder is ours to create."""
        self.enable_compliance = self._add(
            "enable_compliance", "bool", settings.enable_compliance,
            "Audit and compliance: a CloudTrail trail (all regions, log file validation) to an "
            "encrypted, non-public S3 bucket, and AWS Config managed rules for this stack's "
            "resources (ENABLE_COMPLIANCE at synth sets the default).", None, None)
        choices = ", ".join(f'"{c}"' for c in RECORDER_CHOICES)
        self.config_recorder = self._add(
            "config_recorder", "string", RECORDER_CHOICES[0],
            "With enable_compliance: \"create\" the account's AWS Config recorder (one per "
            "account and region) and its delivery channel, or use the \"existing\" one and add "
            "only the rules.",
            f"contains([{choices}], var.config_recorder)",
            f"config_recorder must be one of {choices}: an account and region hold one AWS "
            "Config recorder, so use \"existing\" where one already records.")

    def _add_data(self, staging: StagingDefaults) -> None:
        """The data bucket (created, or an existing one by name) and its two folders."""
        self.data_bucket_name = self._add(
            "data_bucket_name", "string", "",
            "S3 bucket for job inputs and outputs: \"\" creates one (encrypted with the stack's "
            "key, versioned, TLS only, never public); a name uses that existing bucket of the "
            "stack's region as it is (SSE-S3 or the stack's key).",
            f'var.data_bucket_name == "" || (can(regex({_hcl(S3_BUCKET_PATTERN)}, '
            'var.data_bucket_name)) && !strcontains(var.data_bucket_name, ".."))',
            'data_bucket_name must be "" (create one) or an S3 bucket name: 3-63 lowercase '
            "letters, digits, dots or hyphens.")
        self.data_input_prefix = self._add_prefix("input", staging.input_prefix, "read")
        self.data_output_prefix = self._add_prefix("output", staging.output_prefix, "write")

    def _add_prefix(self, label: str, default: str, verb: str) -> TerraformVariable:
        var_name = f"data_{label}_prefix"
        return self._add(
            var_name, "string", default,
            f"Folder of the data bucket that staging jobs {verb} below (their role may {verb} "
            f"nothing else there): {S3_PREFIX_RULE}.",
            f"can(regex({_hcl(S3_PREFIX_PATTERN)}, var.{var_name}))",
            f"{var_name} must be {S3_PREFIX_RULE}.")

    def _add(self, var_name: str, type_: str, default: object, description: str,
             condition: str | None, message: str | None) -> TerraformVariable:
        validation = ([TerraformVariableValidationConfig(
            condition=f"${{{condition}}}", error_message=message)] if condition else None)
        variable = TerraformVariable(self, var_name, type=type_, default=default,
                                     description=description, nullable=False,
                                     validation=validation)
        # Fixed names: conditions say var.<name>, and users set exactly these in tfvars.
        variable.override_logical_id(var_name)
        return variable
