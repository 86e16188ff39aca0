"""One customer-managed KMS key for EFS, ECR, CloudWatch Logs and SNS."""

from __future__ import annotations

import json

from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.data_aws_region import DataAwsRegion
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct

from stacks.config import PlatformConfig, name, tags


class Encryption(Construct):
    """The platform key; its policy lets Logs, EventBridge and CloudWatch use it for us."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str) -> None:
        super().__init__(scope, id_)
        self.account_id = DataAwsCallerIdentity(self, "caller").account_id
        self.partition = DataAwsPartition(self, "partition").partition
        self.region = DataAwsRegion(self, "region").region
        self.key = self._add_key(config, cluster)
        KmsAlias(self, "alias", name=f"alias/{name(cluster, 'platform')}",
                 target_key_id=self.key.key_id)

    def _add_key(self, config: PlatformConfig, cluster: str) -> KmsKey:
        account_root = f"arn:{self.partition}:iam::{self.account_id}:root"
        log_groups = f"arn:{self.partition}:logs:{self.region}:{self.account_id}:log-group:*"
        trails = f"arn:{self.partition}:cloudtrail:*:{self.account_id}:trail/*"
        service_actions = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*",
                           "kms:GenerateDataKey*", "kms:Describe*"]
        # A key policy, not an IAM policy: its Resource "*" means this key only.
        key_policy = json.dumps({"Version": "2012-10-17", "Statement": [
            # Without the account statement the key becomes unmanageable.
            {"Sid": "AccountAdmin", "Effect": "Allow", "Principal": {"AWS": account_root},
             "Action": "kms:*", "Resource": "*"},
            {"Sid": "CloudWatchLogs", "Effect": "Allow",
             "Principal": {"Service": f"logs.{self.region}.amazonaws.com"},
             "Action": service_actions, "Resource": "*",
             "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}}},
            # EventBridge rules and CloudWatch alarms publish to the encrypted SNS topic.
            {"Sid": "PublishToEncryptedTopic", "Effect": "Allow",
             "Principal": {"Service": ["events.amazonaws.com", "cloudwatch.amazonaws.com"]},
             "Action": ["kms:GenerateDataKey*", "kms:Decrypt"], "Resource": "*"},
            # The compliance switch's trail encrypts its logs with this key: CloudTrail's
            # two statements (awscloudtrail/latest/userguide/
            # create-kms-key-policy-for-cloudtrail.html), for this account's trails only.
            {"Sid": "CloudTrailEncryptLogs", "Effect": "Allow",
             "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "kms:GenerateDataKey*", "Resource": "*",
             "Condition": {"StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn":
                                          trails}}},
            {"Sid": "CloudTrailDescribeKey", "Effect": "Allow",
             "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "kms:DescribeKey", "Resource": "*"},
            *(self._lustre_statements() if config.settings.enable_fsx else []),
        ]})
        return KmsKey(self, "key", description=f"{cluster} platform data (EFS, ECR, logs, SNS)",
                      enable_key_rotation=True, policy=key_policy,
                      deletion_window_in_days=config.limits.kms_deletion_window_days,
                      tags=tags(cluster))

    def _lustre_statements(self) -> list[dict]:
        """FSx for Lustre's link reads and writes the data bucket, encrypted with this key."""
        # FSx reaches a linked bucket as the service-linked role
        # AWSServiceRoleForFSxS3Access_<file system id> (FSx for Lustre guide,
        # s3-server-side-encryption-support.html: a bucket encrypted with a customer managed key
        # needs that role in the key policy). The role is made with the file system, after this
        # key, so it is named by pattern; only through S3, only from this account.
        role = (f"arn:{self.partition}:iam::{self.account_id}:role/aws-service-role/"
                "s3.data-source.lustre.fsx.amazonaws.com/AWSServiceRoleForFSxS3Access_fs-*")
        return [{"Sid": "FsxLustreDataRepository", "Effect": "Allow", "Principal": {"AWS": "*"},
                 "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*",
                            "kms:ReEncrypt*", "kms:DescribeKey"],
                 "Resource": "*",
                 "Condition": {
                     "StringEquals": {"kms:CallerAccount": self.account_id,
                                      "kms:ViaService": f"s3.{self.region}.amazonaws.com"},
                     "ArnLike": {"aws:PrincipalArn": role}}}]
