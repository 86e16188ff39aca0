"""Optional single-node Spot queue for embarrassingly parallel work (never multi-node)."""

from __future__ import annotations

import json

from cdktf import TerraformResource, Token
from cdktf_cdktf_provider_aws.batch_compute_environment import (
    BatchComputeEnvironment,
    BatchComputeEnvironmentComputeResources,
)
from cdktf_cdktf_provider_aws.batch_job_definition import BatchJobDefinition
from cdktf_cdktf_provider_aws.batch_job_queue import (
    BatchJobQueue,
    BatchJobQueueComputeEnvironmentOrder,
)
from cdktf_cdktf_provider_aws.launch_template import LaunchTemplate
from constructs import Construct

from stacks.batch import JobWiring, container_properties, node_image, retry_rules
from stacks.config import PlatformConfig, name, tags

ENABLED = "var.enable_spot_queue"


def _only_when_enabled() -> float:
    # Raw expression: CDKTF's conditional helpers render 'undefined' from Python.
    return Token.as_number(f"${{{ENABLED} ? 1 : 0}}")


def _ref(resource: TerraformResource, attribute: str) -> str:
    """Reference an attribute of a counted resource (instance 0)."""
    return (f"{resource.terraform_resource_type}.{resource.friendly_unique_id}[0]"
            f".{attribute}")


class SpotQueue(Construct):
    """Spot compute environment, queue and single-node job definition, all counted by one flag."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 instance_types: list[str], max_vcpus: float, subnet_ids: list[str],
                 security_group_id: str, instance_profile_arn: str,
                 launch_template: LaunchTemplate, wiring: JobWiring) -> None:
        super().__init__(scope, id_)
        environment = BatchComputeEnvironment(
            self, "compute_environment", name=name(cluster, "spot"), type="MANAGED",
            count=_only_when_enabled(),
            compute_resources=BatchComputeEnvironmentComputeResources(
                type="SPOT", allocation_strategy="SPOT_PRICE_CAPACITY_OPTIMIZED",
                min_vcpus=0, max_vcpus=max_vcpus, instance_type=instance_types,
                subnets=subnet_ids, security_group_ids=[security_group_id],
                instance_role=instance_profile_arn,
                **node_image(launch_template),
                tags=tags(cluster, Name=name(cluster, "spot-node"))),
            tags=tags(cluster))
        queue = BatchJobQueue(
            self, "job_queue", name=name(cluster, "spot"), state="ENABLED", priority=1,
            count=_only_when_enabled(),
            compute_environment_order=[BatchJobQueueComputeEnvironmentOrder(
                order=1, compute_environment=f"${{{_ref(environment, 'arn')}}}")],
            tags=tags(cluster))
        # Single node: the launcher then runs the command under a local mpiexec.
        container = container_properties(config.node, wiring)
        definition = BatchJobDefinition(
            self, "job_definition", name=name(cluster, "spot"), type="container",
            count=_only_when_enabled(), platform_capabilities=["EC2"], propagate_tags=True,
            container_properties=json.dumps(container),
            retry_strategy={"attempts": config.node.attempts, "evaluate_on_exit": retry_rules()},
            timeout={"attempt_duration_seconds": config.node.attempt_timeout_s},
            tags=tags(cluster))
        self.queue_name = f'${{{ENABLED} ? {_ref(queue, "name")} : ""}}'
        self.job_definition_name = f'${{{ENABLED} ? {_ref(definition, "name")} : ""}}'
