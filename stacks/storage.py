"""Shared EFS file system: encrypted, TLS-only, mounted by jobs through one access point."""

from __future__ import annotations

from cdktf import Token
from cdktf_cdktf_provider_aws.efs_access_point import (
    EfsAccessPoint,
    EfsAccessPointPosixUser,
    EfsAccessPointRootDirectory,
    EfsAccessPointRootDirectoryCreationInfo,
)
from cdktf_cdktf_provider_aws.efs_backup_policy import EfsBackupPolicy, EfsBackupPolicyBackupPolicy
from cdktf_cdktf_provider_aws.efs_file_system import (
    EfsFileSystem,
    EfsFileSystemLifecyclePolicy,
)
from cdktf_cdktf_provider_aws.efs_file_system_policy import EfsFileSystemPolicy
from cdktf_cdktf_provider_aws.efs_mount_target import EfsMountTarget
from constructs import Construct

from stacks.config import PlatformConfig, name, tags
from stacks.encryption import Encryption
from stacks.network import Network
from stacks.policy import Statement, policy_document
from stacks.variables import Variables

EFS_CLIENT_ACTIONS = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]


class SharedStorage(Construct):
    """The file system every node mounts at the same path: inputs, outputs, checkpoints."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 variables: Variables, network: Network, encryption: Encryption) -> None:
        super().__init__(scope, id_)
        self._cluster = cluster
        self.file_system = self._add_file_system(variables, encryption)
        self.mount_targets = [
            EfsMountTarget(self, f"mount_target_{i}", file_system_id=self.file_system.id,
                           subnet_id=subnet.id,
                           security_groups=[network.efs_security_group.id])
            for i, subnet in enumerate(network.private_subnets)]
        self.access_point = self._add_access_point(config)
        EfsBackupPolicy(self, "backup", file_system_id=self.file_system.id,
                        backup_policy=EfsBackupPolicyBackupPolicy(status="ENABLED"))

    def _add_file_system(self, variables: Variables, encryption: Encryption) -> EfsFileSystem:
        mode = variables.efs_throughput_mode.string_value
        return EfsFileSystem(
            self, "file_system", creation_token=name(self._cluster, "shared"),
            encrypted=True, kms_key_id=encryption.key.arn, throughput_mode=mode,
            # Written raw: CDKTF's Op helpers render conditionals as 'undefined' in Python.
            provisioned_throughput_in_mibps=Token.as_number(
                '${var.efs_throughput_mode == "provisioned" ? '
                'var.efs_provisioned_throughput : null}'),
            lifecycle_policy=[EfsFileSystemLifecyclePolicy(transition_to_ia="AFTER_30_DAYS"),
                              EfsFileSystemLifecyclePolicy(
                                  transition_to_primary_storage_class="AFTER_1_ACCESS")],
            tags=tags(self._cluster, Name=name(self._cluster, "shared")))

    def _add_access_point(self, config: PlatformConfig) -> EfsAccessPoint:
        limits = config.limits
        # Jobs run as uid/gid 1000 (the image's user); EFS creates the root directory for them.
        return EfsAccessPoint(
            self, "access_point", file_system_id=self.file_system.id,
            posix_user=EfsAccessPointPosixUser(uid=limits.posix_uid, gid=limits.posix_gid),
            root_directory=EfsAccessPointRootDirectory(
                path=limits.efs_data_root,
                creation_info=EfsAccessPointRootDirectoryCreationInfo(
                    owner_uid=limits.posix_uid, owner_gid=limits.posix_gid, permissions="0750")),
            tags=tags(self._cluster, Name=name(self._cluster, "jobs")))

    def add_policy(self, role_arns: list[str]) -> EfsFileSystemPolicy:
        """Deny plain NFS; allow the roles (the MPI job's, the staging job's) to mount and write
        through the access point only."""
        fs_arn = self.file_system.arn
        document = policy_document(self, "file_system_policy_doc", [
            Statement(sid="DenyUnencryptedTransport", effect="Deny", actions=["*"],
                      resources=[fs_arn], principals={"AWS": ["*"]},
                      conditions=[("Bool", "aws:SecureTransport", ["false"])]),
            Statement(sid="JobsThroughAccessPoint", actions=EFS_CLIENT_ACTIONS,
                      resources=[fs_arn], principals={"AWS": role_arns},
                      conditions=[("StringEquals", "elasticfilesystem:AccessPointArn",
                                   [self.access_point.arn])]),
        ])
        return EfsFileSystemPolicy(self, "file_system_policy", file_system_id=self.file_system.id,
                                   policy=document)
