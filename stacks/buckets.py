"""The stack's private S3 buckets (the data bucket, the audit bucket): one hardening for both."""

from __future__ import annotations

from dataclasses import dataclass

from cdktf import Fn
from cdktf_cdktf_provider_aws.s3_bucket import S3Bucket
from cdktf_cdktf_provider_aws.s3_bucket_lifecycle_configuration import (
    S3BucketLifecycleConfiguration,
    S3BucketLifecycleConfigurationRule,
    S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload,
    S3BucketLifecycleConfigurationRuleFilter,
    S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration,
)
from cdktf_cdktf_provider_aws.s3_bucket_ownership_controls import (
    S3BucketOwnershipControls,
    S3BucketOwnershipControlsRule,
)
from cdktf_cdktf_provider_aws.s3_bucket_public_access_block import S3BucketPublicAccessBlock
from cdktf_cdktf_provider_aws.s3_bucket_server_side_encryption_configuration import (
    S3BucketServerSideEncryptionConfigurationA,
    S3BucketServerSideEncryptionConfigurationRuleA,
    S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA,
)
from cdktf_cdktf_provider_aws.s3_bucket_versioning import (
    S3BucketVersioningA,
    S3BucketVersioningVersioningConfiguration,
)
from constructs import Construct

from stacks.config import tags
from stacks.variables import counted_ref

NONCURRENT_DAYS = 90  # overwritten or deleted objects are kept this long
# The provider's aws_s3_bucket: bucket_prefix "Must be lowercase and less than or equal to 37
# characters in length" (S3 appends a unique suffix up to the 63 of a bucket name).
BUCKET_PREFIX_MAX = 37


@dataclass(frozen=True)
class CountedBucket:
    """A bucket made under a `count` (0 or 1), with references to its instance 0."""

    bucket: S3Bucket
    id: str  # the bucket's name, as a Terraform reference
    arn: str


def tls_only_statement(arn: str) -> dict:
    """The bucket policy statement that refuses every request over plain HTTP."""
    # S3 user guide, security-best-practices.html: "deny all HTTP requests to your bucket
    # ... aws:SecureTransport ... false".
    return {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
            "Action": "s3:*", "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def bucket_prefix(cluster: str, label: str) -> str:
    """'<cluster>-<label>-', the cluster name cut so that the whole fits BUCKET_PREFIX_MAX."""
    return f"{Fn.substr(cluster, 0, BUCKET_PREFIX_MAX - len(label) - 2)}-{label}-"


def private_bucket(scope: Construct, *, cluster: str, label: str, count: float,
                   key_arn: str) -> CountedBucket:
    """Encrypted with the stack's key, versioned, never public, ACLs off; ids fixed in `scope`."""
    # As ECR's force_delete: `terraform destroy` works; copy what must outlive the stack first.
    bucket = S3Bucket(scope, "bucket", count=count, bucket_prefix=bucket_prefix(cluster, label),
                      force_destroy=True, tags=tags(cluster))
    made = CountedBucket(bucket, f"${{{counted_ref(bucket, 'id')}}}",
                         f"${{{counted_ref(bucket, 'arn')}}}")
    S3BucketPublicAccessBlock(scope, "public_access", count=count, bucket=made.id,
                              block_public_acls=True, block_public_policy=True,
                              ignore_public_acls=True, restrict_public_buckets=True)
    S3BucketOwnershipControls(scope, "ownership", count=count, bucket=made.id,
                              rule=S3BucketOwnershipControlsRule(
                                  object_ownership="BucketOwnerEnforced"))
    S3BucketVersioningA(scope, "versioning", count=count, bucket=made.id,
                        versioning_configuration=S3BucketVersioningVersioningConfiguration(
                            status="Enabled"))
    S3BucketServerSideEncryptionConfigurationA(
        scope, "encryption", count=count, bucket=made.id,
        rule=[S3BucketServerSideEncryptionConfigurationRuleA(
            bucket_key_enabled=True,
            apply_server_side_encryption_by_default=(
                S3BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultA(
                    sse_algorithm="aws:kms", kms_master_key_id=key_arn)))])
    # Old versions (the bucket is versioned) and stray multipart uploads do not pile up;
    # current objects stay.
    S3BucketLifecycleConfiguration(
        scope, "lifecycle", count=count, bucket=made.id,
        rule=[S3BucketLifecycleConfigurationRule(
            id="old-versions", status="Enabled",
            filter=[S3BucketLifecycleConfigurationRuleFilter(prefix="")],
            noncurrent_version_expiration=[
                S3BucketLifecycleConfigurationRuleNoncurrentVersionExpiration(
                    noncurrent_days=NONCURRENT_DAYS)],
            abort_incomplete_multipart_upload=[
                S3BucketLifecycleConfigurationRuleAbortIncompleteMultipartUpload(
                    days_after_initiation=1)])])
    return made
