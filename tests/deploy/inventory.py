"""What an account holds, read with the AWS API: compared before apply and after destroy.

A fresh emulated account already has a default VPC and its parts; whatever is there after
`terraform destroy` and was not there before is what destroy left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.deploy.emulator_process import client


def _alive(item: dict[str, Any]) -> bool:
    return True


def _not_state(*gone: str, key: str = "State") -> Callable[[dict[str, Any]], bool]:
    return lambda item: item.get(key) not in gone


@dataclass(frozen=True)
class Listing:
    """One List/Describe call: where its items are, what names one, what counts as still there."""

    service: str
    operation: str
    items: str
    ident: str  # "" when the items are the names themselves (SQS lists queue URLs)
    kwargs: tuple[tuple[str, Any], ...] = ()
    alive: Callable[[dict[str, Any]], bool] = _alive


# Every kind of resource the stack creates. Deleting some leaves a record in a final state for
# a while (a NAT gateway `deleted`, a KMS key `PendingDeletion` for its 7-30 day window
# (kms/latest/developerguide/deleting-keys.html), a job definition INACTIVE): those are gone.
LISTINGS = (
    Listing("ec2", "describe_vpcs", "Vpcs", "VpcId"),
    Listing("ec2", "describe_subnets", "Subnets", "SubnetId"),
    Listing("ec2", "describe_security_groups", "SecurityGroups", "GroupId"),
    Listing("ec2", "describe_route_tables", "RouteTables", "RouteTableId"),
    Listing("ec2", "describe_internet_gateways", "InternetGateways", "InternetGatewayId"),
    Listing("ec2", "describe_nat_gateways", "NatGateways", "NatGatewayId",
            alive=_not_state("deleted", "deleting")),
    Listing("ec2", "describe_addresses", "Addresses", "AllocationId"),
    Listing("ec2", "describe_vpc_endpoints", "VpcEndpoints", "VpcEndpointId",
            alive=_not_state("deleted", "Deleted", key="State")),
    Listing("ec2", "describe_flow_logs", "FlowLogs", "FlowLogId"),
    Listing("ec2", "describe_launch_templates", "LaunchTemplates", "LaunchTemplateId"),
    Listing("ec2", "describe_placement_groups", "PlacementGroups", "GroupName"),
    Listing("efs", "describe_file_systems", "FileSystems", "FileSystemId"),
    Listing("efs", "describe_access_points", "AccessPoints", "AccessPointId"),
    Listing("fsx", "describe_file_systems", "FileSystems", "FileSystemId",
            alive=_not_state("DELETING", key="Lifecycle")),
    Listing("fsx", "describe_data_repository_associations", "Associations", "AssociationId",
            alive=_not_state("DELETING", key="Lifecycle")),
    Listing("ecr", "describe_repositories", "repositories", "repositoryName"),
    Listing("iam", "list_roles", "Roles", "RoleName",
            alive=lambda role: not role["Path"].startswith("/aws-service-role/")),
    Listing("iam", "list_instance_profiles", "InstanceProfiles", "InstanceProfileName"),
    Listing("kms", "list_aliases", "Aliases", "AliasName",
            alive=lambda alias: not alias["AliasName"].startswith("alias/aws/")),
    Listing("secretsmanager", "list_secrets", "SecretList", "Name",
            alive=lambda secret: "DeletedDate" not in secret),
    Listing("batch", "describe_compute_environments", "computeEnvironments",
            "computeEnvironmentName"),
    Listing("batch", "describe_job_queues", "jobQueues", "jobQueueName"),
    Listing("batch", "describe_job_definitions", "jobDefinitions", "jobDefinitionArn",
            kwargs=(("status", "ACTIVE"),)),
    Listing("logs", "describe_log_groups", "logGroups", "logGroupName"),
    Listing("cloudwatch", "describe_alarms", "MetricAlarms", "AlarmName"),
    Listing("cloudwatch", "list_dashboards", "DashboardEntries", "DashboardName"),
    Listing("events", "list_rules", "Rules", "Name"),
    Listing("lambda", "list_functions", "Functions", "FunctionName"),
    Listing("sqs", "list_queues", "QueueUrls", ""),
    Listing("sns", "list_topics", "Topics", "TopicArn"),
    Listing("sns", "list_subscriptions", "Subscriptions", "SubscriptionArn"),
    Listing("s3", "list_buckets", "Buckets", "Name"),
)


def _kms_keys(endpoint: str, region: str) -> set[str]:
    kms = client("kms", endpoint, region)
    keys = [k["KeyId"] for k in kms.list_keys()["Keys"]]
    return {f"kms/{key}" for key in keys
            if kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"] != "PendingDeletion"}


def read(endpoint: str, region: str) -> set[str]:
    """Every live resource of the kinds above, as 'service/operation/id'."""
    found: set[str] = set()
    clients: dict[str, Any] = {}
    for listing in LISTINGS:
        api = clients.setdefault(listing.service,
                                    client(listing.service, endpoint, region))
        answer = getattr(api, listing.operation)(**dict(listing.kwargs))
        found |= {f"{listing.service}/{listing.operation}/"
                  f"{item[listing.ident] if listing.ident else item}"
                  for item in answer.get(listing.items, []) if listing.alive(item)}
    return found | _kms_keys(endpoint, region)
