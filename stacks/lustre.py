"""FSx for Lustre, one switch: a PERSISTENT_2 file system in the pinned zone linked to the data
bucket, its security group, and the node script that installs the client and mounts it.

Only a stack synthesized with ENABLE_FSX=1 has this construct; there `enable_fsx` (its default
true) counts every resource, so `enable_fsx = false` removes the file system without a new synth.
"""

from __future__ import annotations

from cdktf import Token
from cdktf_cdktf_provider_aws.fsx_data_repository_association import (
    FsxDataRepositoryAssociation,
    FsxDataRepositoryAssociationS3,
    FsxDataRepositoryAssociationS3AutoExportPolicy,
    FsxDataRepositoryAssociationS3AutoImportPolicy,
)
from cdktf_cdktf_provider_aws.fsx_lustre_file_system import FsxLustreFileSystem
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from stacks.config import PlatformConfig, name, tags
from stacks.encryption import Encryption
from stacks.network import Network
from stacks.variables import FSX_ENABLED, Variables, counted_ref

# Lustre's ports: "inbound traffic on ports 988 and 1018-1023" from the file system's own group
# and from its clients, and the same outbound
# (docs.aws.amazon.com/fsx/latest/LustreGuide/limit-access-security-groups.html).
LUSTRE_PORTS = ((988, 988), (1018, 1023))
# (direction, on which group, peer) for each port range: the file system's servers talk among
# themselves and with the clients both ways; the compute nodes (the clients) already admit and
# reach each other on every port (network.TASK_RULES).
RULES = (("ingress", "fsx", "fsx"), ("egress", "fsx", "fsx"),
         ("ingress", "fsx", "compute"), ("egress", "fsx", "compute"),
         ("ingress", "compute", "fsx"), ("egress", "compute", "fsx"))
DEPLOYMENT_TYPE = "PERSISTENT_2"  # SSD, replicated in one zone: survives a server failure
LUSTRE_VERSION = "2.15"  # what the AL2023 lustre-client package speaks
DATA_PATH = "/data"  # where the bucket appears inside the file system
# Every change in the bucket reaches the file system and back
# (docs.aws.amazon.com/fsx/latest/APIReference/API_AutoImportPolicy.html, AutoExportPolicy).
SYNC_EVENTS = ("NEW", "CHANGED", "DELETED")
# The mount options the FSx guide gives (mounting-ec2-instance.html): relatime keeps atime
# updates cheap, flock gives MPI-IO and checkpoint writers working POSIX locks.
MOUNT_OPTIONS = "relatime,flock"
# At boot: wait for the network, and the ECS agent waits for the mount (see mount_script).
FSTAB_OPTIONS = (f"{MOUNT_OPTIONS},_netdev,x-systemd.requires=network-online.target,"
                 "x-systemd.after=network-online.target")
MOUNT_WAIT_S = 900  # a node whose mount never answers gives up and never joins the cluster
INSTALL_TRIES = 5
ECS_DROP_IN = "/etc/systemd/system/ecs.service.d/fsx.conf"


def fsx_count() -> float:
    """`count` of every FSx resource: 1 when enable_fsx, else 0."""
    return Token.as_number(f"${{{FSX_ENABLED} ? 1 : 0}}")


def mount_script(dns_name: str, mount_name: str, path: str, owner: str) -> str:
    """Node user data: install the Lustre client, mount, keep ECS off until the mount is there.

    Terraform template text: no `${` of its own (the arguments may be interpolations).
    """
    source = f"{dns_name}@tcp:/{mount_name}"
    return "\n".join((
        "#!/bin/bash",
        "# FSx for Lustre client on Amazon Linux 2023: `dnf install -y lustre-client`",
        "# (docs.aws.amazon.com/fsx/latest/LustreGuide/install-lustre-client.html).",
        f"for try in $(seq {INSTALL_TRIES}); do",
        "  dnf install -y lustre-client && break",
        "  sleep 15",
        "done",
        "rpm -q lustre-client || { echo 'lustre-client did not install' >&2; exit 1; }",
        f"mkdir -p {path}",
        "# fstab mounts it again at every boot (LustreGuide mount-fs-auto-mount-onreboot.html);",
        "# the drop-in keeps the ECS agent, hence every job, from starting without it.",
        f"grep -q ' {path} lustre ' /etc/fstab || "
        f"echo '{source} {path} lustre {FSTAB_OPTIONS} 0 0' >> /etc/fstab",
        f"mkdir -p {ECS_DROP_IN.rsplit('/', 1)[0]}",
        f"printf '[Unit]\\nRequiresMountsFor={path}\\n' > {ECS_DROP_IN}",
        "systemctl daemon-reload",
        "# User data runs inside cloud-final, before the ECS agent (ordered after it) starts:",
        "# retry until the file system answers.",
        f"deadline=$((SECONDS + {MOUNT_WAIT_S}))",
        f"until mountpoint -q {path} || mount -t lustre -o {MOUNT_OPTIONS} {source} {path}; do",
        "  if [ $SECONDS -ge $deadline ]; then",
        f"    echo 'FSx for Lustre {source} did not mount within {MOUNT_WAIT_S} s' >&2",
        "    exit 1",
        "  fi",
        "  sleep 10",
        "done",
        "# The jobs' account writes under the linked bucket's directory (imported objects keep",
        "# their own owners).",
        f"if [ -d {path}{DATA_PATH} ]; then chown {owner} {path}{DATA_PATH}; fi",
        ""))


class Lustre(Construct):
    """The file system, its group and rules, and the association with the data bucket."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 variables: Variables, network: Network, encryption: Encryption,
                 data_bucket: str) -> None:
        super().__init__(scope, id_)
        self._cluster = cluster
        self._config = config
        self.security_group = self._add_security_group(network)
        self._add_rules(network)
        self.file_system = self._add_file_system(variables, network, encryption)
        self.association = self._add_association(data_bucket)

    def ref(self, attribute: str) -> str:
        """HCL (no ${}): the file system's attribute, or "" when enable_fsx is false."""
        return f'try({counted_ref(self.file_system, attribute)}, "")'

    @property
    def mount_path(self) -> str:
        """Where nodes mount it and containers see it."""
        return self._config.node.fsx_mount_path

    def node_script(self) -> str:
        """The user-data part for every node (a Terraform template: the DNS and mount names)."""
        return mount_script(f"${{{self.ref('dns_name')}}}", f"${{{self.ref('mount_name')}}}",
                            self.mount_path, self._config.node.user)

    def _add_security_group(self, network: Network) -> SecurityGroup:
        # No inline rules: rule resources only (network.py says why).
        return SecurityGroup(self, "security_group", count=fsx_count(),
                             name=name(self._cluster, "fsx"), vpc_id=network.vpc.id,
                             description="FSx for Lustre: LNET (988, 1018-1023) with its own "
                             "servers and the compute nodes only",
                             tags=tags(self._cluster, Name=name(self._cluster, "fsx")))

    def _add_rules(self, network: Network) -> None:
        groups = {"fsx": f"${{{counted_ref(self.security_group, 'id')}}}",
                  "compute": network.compute_security_group.id}
        kinds = {"ingress": VpcSecurityGroupIngressRule, "egress": VpcSecurityGroupEgressRule}
        for direction, on, peer in RULES:
            for low, high in LUSTRE_PORTS:
                rule_id = f"{on}_{direction}_{peer}_{low}"
                kinds[direction](
                    self, rule_id, count=fsx_count(), security_group_id=groups[on],
                    referenced_security_group_id=groups[peer], ip_protocol="tcp",
                    from_port=low, to_port=high,
                    description=f"Lustre LNET {low}-{high} {direction} with the {peer} group",
                    tags=tags(self._cluster, Name=name(self._cluster, rule_id.replace("_", "-"))))

    def _add_file_system(self, variables: Variables, network: Network,
                         encryption: Encryption) -> FsxLustreFileSystem:
        """PERSISTENT_2 in the pinned subnet: the nodes' zone, so no cross-zone traffic."""
        return FsxLustreFileSystem(
            self, "file_system", count=fsx_count(), deployment_type=DEPLOYMENT_TYPE,
            storage_type="SSD", file_system_type_version=LUSTRE_VERSION,
            storage_capacity=variables.fsx_storage_capacity_gib.number_value,
            per_unit_storage_throughput=variables.fsx_throughput_per_unit.number_value,
            subnet_ids=[network.pinned_subnet.id],
            security_group_ids=[f"${{{counted_ref(self.security_group, 'id')}}}"],
            kms_key_id=encryption.key.arn,
            # S3 is the durable copy (the association exports every change); no FSx backups.
            automatic_backup_retention_days=0, skip_final_backup=True,
            tags=tags(self._cluster, Name=name(self._cluster, "lustre")))

    def _add_association(self, bucket: str) -> FsxDataRepositoryAssociation:
        """The bucket at /data: objects appear as files, new and changed files go back."""
        return FsxDataRepositoryAssociation(
            self, "data_repository", count=fsx_count(),
            file_system_id=f"${{{counted_ref(self.file_system, 'id')}}}",
            file_system_path=DATA_PATH, data_repository_path=f"s3://{bucket}",
            batch_import_meta_data_on_create=True,
            # Destroy leaves the bucket's objects alone; the file system goes with the stack.
            delete_data_in_filesystem=False,
            s3=FsxDataRepositoryAssociationS3(
                auto_import_policy=FsxDataRepositoryAssociationS3AutoImportPolicy(
                    events=list(SYNC_EVENTS)),
                auto_export_policy=FsxDataRepositoryAssociationS3AutoExportPolicy(
                    events=list(SYNC_EVENTS))),
            tags=tags(self._cluster, Name=name(self._cluster, "lustre-data")))
