"""Batch compute environment, job queue and the multi-node job definition."""

from __future__ import annotations

import json
from dataclasses import dataclass

from cdktf import TerraformResourceLifecycle, Token
from cdktf_cdktf_provider_aws.batch_compute_environment import (
    BatchComputeEnvironment,
    BatchComputeEnvironmentComputeResources,
    BatchComputeEnvironmentComputeResourcesEc2Configuration,
    BatchComputeEnvironmentComputeResourcesLaunchTemplate,
)
from cdktf_cdktf_provider_aws.batch_job_definition import (
    BatchJobDefinition,
    BatchJobDefinitionRetryStrategy,
    BatchJobDefinitionRetryStrategyEvaluateOnExit,
    BatchJobDefinitionTimeout,
)
from cdktf_cdktf_provider_aws.batch_job_queue import (
    BatchJobQueue,
    BatchJobQueueComputeEnvironmentOrder,
    BatchJobQueueJobStateTimeLimitAction,
)
from cdktf_cdktf_provider_aws.launch_template import (
    LaunchTemplate,
    LaunchTemplateBlockDeviceMappings,
    LaunchTemplateBlockDeviceMappingsEbs,
    LaunchTemplateMetadataOptions,
)
from cdktf_cdktf_provider_aws.placement_group import PlacementGroup
from constructs import Construct

from solver.exitcodes import EVALUATE_ON_EXIT
from stacks.config import NodeDefaults, PlatformConfig, name, tags

# Queue reasons after which a RUNNABLE job can never start on its own.
STUCK_RUNNABLE_REASONS = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
)
EFS_VOLUME = "efs"


@dataclass(frozen=True)
class JobWiring:
    """Resource handles a job's container needs, as Terraform references."""

    image: str
    job_role_arn: str
    execution_role_arn: str
    file_system_id: str
    access_point_id: str
    log_group_name: str
    region: str


def container_properties(node: NodeDefaults, wiring: JobWiring) -> dict:
    """The container block of the job definition (Batch API shape), shared by node ranges."""
    return {
        "image": wiring.image,
        "command": list(node.command),
        "resourceRequirements": [{"type": "VCPU", "value": str(node.vcpus)},
                                 {"type": "MEMORY", "value": str(node.memory_mib)}],
        "environment": [
            # The container cannot see its vCPU reservation (nproc shows the host's).
            {"name": "MNP_RANKS_PER_NODE", "value": str(node.vcpus)},
            {"name": "MNP_RENDEZVOUS_TIMEOUT", "value": str(node.rendezvous_timeout_s)},
            {"name": "OUTPUT_PATH", "value": f"{node.efs_mount_path}/output"},
        ],
        "jobRoleArn": wiring.job_role_arn,
        "executionRoleArn": wiring.execution_role_arn,
        "user": node.user,
        "privileged": False,
        "volumes": [{"name": EFS_VOLUME, "efsVolumeConfiguration": {
            "fileSystemId": wiring.file_system_id,
            "transitEncryption": "ENABLED",
            "authorizationConfig": {"accessPointId": wiring.access_point_id, "iam": "ENABLED"}}}],
        "mountPoints": [{"sourceVolume": EFS_VOLUME, "containerPath": node.efs_mount_path,
                         "readOnly": False}],
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": wiring.log_group_name, "awslogs-region": wiring.region,
            "awslogs-stream-prefix": "mnp"}},
        # Open MPI's shared-memory transport needs more than Docker's 64 MiB /dev/shm.
        "linuxParameters": {"sharedMemorySize": node.shared_memory_mib,
                            "initProcessEnabled": True},
        "ulimits": [{"name": "memlock", "softLimit": -1, "hardLimit": -1},
                    {"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
    }


def node_properties(node: NodeDefaults, wiring: JobWiring) -> dict:
    """One open-ended node range '0:' so that submit-time nodeOverrides.numNodes works."""
    return {"mainNode": 0, "numNodes": node.num_nodes,
            "nodeRangeProperties": [{"targetNodes": "0:",
                                     "container": container_properties(node, wiring)}]}


def node_image(template: LaunchTemplate) -> dict:
    """Compute-resource settings every environment shares: our launch template, ECS AL2023 AMI."""
    return {"launch_template": BatchComputeEnvironmentComputeResourcesLaunchTemplate(
                launch_template_id=template.id,
                version=Token.as_string(template.latest_version)),
            "ec2_configuration": [BatchComputeEnvironmentComputeResourcesEc2Configuration(
                image_type="ECS_AL2023")]}


def retry_rules() -> list[BatchJobDefinitionRetryStrategyEvaluateOnExit]:
    """The contract's evaluateOnExit rules as provider blocks (RETRY 3, 4, 143, Host EC2*)."""
    keys = {"onStatusReason": "on_status_reason", "onExitCode": "on_exit_code",
            "onReason": "on_reason", "action": "action"}
    return [BatchJobDefinitionRetryStrategyEvaluateOnExit(**{keys[k]: v for k, v in rule.items()})
            for rule in EVALUATE_ON_EXIT]


class BatchCompute(Construct):
    """On-demand EC2 capacity in one AZ with a cluster placement group, and the MNP job."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 instance_types: list[str], max_vcpus: float, subnet_id: str,
                 security_group_id: str, instance_profile_arn: str, wiring: JobWiring) -> None:
        super().__init__(scope, id_)
        self._cluster = cluster
        self._config = config
        # --- Capacity
        self.placement_group = PlacementGroup(self, "placement_group",
                                              name=name(cluster, "mpi"), strategy="cluster",
                                              tags=tags(cluster))
        self.launch_template = self._add_launch_template()
        self.compute_environment = self._add_compute_environment(
            instance_types, max_vcpus, subnet_id, security_group_id, instance_profile_arn)
        # --- Scheduling
        self.job_queue = self._add_job_queue()
        self.job_definition = self._add_job_definition(wiring)

    def _add_launch_template(self) -> LaunchTemplate:
        """IMDSv2 only, hop limit 1 (containers cannot reach instance credentials), gp3 root."""
        return LaunchTemplate(
            self, "launch_template", name_prefix=f"{name(self._cluster, 'node')}-",
            metadata_options=LaunchTemplateMetadataOptions(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1),
            block_device_mappings=[LaunchTemplateBlockDeviceMappings(
                device_name="/dev/xvda",
                ebs=LaunchTemplateBlockDeviceMappingsEbs(
                    volume_size=self._config.limits.root_volume_gib, volume_type="gp3",
                    encrypted="true", delete_on_termination="true"))],
            tags=tags(self._cluster))

    def _add_compute_environment(self, instance_types: list[str], max_vcpus: float,
                                 subnet_id: str, security_group_id: str,
                                 instance_profile_arn: str) -> BatchComputeEnvironment:
        return BatchComputeEnvironment(
            self, "compute_environment", name_prefix=f"{name(self._cluster, 'mnp')}-",
            type="MANAGED",
            compute_resources=BatchComputeEnvironmentComputeResources(
                # EC2 on-demand: multi-node jobs do not run on Spot or Fargate.
                type="EC2", allocation_strategy="BEST_FIT_PROGRESSIVE",
                min_vcpus=0, max_vcpus=max_vcpus, instance_type=instance_types,
                # One subnet: the cluster placement group lives in a single AZ.
                subnets=[subnet_id], security_group_ids=[security_group_id],
                instance_role=instance_profile_arn,
                placement_group=self.placement_group.name,
                **node_image(self.launch_template),
                tags=tags(self._cluster, Name=name(self._cluster, "node"))),
            # Most compute-resource changes force replacement; a prefix lets the new one exist
            # before the queue is moved off the old one.
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
            tags=tags(self._cluster))

    def _add_job_queue(self) -> BatchJobQueue:
        cancel_after = self._config.limits.runnable_cancel_after_s
        return BatchJobQueue(
            self, "job_queue", name=name(self._cluster, "mpi"), state="ENABLED", priority=1,
            compute_environment_order=[BatchJobQueueComputeEnvironmentOrder(
                order=1, compute_environment=self.compute_environment.arn)],
            # A job that cannot get capacity would otherwise sit RUNNABLE forever.
            job_state_time_limit_action=[BatchJobQueueJobStateTimeLimitAction(
                state="RUNNABLE", action="CANCEL", max_time_seconds=cancel_after, reason=reason)
                for reason in STUCK_RUNNABLE_REASONS],
            tags=tags(self._cluster))

    def _add_job_definition(self, wiring: JobWiring) -> BatchJobDefinition:
        node = self._config.node
        return BatchJobDefinition(
            self, "job_definition", name=name(self._cluster, "mpi"), type="multinode",
            platform_capabilities=["EC2"], propagate_tags=True,
            node_properties=json.dumps(node_properties(node, wiring)),
            retry_strategy=BatchJobDefinitionRetryStrategy(attempts=node.attempts,
                                                           evaluate_on_exit=retry_rules()),
            timeout=BatchJobDefinitionTimeout(attempt_duration_seconds=node.attempt_timeout_s),
            tags=tags(self._cluster))
