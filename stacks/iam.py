"""IAM roles: ECS instances, job execution (pull, logs, secret) and the job itself (EFS only)."""

from __future__ import annotations

from cdktf_cdktf_provider_aws.iam_instance_profile import IamInstanceProfile
from cdktf_cdktf_provider_aws.iam_role import IamRole
from constructs import Construct

from stacks.config import name, tags
from stacks.encryption import Encryption
from stacks.policy import Statement, service_role
from stacks.storage import EFS_CLIENT_ACTIONS, SharedStorage

ECS_TASKS = "ecs-tasks.amazonaws.com"
ECR_PULL_ACTIONS = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer"]


class Roles(Construct):
    """Least-privilege roles; Batch itself uses its service-linked role (no service role here)."""

    def __init__(self, scope: Construct, id_: str, *, cluster: str, encryption: Encryption,
                 repository_arn: str, log_group_arn: str, storage: SharedStorage,
                 rendezvous_secret_arn: str) -> None:
        super().__init__(scope, id_)
        self._cluster = cluster
        self._managed = f"arn:{encryption.partition}:iam::aws:policy"
        self.instance_role, self.instance_profile = self._add_instance_role()
        self.execution_role = self._add_execution_role(repository_arn, log_group_arn,
                                                       encryption.key.arn, rendezvous_secret_arn)
        self.job_role = self._add_job_role(storage)

    def _add_instance_role(self) -> tuple[IamRole, IamInstanceProfile]:
        role = service_role(
            self, "instance_role", role_name=name(self._cluster, "ecs-instance"),
            service="ec2.amazonaws.com", tags=tags(self._cluster),
            managed_policy_arns=[
                f"{self._managed}/service-role/AmazonEC2ContainerServiceforEC2Role"])
        profile = IamInstanceProfile(self, "instance_profile",
                                     name=name(self._cluster, "ecs-instance"), role=role.name,
                                     tags=tags(self._cluster))
        return role, profile

    def _add_execution_role(self, repository_arn: str, log_group_arn: str, key_arn: str,
                            secret_arn: str) -> IamRole:
        return service_role(
            self, "execution_role", role_name=name(self._cluster, "job-execution"),
            service=ECS_TASKS, tags=tags(self._cluster),
            statements=[
                # GetAuthorizationToken has no resource-level permissions: '*' is the only form.
                Statement(actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                Statement(actions=ECR_PULL_ACTIONS, resources=[repository_arn]),
                # The key decrypts the image layers' and the secret's data keys.
                Statement(actions=["kms:Decrypt"], resources=[key_arn]),
                # Only this role reads the rendezvous key: Batch injects it before the job
                # runs, so the job role (the job's own code) gets no Secrets Manager access.
                Statement(actions=["secretsmanager:GetSecretValue"], resources=[secret_arn]),
                Statement(actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                          resources=[f"{log_group_arn}:*"]),
            ])

    def _add_job_role(self, storage: SharedStorage) -> IamRole:
        return service_role(
            self, "job_role", role_name=name(self._cluster, "job"),
            service=ECS_TASKS, tags=tags(self._cluster),
            statements=[Statement(
                actions=EFS_CLIENT_ACTIONS, resources=[storage.file_system.arn],
                conditions=[("StringEquals", "elasticfilesystem:AccessPointArn",
                             [storage.access_point.arn])])])
