"""VPC for awsvpc multi-node containers: private subnets, NAT egress, endpoints, flow logs."""

from __future__ import annotations

from cdktf import Fn, Token
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.eip import Eip
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.internet_gateway import InternetGateway
from cdktf_cdktf_provider_aws.nat_gateway import NatGateway
from cdktf_cdktf_provider_aws.route_table import RouteTable, RouteTableRoute
from cdktf_cdktf_provider_aws.route_table_association import RouteTableAssociation
from cdktf_cdktf_provider_aws.security_group import SecurityGroup
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
from cdktf_cdktf_provider_aws.vpc_security_group_egress_rule import VpcSecurityGroupEgressRule
from cdktf_cdktf_provider_aws.vpc_security_group_ingress_rule import VpcSecurityGroupIngressRule
from constructs import Construct

from stacks.config import PlatformConfig, name, tags
from stacks.encryption import Encryption
from stacks.policy import Statement, service_role
from stacks.variables import EFA_ENABLED
from stacks.zones import Zones

AZ_COUNT = 2
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs")  # image pulls and awslogs stay private
ANYWHERE = "0.0.0.0/0"
SecurityGroupRule = VpcSecurityGroupIngressRule | VpcSecurityGroupEgressRule
ALL_TRAFFIC = "-1"  # ip_protocol -1: all protocols and ports (from_port/to_port must be unset)
# What a node's task interface needs, as (direction, id suffix, description, protocol, port, peer):
# peer "self" is the group itself, "efs" the mount targets' group, "anywhere" 0.0.0.0/0. The
# compute group gets these as rule resources; on an EFA stack the VPC's default group gets the
# same rules inline (see _lock_default_security_group).
TASK_RULES = (
    ("ingress", "from_compute", "MPI, rendezvous and ssh between nodes of the same job",
     ALL_TRAFFIC, None, "self"),
    ("egress", "to_compute", "MPI and rendezvous to the other nodes (EFA needs self-referencing "
     "egress)", ALL_TRAFFIC, None, "self"),
    ("egress", "to_https", "HTTPS to AWS APIs (endpoints, NAT)", "tcp", 443, "anywhere"),
    ("egress", "to_efs", "NFS to the EFS mount targets", "tcp", 2049, "efs"),
)
# A staging job (Fargate, stacks/staging.py) needs what a node needs except MPI: S3 and the
# AWS APIs over HTTPS, NFS to EFS; nothing reaches it.
STAGING_RULES = tuple(rule for rule in TASK_RULES if rule[5] != "self")
# The groups that must admit a task interface, as (id prefix, what it serves, port).
ADMITTING = (("efs", "NFS", 2049), ("endpoints", "HTTPS", 443))
# The actions the VPC Flow Logs guide lists for publishing to CloudWatch Logs
# (docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html).
FLOW_LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                    "logs:DescribeLogGroups", "logs:DescribeLogStreams")


class Network(Construct):
    """Private subnets in two zones (the first pinned for the placement group), one NAT."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 vpc_cidr: str, zones: Zones, encryption: Encryption) -> None:
        super().__init__(scope, id_)
        self._cluster = cluster
        self._efa = config.settings.enable_efa
        self._zone_ids = [zones.pinned_zone_id, zones.second_zone_id]
        # --- VPC and subnets
        self.vpc = Vpc(self, "vpc", cidr_block=vpc_cidr, enable_dns_support=True,
                       enable_dns_hostnames=True, tags=tags(cluster, Name=name(cluster, "vpc")))
        # Private subnets take the lower half of the VPC: awsvpc gives every node container
        # its own ENI, so the pinned subnet needs an address per container and per instance.
        self.private_subnets = [self._add_subnet("private", i, Fn.cidrsubnet(vpc_cidr, 2, i))
                                for i in range(AZ_COUNT)]
        self.public_subnets = [self._add_subnet("public", i, Fn.cidrsubnet(vpc_cidr, 4, 8 + i))
                               for i in range(AZ_COUNT)]
        # --- Routing: public subnets exist only to host the NAT gateway
        nat = self._add_nat_gateway()
        self.private_route_table = self._add_routing(nat)
        # --- Security groups: no inline rules, only rule resources. The provider documents that
        # inline rules and rule resources on one group fight: each apply revokes the other's.
        self.compute_security_group = self._add_security_group(
            "compute_sg", "compute",
            "Batch nodes: all traffic between members only (MPI, launcher ssh, EFA)")
        self.efs_security_group = self._add_security_group(
            "efs_sg", "efs", "EFS mount targets (NFS over TLS): port 2049 from compute nodes only")
        self.endpoint_security_group = self._add_security_group(
            "endpoint_sg", "endpoints",
            "Interface VPC endpoints (HTTPS): port 443 from compute nodes only")
        self.staging_security_group = self._add_security_group(
            "staging_sg", "staging",
            "Staging jobs (Fargate): HTTPS to S3 and AWS APIs, NFS to EFS; nothing inbound")
        self.default_security_group = self._lock_default_security_group()
        self._add_security_group_rules()
        # --- Private access to AWS APIs, and flow logs
        self._add_endpoints(encryption)
        self._add_flow_logs(config, encryption)

    @property
    def pinned_subnet(self) -> Subnet:
        """The compute environment's one subnet: a cluster placement group is AZ-bound."""
        return self.private_subnets[0]

    def _lock_default_security_group(self) -> DefaultSecurityGroup:
        """The VPC's default group: empty, unless EFA interfaces leave the task interfaces on it."""
        group = DefaultSecurityGroup(self, "default_sg", vpc_id=self.vpc.id,
                                     tags=tags(self._cluster,
                                               Name=name(self._cluster, "default")))
        if self._efa:
            # "The elastic network interfaces that are created and attached to an MNP task will
            # use the security groups specified in your compute environment. If you don't
            # specify a security group, the default security group for the VPC is used"
            # (docs.aws.amazon.com/batch/latest/userguide/mnp-ce.html); an EFA environment has
            # none, so each node's task interface is in this group and needs the compute rules.
            # Inline, not rule resources: the provider treats this resource's inline rules as
            # absolute and calls it incompatible with rule resources
            # (registry.terraform.io/providers/hashicorp/aws/latest/docs/resources/
            # default_security_group).
            for direction in ("ingress", "egress"):
                rules = [self._inline_rule(*rule) for rule in TASK_RULES if rule[0] == direction]
                group.add_override(direction, f"${{{EFA_ENABLED} ? [{', '.join(rules)}] : []}}")
        return group

    def _inline_rule(self, _direction: str, _suffix: str, description: str, protocol: str,
                     port: int | None, peer: str) -> str:
        """HCL: one attribute-as-blocks rule object (every attribute must be given)."""
        efs = self.efs_security_group  # a bare reference: this is inside an HCL expression
        groups = (f"[{efs.terraform_resource_type}.{efs.friendly_unique_id}.id]" if peer == "efs"
                  else "[]")
        cidrs = f'["{ANYWHERE}"]' if peer == "anywhere" else "[]"
        # protocol -1 takes ports 0-0 here (unlike the rule resources, which take none).
        return (f'{{description = "{description}", protocol = "{protocol}", '
                f"from_port = {port or 0}, to_port = {port or 0}, "
                f"self = {'true' if peer == 'self' else 'false'}, security_groups = {groups}, "
                f"cidr_blocks = {cidrs}, ipv6_cidr_blocks = [], prefix_list_ids = []}}")

    def _add_subnet(self, kind: str, index: int, cidr: str) -> Subnet:
        # Zone ids, not names: the pinned zone must offer the instance types (zones.py checks).
        return Subnet(self, f"{kind}_subnet_{index}", vpc_id=self.vpc.id, cidr_block=cidr,
                      availability_zone_id=self._zone_ids[index],
                      map_public_ip_on_launch=False,
                      tags=tags(self._cluster, Name=name(self._cluster, kind, str(index)),
                                Tier=kind))

    def _add_nat_gateway(self) -> NatGateway:
        igw = InternetGateway(self, "igw", vpc_id=self.vpc.id,
                              tags=tags(self._cluster, Name=name(self._cluster, "igw")))
        public_rt = RouteTable(self, "public_rt", vpc_id=self.vpc.id,
                               route=[RouteTableRoute(cidr_block=ANYWHERE, gateway_id=igw.id)],
                               tags=tags(self._cluster, Name=name(self._cluster, "public")))
        for i, subnet in enumerate(self.public_subnets):
            RouteTableAssociation(self, f"public_rta_{i}", subnet_id=subnet.id,
                                  route_table_id=public_rt.id)
        eip = Eip(self, "nat_eip", domain="vpc",
                  tags=tags(self._cluster, Name=name(self._cluster, "nat")))
        return NatGateway(self, "nat", allocation_id=eip.id, subnet_id=self.public_subnets[0].id,
                          tags=tags(self._cluster, Name=name(self._cluster, "nat")),
                          depends_on=[igw])

    def _add_routing(self, nat: NatGateway) -> RouteTable:
        private_rt = RouteTable(self, "private_rt", vpc_id=self.vpc.id,
                                route=[RouteTableRoute(cidr_block=ANYWHERE,
                                                       nat_gateway_id=nat.id)],
                                tags=tags(self._cluster, Name=name(self._cluster, "private")))
        for i, subnet in enumerate(self.private_subnets):
            RouteTableAssociation(self, f"private_rta_{i}", subnet_id=subnet.id,
                                  route_table_id=private_rt.id)
        return private_rt

    def _add_security_group(self, id_: str, label: str, description: str) -> SecurityGroup:
        # No ingress/egress arguments at all: even `egress = []` would make them inline-managed.
        # Terraform removes the default allow-all egress of a new group.
        return SecurityGroup(self, id_, name=name(self._cluster, label), vpc_id=self.vpc.id,
                             description=description,
                             tags=tags(self._cluster, Name=name(self._cluster, label)))

    def _add_security_group_rules(self) -> list[SecurityGroupRule]:
        compute = self.compute_security_group.id
        staging = self.staging_security_group.id
        admitting = {"efs": self.efs_security_group.id,
                     "endpoints": self.endpoint_security_group.id}
        kinds = {"ingress": VpcSecurityGroupIngressRule, "egress": VpcSecurityGroupEgressRule}
        rules = []
        for label, group, table in (("compute", compute, TASK_RULES),
                                    ("staging", staging, STAGING_RULES)):
            peers = {"self": group, "efs": self.efs_security_group.id}
            rules += [self._add_rule(kinds[direction], f"{label}_{suffix}", group, description,
                                     protocol, port=port, peer_group=peers.get(peer),
                                     cidr=ANYWHERE if peer == "anywhere" else None)
                      for direction, suffix, description, protocol, port, peer in table]
        for label, service, port in ADMITTING:
            rules.append(self._add_rule(VpcSecurityGroupIngressRule, f"{label}_from_compute",
                                        admitting[label], f"{service} from compute nodes", "tcp",
                                        port=port, peer_group=compute))
            rules.append(self._add_rule(VpcSecurityGroupIngressRule, f"{label}_from_staging",
                                        admitting[label], f"{service} from staging jobs", "tcp",
                                        port=port, peer_group=staging))
            if self._efa:  # the task interfaces of an EFA stack are in the default group
                rules.append(self._add_rule(
                    VpcSecurityGroupIngressRule, f"{label}_from_default", admitting[label],
                    f"{service} from task interfaces (EFA: the VPC default group)", "tcp",
                    port=port, peer_group=self.default_security_group.id,
                    count=Token.as_number(f"${{{EFA_ENABLED} ? 1 : 0}}")))
        return rules

    def _add_rule(self, kind: type[SecurityGroupRule], id_: str, group_id: str,
                  description: str, protocol: str, *, port: int | None = None,
                  peer_group: str | None = None, cidr: str | None = None,
                  count: float | None = None) -> SecurityGroupRule:
        """One rule resource: a peer group or a CIDR; one port, or every port (protocol -1)."""
        return kind(self, id_, security_group_id=group_id, description=description, count=count,
                    ip_protocol=protocol, from_port=port, to_port=port,
                    referenced_security_group_id=peer_group, cidr_ipv4=cidr,
                    tags=tags(self._cluster, Name=name(self._cluster, id_.replace("_", "-"))))

    def _add_endpoints(self, encryption: Encryption) -> None:
        service_prefix = f"com.amazonaws.{encryption.region}"
        VpcEndpoint(self, "s3_endpoint", vpc_id=self.vpc.id, vpc_endpoint_type="Gateway",
                    service_name=f"{service_prefix}.s3",
                    route_table_ids=[self.private_route_table.id],
                    tags=tags(self._cluster, Name=name(self._cluster, "s3")))
        for service in INTERFACE_ENDPOINTS:
            VpcEndpoint(self, f"{service.replace('.', '_')}_endpoint", vpc_id=self.vpc.id,
                        vpc_endpoint_type="Interface", service_name=f"{service_prefix}.{service}",
                        private_dns_enabled=True,
                        subnet_ids=[s.id for s in self.private_subnets],
                        security_group_ids=[self.endpoint_security_group.id],
                        tags=tags(self._cluster, Name=name(self._cluster, service)))

    def _add_flow_logs(self, config: PlatformConfig, encryption: Encryption) -> FlowLog:
        group = CloudwatchLogGroup(
            self, "flow_log_group", name=f"/vpc/{name(self._cluster, 'flow-logs')}",
            retention_in_days=config.limits.flow_log_retention_days,
            kms_key_id=encryption.key.arn, tags=tags(self._cluster))
        role = service_role(
            self, "flow_log_role", role_name=name(self._cluster, "flow-logs"),
            service="vpc-flow-logs.amazonaws.com", tags=tags(self._cluster),
            # Scoped to the one group: its ARN (group actions) and its streams (":*").
            statements=[Statement(actions=list(FLOW_LOG_ACTIONS),
                                  resources=[group.arn, f"{group.arn}:*"])])
        return FlowLog(self, "flow_log", vpc_id=self.vpc.id, traffic_type="ALL",
                       log_destination_type="cloud-watch-logs", log_destination=group.arn,
                       iam_role_arn=role.arn, tags=tags(self._cluster))
