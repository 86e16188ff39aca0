"""EC2 capacity: cluster placement groups, node launch templates, both compute environments."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from cdktf import Precondition, TerraformLocal, TerraformResourceLifecycle, Token
from cdktf_cdktf_provider_aws.batch_compute_environment import (
    BatchComputeEnvironment,
    BatchComputeEnvironmentComputeResources,
    BatchComputeEnvironmentComputeResourcesEc2Configuration,
    BatchComputeEnvironmentComputeResourcesLaunchTemplate,
)
from cdktf_cdktf_provider_aws.launch_template import (
    LaunchTemplate,
    LaunchTemplateBlockDeviceMappings,
    LaunchTemplateBlockDeviceMappingsEbs,
    LaunchTemplateMetadataOptions,
)
from cdktf_cdktf_provider_aws.placement_group import PlacementGroup
from constructs import Construct

from stacks import spot_interruption
from stacks.config import PlatformConfig, name, tags
from stacks.efa import INTERFACES_LOCAL, Efa
from stacks.lustre import Lustre
from stacks.variables import EFA_ENABLED, FSX_ENABLED, counted_ref

USER_DATA_BOUNDARY = "==MNPBOUNDARY=="
FSX_USER_DATA_LOCAL = "node_user_data_fsx"  # the MIME text with the Lustre part
SPOT_FSX_USER_DATA_LOCAL = "spot_node_user_data_fsx"  # the same for Spot instances
# Keeps awsvpc containers (every MNP node) off the instance role's credentials: the documented
# control for awsvpc tasks
# (docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html).
ECS_CONFIG = ("ECS_AWSVPC_BLOCK_IMDS=true",)
IMDS_ADDRESS = "169.254.169.254"


def imds_block(uid: int) -> str:
    """Shell: refuse the instance metadata address to processes of `uid` in the host's network."""
    # Single-node (Spot queue) jobs run in host network mode, where neither the hop limit nor
    # ECS_AWSVPC_BLOCK_IMDS applies: their packets leave through the host's own OUTPUT chain,
    # which the owner match (iptables-extensions: "locally generated packets", OUTPUT only)
    # sorts by uid. The ECS agent runs as root and keeps its access; awsvpc tasks have their
    # own network namespace and never pass this chain.
    return (f"iptables -w --insert OUTPUT --destination {IMDS_ADDRESS} --match owner "
            f"--uid-owner {uid} --jump REJECT\n")


def node_script(job_uid: int, ecs_config: tuple[str, ...] = ECS_CONFIG) -> str:
    """The first user-data part: ecs.config lines and the IMDS block."""
    return ("#!/bin/bash\n" + "".join(f"echo '{line}' >> /etc/ecs/ecs.config\n"
                                      for line in ecs_config)
            + imds_block(job_uid))


def user_data_text(*scripts: str) -> str:
    """MIME multi-part user data, one text/x-shellscript part per script, run in order."""
    # Batch merges its own part into ours, so it requires MIME multi-part user data
    # (docs.aws.amazon.com/batch/latest/userguide/launch-templates.html).
    archive = MIMEMultipart(boundary=USER_DATA_BOUNDARY)
    for script in scripts:
        archive.attach(MIMEText(script, "x-shellscript", "us-ascii"))
    return archive.as_string()


def user_data(job_uid: int, ecs_config: tuple[str, ...] = ECS_CONFIG) -> str:
    """Launch-template user data: ecs.config lines and the IMDS block; MIME multi-part, base64."""
    # The launch template's user_data takes base64 (the provider does not encode it).
    return base64.b64encode(user_data_text(node_script(job_uid, ecs_config)).encode()).decode(
        "ascii")


def literal(text: str) -> str:
    """`text` as a Terraform string template that renders to itself."""
    # Template sequences (developer.hashicorp.com/terraform/language/expressions/strings).
    return text.replace("${", "$${").replace("%{", "%%{")


def _attribute(resource: LaunchTemplate, attribute: str) -> str:
    """A reference to the template's attribute, of instance 0 when it is counted."""
    if resource.count is None:
        return Token.as_string(getattr(resource, attribute))
    return f"${{{counted_ref(resource, attribute)}}}"


@dataclass(frozen=True)
class NodePlacement:
    """Where and as what nodes launch: shared by the on-demand and the Spot environment."""

    instance_types: list[str]
    max_vcpus: float
    security_group_id: str
    instance_profile_arn: str


class Compute(Construct):
    """On-demand MNP capacity and optional Spot capacity, each in one zone with a cluster
    placement group and a launch template of its own."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 placement: NodePlacement, pinned_subnet_id: str, spot_count: float,
                 efa: Efa | None = None, lustre: Lustre | None = None,
                 checks: list[Precondition] | None = None) -> None:
        super().__init__(scope, id_)
        self._cluster = cluster
        self._config = config
        self._placement = placement
        self._efa = efa
        self._lustre = lustre
        uid = int(config.node.user.split(":")[0])  # every job definition's "uid:gid"
        self.placement_group = self._add_placement_group("placement_group", "mpi")
        self.launch_template = self._add_launch_template(
            "launch_template", "node", self._user_data(node_script(uid), FSX_USER_DATA_LOCAL))
        # Spot gangs are one MPI world, so they get the same low-latency placement as a
        # multi-node job: a cluster group of their own, existing only with the Spot queue. Its
        # template adds the interruption handling (stacks/spot_interruption.py).
        self.spot_placement_group = self._add_placement_group("spot_placement_group", "spot-mpi",
                                                               count=spot_count)
        self.spot_launch_template = self._add_launch_template(
            "spot_launch_template", "spot-node",
            self._user_data(node_script(uid, ECS_CONFIG + spot_interruption.ECS_CONFIG),
                            SPOT_FSX_USER_DATA_LOCAL, spot_interruption.watcher_script()),
            count=spot_count)
        # --- Environments
        # EC2 on-demand: multi-node jobs do not run on Spot or Fargate. One subnet: the cluster
        # placement group lives in a single zone.
        self.mnp_environment = self._add_environment(
            "compute_environment", "mnp", "node", "EC2", "BEST_FIT_PROGRESSIVE",
            [pinned_subnet_id], self.launch_template, placement_group=self.placement_group.name,
            checks=checks)
        # The pinned subnet too: "A cluster placement group is a logical grouping of instances
        # within a single Availability Zone" (docs.aws.amazon.com/AWSEC2/latest/UserGuide/
        # placement-strategies.html), so Spot capacity comes from that zone alone.
        self.spot_environment = self._add_environment(
            "spot_compute_environment", "spot", "spot-node", "SPOT",
            "SPOT_PRICE_CAPACITY_OPTIMIZED", [pinned_subnet_id],
            self.spot_launch_template, count=spot_count,
            placement_group=f"${{{counted_ref(self.spot_placement_group, 'name')}}}")
        self.spot_environment_arn = f"${{{counted_ref(self.spot_environment, 'arn')}}}"

    def add_mnp_environment(self, id_: str, label: str, subnet_ids: list[str],
                            placement_group: str,
                            checks: list[Precondition] | None = None) -> BatchComputeEnvironment:
        """Another on-demand multi-node environment on the same launch template (fallbacks)."""
        return self._add_environment(id_, label, "node", "EC2", "BEST_FIT_PROGRESSIVE",
                                     subnet_ids, self.launch_template,
                                     placement_group=placement_group, checks=checks)

    def _add_placement_group(self, id_: str, label: str, *,
                             count: float | None = None) -> PlacementGroup:
        return PlacementGroup(self, id_, name=name(self._cluster, label), strategy="cluster",
                              count=count, tags=tags(self._cluster))

    def _add_launch_template(self, id_: str, label: str, user_data_: str, *,
                             count: float | None = None) -> LaunchTemplate:
        """IMDSv2 only, `user_data_`, encrypted gp3 root volume; EFA interfaces."""
        efa = self._efa
        template = LaunchTemplate(
            self, id_, name_prefix=f"{name(self._cluster, label)}-", count=count,
            user_data=user_data_,
            # Hop limit 1 keeps bridge-mode containers (an extra hop) off IMDS; awsvpc task
            # ENIs are kept off by ECS_AWSVPC_BLOCK_IMDS in the user data, not by this.
            metadata_options=LaunchTemplateMetadataOptions(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1),
            block_device_mappings=[LaunchTemplateBlockDeviceMappings(
                device_name="/dev/xvda",
                ebs=LaunchTemplateBlockDeviceMappingsEbs(
                    volume_size=self._config.limits.root_volume_gib, volume_type="gp3",
                    encrypted="true", delete_on_termination="true"))],
            lifecycle=(TerraformResourceLifecycle(precondition=efa.preconditions())
                       if efa else None),
            tags=tags(self._cluster))
        if efa:
            self._add_efa_interfaces(template)
        return template

    def _user_data(self, first: str, fsx_local: str, *more: str) -> str:
        """Base64 user data of the parts `first` and `more`; with FSx synthesized, the Lustre
        part (in the Terraform local `fsx_local`) follows `first` when enable_fsx."""
        plain = base64.b64encode(user_data_text(first, *more).encode()).decode("ascii")
        if not self._lustre:
            return plain
        # Terraform renders this text (the Lustre part names the file system's DNS and mount
        # names), so the other parts' own ${ and %{ are escaped for it.
        local = TerraformLocal(self, fsx_local, user_data_text(
            literal(first), self._lustre.node_script(), *map(literal, more)))
        local.override_logical_id(fsx_local)
        return f'${{{FSX_ENABLED} ? base64encode(local.{fsx_local}) : "{plain}"}}'

    def _add_efa_interfaces(self, template: LaunchTemplate) -> None:
        """One `efa` interface per network card the instance types allow (none when off)."""
        # A dynamic block: the count comes from the instance-type lookups at plan.
        template.add_override("dynamic.network_interfaces", {
            "for_each": f"${{local.{INTERFACES_LOCAL}}}",
            "content": {
                "network_card_index": "${network_interfaces.value.network_card_index}",
                "device_index": "${network_interfaces.value.device_index}",
                "interface_type": "efa",
                # With interfaces in the template, groups go on each interface (EC2 refuses
                # template-level ones then); EFA needs the group that admits itself
                # (docs.aws.amazon.com/AWSEC2/latest/UserGuide/efa-start.html#efa-start-security).
                "security_groups": [self._placement.security_group_id],
                "delete_on_termination": "true",
                # No subnet: the environment's subnet places the instances; aws-samples/
                # aws-batch-efa names its one subnet in both.
            }})

    def _add_environment(self, id_: str, label: str, node_label: str, capacity: str,
                         allocation_strategy: str, subnet_ids: list[str],
                         template: LaunchTemplate, *, placement_group: str | None = None,
                         count: float | None = None,
                         checks: list[Precondition] | None = None) -> BatchComputeEnvironment:
        """A MANAGED environment on `template` and the ECS AL2023 image."""
        placement = self._placement
        return BatchComputeEnvironment(
            self, id_, name_prefix=f"{name(self._cluster, label)}-", type="MANAGED", count=count,
            compute_resources=BatchComputeEnvironmentComputeResources(
                type=capacity, allocation_strategy=allocation_strategy,
                min_vcpus=0, max_vcpus=placement.max_vcpus,
                instance_type=placement.instance_types,
                subnets=subnet_ids, security_group_ids=self._security_group_ids(),
                instance_role=placement.instance_profile_arn, placement_group=placement_group,
                launch_template=BatchComputeEnvironmentComputeResourcesLaunchTemplate(
                    launch_template_id=_attribute(template, "id"),
                    version=_attribute(template, "latest_version")),
                ec2_configuration=[BatchComputeEnvironmentComputeResourcesEc2Configuration(
                    image_type="ECS_AL2023")],
                tags=tags(self._cluster, Name=name(self._cluster, node_label))),
            # Most compute-resource changes force replacement; a prefix lets the new one exist
            # before the queue is moved off the old one.
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True,
                                                 precondition=checks),
            tags=tags(self._cluster))

    def _security_group_ids(self) -> list[str]:
        """The environment's groups, unless the launch template's EFA interfaces carry them."""
        group = self._placement.security_group_id
        if not self._efa:
            return [group]
        # Batch: "Either compute environment Security Groups or Network Interfaces in Launch
        # template are exclusively allowed" (its CreateComputeEnvironment error; aws/aws-cdk#21577).
        return Token.as_list(f"${{{EFA_ENABLED} ? null : [{group}]}}")
