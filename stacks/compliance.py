"""Audit and compliance, one switch: a CloudTrail trail and AWS Config rules for this stack.

Everything here is counted by `enable_compliance` (default off). An AWS Config recorder exists
at most once per account and region (AWS Config developer guide, stop-start-recorder), so
`config_recorder = "existing"` adds only the rules to an account that already records.
"""

from __future__ import annotations

import json

from cdktf import Token
from cdktf_cdktf_provider_aws.cloudtrail import Cloudtrail
from cdktf_cdktf_provider_aws.config_config_rule import ConfigConfigRule, ConfigConfigRuleSource
from cdktf_cdktf_provider_aws.config_configuration_recorder import (
    ConfigConfigurationRecorder,
    ConfigConfigurationRecorderRecordingGroup,
)
from cdktf_cdktf_provider_aws.config_configuration_recorder_status import (
    ConfigConfigurationRecorderStatus,
)
from cdktf_cdktf_provider_aws.config_delivery_channel import ConfigDeliveryChannel
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from constructs import Construct

from stacks.buckets import private_bucket, tls_only_statement
from stacks.config import name, tags
from stacks.encryption import Encryption
from stacks.policy import trust_policy
from stacks.variables import COMPLIANCE_ENABLED, RECORDER_CREATED, counted_ref

# AWS managed rules for what this stack deploys, by identifier (the list of managed rules:
# docs.aws.amazon.com/config/latest/developerguide/managed-rules-by-aws-config.html).
MANAGED_RULES = (
    "CLOUD_TRAIL_ENABLED", "CLOUD_TRAIL_ENCRYPTION_ENABLED",
    "CLOUD_TRAIL_LOG_FILE_VALIDATION_ENABLED",  # the trail below
    "S3_BUCKET_PUBLIC_READ_PROHIBITED", "S3_BUCKET_PUBLIC_WRITE_PROHIBITED",
    "S3_BUCKET_SSL_REQUESTS_ONLY",  # its bucket
    "EFS_ENCRYPTED_CHECK", "VPC_FLOW_LOGS_ENABLED", "EC2_IMDSV2_CHECK",
    "ECR_PRIVATE_IMAGE_SCANNING_ENABLED", "ECR_PRIVATE_TAG_IMMUTABILITY_ENABLED",
    "CLOUDWATCH_LOG_GROUP_ENCRYPTED", "SNS_ENCRYPTED_KMS", "CMK_BACKING_KEY_ROTATION_ENABLED",
)
# Only where the VPC's default group stays empty: on an EFA stack it is the MNP task
# interfaces' group by design (network.py), and this rule would report it every time.
TCP_ONLY_RULES = ("VPC_DEFAULT_SECURITY_GROUP_CLOSED",)
# The AWS managed policy for a recorder's own role (config developer guide, iamrole-permissions).
CONFIG_ROLE_POLICY = "arn:{partition}:iam::aws:policy/service-role/AWS_ConfigRole"


def rule_name(cluster: str, identifier: str) -> str:
    """The Config rule's name: the cluster's prefix and the identifier, lowercase with hyphens."""
    return name(cluster, identifier.lower().replace("_", "-"))


def compliance_count() -> float:
    """`count` of every compliance resource."""
    return Token.as_number(f"${{{COMPLIANCE_ENABLED} ? 1 : 0}}")


def recorder_count() -> float:
    """`count` of the recorder, its delivery channel and its status: only when we create it."""
    return Token.as_number(f"${{{COMPLIANCE_ENABLED} && {RECORDER_CREATED} ? 1 : 0}}")


class Compliance(Construct):
    """The trail, its bucket, the optional recorder and the managed rules."""

    def __init__(self, scope: Construct, id_: str, *, cluster: str, encryption: Encryption,
                 tcp_only: bool) -> None:
        super().__init__(scope, id_)
        self._cluster = cluster
        self._encryption = encryption
        self.bucket = self._add_bucket()
        self.trail = self._add_trail()
        recorder = self._add_recorder()
        identifiers = MANAGED_RULES + (TCP_ONLY_RULES if tcp_only else ())
        self.rules = [
            ConfigConfigRule(self, f"rule_{identifier.lower()}", count=compliance_count(),
                             name=rule_name(cluster, identifier),
                             source=ConfigConfigRuleSource(owner="AWS",
                                                           source_identifier=identifier),
                             depends_on=[recorder], tags=tags(cluster))
            for identifier in identifiers]

    def _ref(self, resource: Construct, attribute: str) -> str:
        return f"${{{counted_ref(resource, attribute)}}}"

    def _add_bucket(self) -> S3Bucket:
        """Encrypted with the stack's key, versioned, never public, TLS only, ACLs off."""
        made = private_bucket(self, cluster=self._cluster, label="audit",
                              count=compliance_count(), key_arn=self._encryption.key.arn)
        self.policy = S3BucketPolicy(self, "bucket_policy", count=compliance_count(),
                                     bucket=made.id, policy=self._bucket_policy(made.arn))
        return made.bucket

    def _bucket_policy(self, arn: str) -> str:
        """CloudTrail and Config may write their prefixes; nothing over plain HTTP."""
        enc = self._encryption
        logs = f"{arn}/AWSLogs/{enc.account_id}/*"
        same_account = {"StringEquals": {"aws:SourceAccount": enc.account_id}}
        # The statements the CloudTrail and Config guides give for a delivery bucket
        # (awscloudtrail/latest/userguide/create-s3-bucket-policy-for-cloudtrail.html;
        # config/latest/developerguide/s3-bucket-policy.html).
        services = ["cloudtrail.amazonaws.com", "config.amazonaws.com"]
        return json.dumps({"Version": "2012-10-17", "Statement": [
            tls_only_statement(arn),
            {"Sid": "ServicesCheckAcl", "Effect": "Allow", "Principal": {"Service": services},
             "Action": ["s3:GetBucketAcl", "s3:ListBucket"], "Resource": arn,
             "Condition": same_account},
            {"Sid": "ServicesWrite", "Effect": "Allow", "Principal": {"Service": services},
             "Action": "s3:PutObject", "Resource": logs,
             "Condition": {**same_account,
                           "StringEqualsIfExists": {"s3:x-amz-acl": "bucket-owner-full-control"}}},
        ]})

    def _add_trail(self) -> Cloudtrail:
        """Every region's management events, encrypted with the stack's key, digest-signed."""
        return Cloudtrail(
            self, "trail", count=compliance_count(), name=name(self._cluster, "trail"),
            s3_bucket_name=self._ref(self.bucket, "id"), kms_key_id=self._encryption.key.arn,
            enable_log_file_validation=True, is_multi_region_trail=True,
            include_global_service_events=True, depends_on=[self.policy],
            tags=tags(self._cluster))

    def _add_recorder(self) -> ConfigConfigurationRecorderStatus:
        """The account's recorder, its delivery channel to the bucket, and its status (on)."""
        enc = self._encryption
        count = recorder_count()
        role = IamRole(self, "config_role", count=count, name=name(self._cluster, "config"),
                       assume_role_policy=trust_policy("config.amazonaws.com"),
                       tags=tags(self._cluster))
        IamRolePolicyAttachment(self, "config_role_managed", count=count,
                                role=self._ref(role, "name"),
                                policy_arn=CONFIG_ROLE_POLICY.format(partition=enc.partition))
        # Delivery through the bucket's default key needs the key too.
        IamRolePolicy(self, "config_role_delivery", count=count, role=self._ref(role, "id"),
                      name=name(self._cluster, "config-delivery"), policy=json.dumps({
                          "Version": "2012-10-17", "Statement": [
                              {"Effect": "Allow", "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                               "Resource": enc.key.arn}]}))
        recorder = ConfigConfigurationRecorder(
            self, "recorder", count=count, name=name(self._cluster, "recorder"),
            role_arn=self._ref(role, "arn"),
            recording_group=ConfigConfigurationRecorderRecordingGroup(
                all_supported=True, include_global_resource_types=True))
        channel = ConfigDeliveryChannel(
            self, "delivery", count=count, name=name(self._cluster, "delivery"),
            s3_bucket_name=self._ref(self.bucket, "id"), s3_kms_key_arn=enc.key.arn,
            depends_on=[recorder, self.policy])
        return ConfigConfigurationRecorderStatus(
            self, "recorder_status", count=count, name=self._ref(recorder, "name"),
            is_enabled=True, depends_on=[channel])
