"""Staging jobs: single-node Fargate jobs of the stack's image that copy between S3 and EFS.

Stage-in runs before a multi-node job (the CLI submits it, then the MPI job with `dependsOn`);
stage-out runs after one ends (stacks/stage_out.py submits it). See docs/CONTRACTS.md.
"""

from __future__ import annotations

import json
from dataclasses import replace

from cdktf import TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.batch_compute_environment import (
    BatchComputeEnvironment,
    BatchComputeEnvironmentComputeResources,
)
from cdktf_cdktf_provider_aws.batch_job_definition import (
    BatchJobDefinition,
    BatchJobDefinitionRetryStrategy,
    BatchJobDefinitionTimeout,
)
from cdktf_cdktf_provider_aws.iam_role import IamRole
from constructs import Construct

from launcher.contract import (
    APPLICATION_ERROR,
    NETWORK_ENV,
    RANKS_PER_NODE_ENV,
    USAGE,
)
from stacks.config import PlatformConfig, name, tags
from stacks.data import DataBucket
from stacks.iam import ECS_TASKS
from stacks.network import Network
from stacks.policy import Statement, service_role
from stacks.scheduling import (
    JobWiring,
    add_job_queue,
    log_configuration,
    retry_rules,
    shared_file_system,
)
from stacks.storage import EFS_CLIENT_ACTIONS, SharedStorage
from staging import commands

# The stage-out job's command: the EventBridge rule's input transformer fills each Ref::NAME
# (docs.aws.amazon.com/batch/latest/userguide/job_definition_parameters.html).
STAGE_OUT_COMMAND = tuple(commands.out_command_template())
# `python -m staging` exits 2 for bad or missing data (a retry cannot help) and 1 for an S3 or
# file-system error. Batch retries a job no rule matches (API_RetryStrategy: "If none of the
# EvaluateOnExit conditions ... match, then the job is retried"), which is right here too: a copy
# is idempotent (same keys, manifest last), so a Fargate start failure is worth a second try.
STAGING_EVALUATE_ON_EXIT = ({"onExitCode": str(USAGE), "action": "EXIT"},
                            {"onExitCode": str(APPLICATION_ERROR), "action": "RETRY"})
# What staging needs in the data bucket, by the S3 API calls behind it (Service Authorization
# Reference, Amazon S3: docs.aws.amazon.com/service-authorization/latest/reference/
# list_amazons3.html): ListObjectsV2 needs s3:ListBucket on the bucket (narrowed by the
# s3:prefix condition key); GetObject/HeadObject need s3:GetObject; PutObject and the multipart
# calls CreateMultipartUpload, UploadPart, CompleteMultipartUpload need s3:PutObject,
# AbortMultipartUpload s3:AbortMultipartUpload, ListParts s3:ListMultipartUploadParts;
# DeleteObject s3:DeleteObject (stage-out removes an earlier run's manifest before it changes
# any object, so no reader trusts a manifest over half-replaced files).
LIST_ACTIONS = ["s3:ListBucket"]
READ_ACTIONS = ["s3:GetObject"]
WRITE_ACTIONS = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
                 "s3:DeleteObject"]
# SSE-KMS: reading needs kms:Decrypt, writing kms:GenerateDataKey, and a multipart upload both
# (S3 user guide, UsingKMSEncryption.html#aws-managed-customer-managed-keys-permissions).
KMS_ACTIONS = ["kms:Decrypt", "kms:GenerateDataKey"]


class StagingJobs(Construct):
    """The staging role, a Fargate environment, its queue and the staging job definition."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 data: DataBucket, network: Network, storage: SharedStorage,
                 wiring: JobWiring, region: str) -> None:
        super().__init__(scope, id_)
        self._cluster = cluster
        self._config = config
        # --- Who staging runs as
        self.job_role = self._add_role(data, storage, region)
        # --- Where it runs
        self.compute_environment = self._add_environment(network)
        self.job_queue = add_job_queue(
            self, "job_queue", queue_name=name(cluster, "staging"),
            environment_arn=self.compute_environment.arn, cluster=cluster,
            cancel_after_s=config.limits.runnable_cancel_after_s)
        # --- What it runs
        self.job_definition = self._add_job_definition(
            replace(wiring, job_role_arn=self.job_role.arn))

    def _add_role(self, data: DataBucket, storage: SharedStorage, region: str) -> IamRole:
        """Read below the input folder, write below the output folder, mount EFS: nothing else."""
        inputs, outputs = data.input_prefix, data.output_prefix
        return service_role(
            self, "job_role", role_name=name(self._cluster, "staging-job"), service=ECS_TASKS,
            tags=tags(self._cluster),
            statements=[
                # Without the condition ListBucket lists the whole bucket; S3 sends s3:prefix
                # as the request's Prefix, so a listing must stay below one of the folders.
                Statement(sid="ListDataFolders", actions=LIST_ACTIONS, resources=[data.arn],
                          conditions=[("StringLike", "s3:prefix",
                                       [f"{inputs}*", f"{outputs}*"])]),
                Statement(sid="ReadInputs", actions=READ_ACTIONS,
                          resources=[f"{data.arn}/{inputs}*"]),
                Statement(sid="WriteOutputs", actions=WRITE_ACTIONS,
                          resources=[f"{data.arn}/{outputs}*"]),
                # The bucket's key, only as S3 uses it on the role's behalf.
                Statement(sid="BucketKeyThroughS3", actions=KMS_ACTIONS,
                          resources=[data.key_arn],
                          conditions=[("StringEquals", "kms:ViaService",
                                       [f"s3.{region}.amazonaws.com"])]),
                Statement(sid="SharedFileSystem", actions=EFS_CLIENT_ACTIONS,
                          resources=[storage.file_system.arn],
                          conditions=[("StringEquals", "elasticfilesystem:AccessPointArn",
                                       [storage.access_point.arn])]),
            ])

    def _add_environment(self, network: Network) -> BatchComputeEnvironment:
        """Fargate in the private subnets: images come through the ECR endpoints and the NAT."""
        # Fargate, not the EC2 environments: a staging job is one small task, it needs no
        # instance to boot, and its capacity never competes with the MPI nodes.
        return BatchComputeEnvironment(
            self, "compute_environment", name_prefix=f"{name(self._cluster, 'staging')}-",
            type="MANAGED",
            compute_resources=BatchComputeEnvironmentComputeResources(
                type="FARGATE", max_vcpus=self._config.staging.max_vcpus,
                subnets=[s.id for s in network.private_subnets],
                security_group_ids=[network.staging_security_group.id]),
            # As the EC2 environments: a replaced environment exists before the queue moves.
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
            tags=tags(self._cluster))

    def _add_job_definition(self, wiring: JobWiring) -> BatchJobDefinition:
        staging = self._config.staging
        container = {
            "image": wiring.image,
            # Stage-out by default (the EventBridge rule submits it with parameters only);
            # the CLI's stage-in job overrides the command.
            "command": list(STAGE_OUT_COMMAND),
            "resourceRequirements": [{"type": "VCPU", "value": str(staging.vcpus)},
                                     {"type": "MEMORY", "value": str(staging.memory_mib)}],
            # The image's ENTRYPOINT is the launcher: one rank, no fabric to choose.
            "environment": [{"name": RANKS_PER_NODE_ENV, "value": "1"},
                            {"name": NETWORK_ENV, "value": "tcp"}],
            "jobRoleArn": wiring.job_role_arn,
            "executionRoleArn": wiring.execution_role_arn,
            # Private subnets: the NAT and the endpoints carry the task's traffic
            # (docs.aws.amazon.com/batch/latest/userguide/fargate.html).
            "networkConfiguration": {"assignPublicIp": "DISABLED"},
            # EFS volumes need Fargate platform 1.4.0 or later (batch userguide efs-volumes).
            "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
            **shared_file_system(wiring, self._config.node.efs_mount_path),
            "logConfiguration": log_configuration(wiring, "staging"),
        }
        return BatchJobDefinition(
            self, "job_definition", name=name(self._cluster, "staging"), type="container",
            platform_capabilities=["FARGATE"], propagate_tags=True,
            container_properties=json.dumps(container),
            retry_strategy=BatchJobDefinitionRetryStrategy(
                attempts=staging.attempts,
                evaluate_on_exit=retry_rules(STAGING_EVALUATE_ON_EXIT)),
            timeout=BatchJobDefinitionTimeout(
                attempt_duration_seconds=staging.attempt_timeout_s),
            tags=tags(self._cluster))
