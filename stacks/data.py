"""The data bucket: where staging jobs read job inputs and write job outputs (CONTRACTS.md)."""

from __future__ import annotations

import json

from cdktf import Token
from cdktf_cdktf_provider_aws.data_aws_s3_bucket import DataAwsS3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_policy import S3BucketPolicy
from constructs import Construct

from stacks.buckets import private_bucket, tls_only_statement
from stacks.encryption import Encryption
from stacks.variables import Variables

CREATED = 'var.data_bucket_name == ""'


class DataBucket(Construct):
    """The stack's own bucket, or the existing one `data_bucket_name` names; its two folders.

    Other constructs use `name`, `arn`, `input_prefix`, `output_prefix` and `key_arn` (the key
    a created bucket encrypts with); each is a Terraform reference, whichever bucket it is.
    """

    def __init__(self, scope: Construct, id_: str, *, cluster: str, variables: Variables,
                 encryption: Encryption) -> None:
        super().__init__(scope, id_)
        created = Token.as_number(f"${{{CREATED} ? 1 : 0}}")
        made = private_bucket(self, cluster=cluster, label="data", count=created,
                              key_arn=encryption.key.arn)
        # Only on a bucket we made: an existing bucket's policy is its owner's, and a second
        # writer would replace it.
        S3BucketPolicy(self, "bucket_policy", count=created, bucket=made.id,
                       policy=json.dumps({"Version": "2012-10-17",
                                          "Statement": [tls_only_statement(made.arn)]}))
        existing = self._add_existing(variables)
        bucket = made.bucket
        created_ref = f"{bucket.terraform_resource_type}.{bucket.friendly_unique_id}[0]"
        existing_ref = (f"data.{existing.terraform_resource_type}."
                        f"{existing.friendly_unique_id}[0]")
        self.name = f"${{{CREATED} ? {created_ref}.id : {existing_ref}.id}}"
        self.arn = f"${{{CREATED} ? {created_ref}.arn : {existing_ref}.arn}}"
        self.input_prefix = variables.data_input_prefix.string_value
        self.output_prefix = variables.data_output_prefix.string_value
        self.key_arn = encryption.key.arn

    def _add_existing(self, variables: Variables) -> DataAwsS3Bucket:
        """The user's bucket, read at plan: a name that does not exist stops the plan there."""
        # The provider's data source aws_s3_bucket (registry.terraform.io/providers/hashicorp/
        # aws/latest/docs/data-sources/s3_bucket) references a bucket managed elsewhere by name.
        return DataAwsS3Bucket(self, "existing",
                               count=Token.as_number(f"${{{CREATED} ? 0 : 1}}"),
                               bucket=variables.data_bucket_name.string_value)
