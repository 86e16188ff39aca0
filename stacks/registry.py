"""ECR repository for the solver image: immutable tags, scan on push, KMS-encrypted."""

from __future__ import annotations

import json

from cdktf_cdktf_provider_aws.ecr_lifecycle_policy import EcrLifecyclePolicy
from cdktf_cdktf_provider_aws.ecr_repository import (
    EcrRepository,
    EcrRepositoryEncryptionConfiguration,
    EcrRepositoryImageScanningConfiguration,
)
from constructs import Construct

from stacks.config import PlatformConfig, name, tags
from stacks.encryption import Encryption


class Registry(Construct):
    """Where `docker push` sends the solver image; the job definition pulls a fixed tag."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 encryption: Encryption) -> None:
        super().__init__(scope, id_)
        self.repository = EcrRepository(
            self, "repository", name=name(cluster, "solver"),
            # Immutable: a tag always means the same image, so a retried job runs what failed.
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=EcrRepositoryImageScanningConfiguration(
                scan_on_push=True),
            encryption_configuration=[EcrRepositoryEncryptionConfiguration(
                encryption_type="KMS", kms_key=encryption.key.arn)],
            # Lets `terraform destroy` remove a repository that still holds images.
            force_delete=True,
            tags=tags(cluster))
        EcrLifecyclePolicy(self, "lifecycle", repository=self.repository.name,
                           policy=json.dumps({"rules": [{
                               "rulePriority": 1,
                               "description": f"keep the last {config.limits.ecr_keep_images}",
                               "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                                             "countNumber": config.limits.ecr_keep_images},
                               "action": {"type": "expire"}}]}))
