"""VPC for awsvpc multi-node containers: private subnets, NAT egress, endpoints, flow logs."""

from __future__ import annotations

from cdktf import Fn
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.data_aws_availability_zones import DataAwsAvailabilityZones
from cdktf_cdktf_provider_aws.default_security_group import DefaultSecurityGroup
from cdktf_cdktf_provider_aws.eip import Eip
from cdktf_cdktf_provider_aws.flow_log import FlowLog
from cdktf_cdktf_provider_aws.internet_gateway import InternetGateway
from cdktf_cdktf_provider_aws.nat_gateway import NatGateway
from cdktf_cdktf_provider_aws.route_table import RouteTable, RouteTableRoute
from cdktf_cdktf_provider_aws.route_table_association import RouteTableAssociation
from cdktf_cdktf_provider_aws.security_group import (
    SecurityGroup,
    SecurityGroupEgress,
    SecurityGroupIngress,
)
from cdktf_cdktf_provider_aws.security_group_rule import SecurityGroupRule
from cdktf_cdktf_provider_aws.subnet import Subnet
from cdktf_cdktf_provider_aws.vpc import Vpc
from cdktf_cdktf_provider_aws.vpc_endpoint import VpcEndpoint
from constructs import Construct

from stacks.config import PlatformConfig, name, tags
from stacks.encryption import Encryption
from stacks.policy import Statement, service_role

AZ_COUNT = 2
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs")  # image pulls and awslogs stay private
ANYWHERE = "0.0.0.0/0"


class Network(Construct):
    """Private subnets in two AZs (the first one pinned for the placement group), one NAT."""

    def __init__(self, scope: Construct, id_: str, *, config: PlatformConfig, cluster: str,
                 vpc_cidr: str, encryption: Encryption) -> None:
        super().__init__(scope, id_)
        self._cluster = cluster
        self._azs = DataAwsAvailabilityZones(self, "azs", state="available")
        # --- VPC and subnets
        self.vpc = Vpc(self, "vpc", cidr_block=vpc_cidr, enable_dns_support=True,
                       enable_dns_hostnames=True, tags=tags(cluster, Name=name(cluster, "vpc")))
        self._lock_default_security_group()
        # Private subnets take the lower half of the VPC: awsvpc gives every node container
        # its own ENI, so the pinned subnet needs an address per container and per instance.
        self.private_subnets = [self._add_subnet("private", i, Fn.cidrsubnet(vpc_cidr, 2, i))
                                for i in range(AZ_COUNT)]
        self.public_subnets = [self._add_subnet("public", i, Fn.cidrsubnet(vpc_cidr, 4, 8 + i))
                               for i in range(AZ_COUNT)]
        # --- Routing: public subnets exist only to host the NAT gateway
        nat = self._add_nat_gateway()
        self.private_route_table = self._add_routing(nat)
        # --- Security groups
        self.compute_security_group = self._add_compute_security_group()
        self.efs_security_group = self._add_service_security_group(
            "efs_sg", "efs", 2049, "EFS mount targets (NFS over TLS)")
        self.endpoint_security_group = self._add_service_security_group(
            "endpoint_sg", "endpoints", 443, "Interface VPC endpoints (HTTPS)")
        self._add_compute_egress_to_efs()
        # --- Private access to AWS APIs, and flow logs
        self._add_endpoints(encryption)
        self._add_flow_logs(config, encryption)

    @property
    def pinned_subnet(self) -> Subnet:
        """The compute environment's one subnet: a cluster placement group is AZ-bound."""
        return self.private_subnets[0]

    def _lock_default_security_group(self) -> DefaultSecurityGroup:
        # Taking over the default SG with no rules means nothing can use it by accident.
        return DefaultSecurityGroup(self, "default_sg", vpc_id=self.vpc.id,
                                    tags=tags(self._cluster, Name=name(self._cluster, "default")))

    def _add_subnet(self, kind: str, index: int, cidr: str) -> Subnet:
        return Subnet(self, f"{kind}_subnet_{index}", vpc_id=self.vpc.id, cidr_block=cidr,
                      availability_zone=Fn.element(self._azs.names, index),
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

    def _add_compute_security_group(self) -> SecurityGroup:
        return SecurityGroup(
            self, "compute_sg", name=name(self._cluster, "compute"), vpc_id=self.vpc.id,
            description="Batch nodes: all traffic between members only (MPI, launcher ssh, EFA)",
            ingress=[SecurityGroupIngress(
                description="MPI, rendezvous and ssh between nodes of the same job",
                protocol="-1", from_port=0, to_port=0, self_attribute=True)],
            egress=[
                SecurityGroupEgress(description="MPI and rendezvous to the other nodes",
                                    protocol="-1", from_port=0, to_port=0, self_attribute=True),
                SecurityGroupEgress(description="HTTPS to AWS APIs (endpoints, NAT)",
                                    protocol="tcp", from_port=443, to_port=443,
                                    cidr_blocks=[ANYWHERE]),
            ],
            tags=tags(self._cluster, Name=name(self._cluster, "compute")))

    def _add_service_security_group(self, id_: str, label: str, port: int,
                                    what: str) -> SecurityGroup:
        """A group for an AWS service's network interfaces: one port, from compute nodes only."""
        return SecurityGroup(
            self, id_, name=name(self._cluster, label), vpc_id=self.vpc.id,
            description=f"{what}: port {port} from compute nodes only",
            ingress=[SecurityGroupIngress(description=f"{what} from compute nodes",
                                          protocol="tcp", from_port=port, to_port=port,
                                          security_groups=[self.compute_security_group.id])],
            egress=[],
            tags=tags(self._cluster, Name=name(self._cluster, label)))

    def _add_compute_egress_to_efs(self) -> SecurityGroupRule:
        # A separate rule: inline, the two groups would reference each other (a cycle).
        return SecurityGroupRule(
            self, "compute_to_efs", type="egress", protocol="tcp", from_port=2049, to_port=2049,
            security_group_id=self.compute_security_group.id,
            source_security_group_id=self.efs_security_group.id,
            description="NFS to the EFS mount targets")

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
            statements=[Statement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[group.arn, f"{group.arn}:*"])])
        return FlowLog(self, "flow_log", vpc_id=self.vpc.id, traffic_type="ALL",
                       log_destination_type="cloud-watch-logs", log_destination=group.arn,
                       iam_role_arn=role.arn, tags=tags(self._cluster))
