"""The emulator's own answers, read back through boto3 (whose parsers follow the AWS models).

Each handler and fix in missing_apis / moto_fixes is checked here for the shape and state the
AWS API reference gives, so the round trip's pass means the provider met AWS's answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from tests.deploy import emulator_process
from tests.deploy.emulator_process import client

REGION = "us-east-1"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with emulator_process.running() as url:
        yield url


def test_placement_group_lifecycle(endpoint: str) -> None:
    ec2 = client("ec2", endpoint, REGION)
    ec2.create_placement_group(GroupName="mpi", Strategy="cluster", TagSpecifications=[
        {"ResourceType": "placement-group", "Tags": [{"Key": "Cluster", "Value": "c"}]}])
    (group,) = ec2.describe_placement_groups(GroupNames=["mpi"])["PlacementGroups"]
    assert group["GroupName"] == "mpi"
    assert group["Strategy"] == "cluster"
    assert group["State"] == "available"
    assert group["GroupId"].startswith("pg-")
    assert group["Tags"] == [{"Key": "Cluster", "Value": "c"}]
    with pytest.raises(ClientError, match="InvalidPlacementGroup.Duplicate"):
        ec2.create_placement_group(GroupName="mpi", Strategy="cluster")
    ec2.delete_placement_group(GroupName="mpi")
    with pytest.raises(ClientError, match="InvalidPlacementGroup.Unknown"):
        ec2.describe_placement_groups(GroupNames=["mpi"])


def test_placement_group_strategy_is_checked(endpoint: str) -> None:
    with pytest.raises(ClientError, match="InvalidParameterValue"):
        client("ec2", endpoint, REGION).create_placement_group(GroupName="x", Strategy="tight")


def test_efs_backup_policy_and_policy_delete(endpoint: str) -> None:
    efs = client("efs", endpoint, REGION)
    fs_id = efs.create_file_system(CreationToken="t")["FileSystemId"]
    assert efs.describe_backup_policy(FileSystemId=fs_id)["BackupPolicy"]["Status"] == "DISABLED"
    efs.put_backup_policy(FileSystemId=fs_id, BackupPolicy={"Status": "ENABLED"})
    assert efs.describe_backup_policy(FileSystemId=fs_id)["BackupPolicy"]["Status"] == "ENABLED"
    efs.put_file_system_policy(FileSystemId=fs_id, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
                                                "Action": "elasticfilesystem:ClientMount"}]}))
    efs.delete_file_system_policy(FileSystemId=fs_id)
    with pytest.raises(ClientError, match="PolicyNotFound"):
        efs.describe_file_system_policy(FileSystemId=fs_id)
    with pytest.raises(ClientError, match="FileSystemNotFound"):
        efs.put_backup_policy(FileSystemId="fs-00000000", BackupPolicy={"Status": "ENABLED"})


def test_ec2_quota_and_price(endpoint: str) -> None:
    quota = client("service-quotas", endpoint, REGION).get_service_quota(
        ServiceCode="ec2", QuotaCode="L-1216C47A")["Quota"]
    assert quota["Value"] > 0 and quota["QuotaCode"] == "L-1216C47A"
    found = client("pricing", endpoint, REGION).get_products(ServiceCode="AmazonEC2", Filters=[
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "c6i.2xlarge"},
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": REGION}])["PriceList"]
    (product,) = [json.loads(p) for p in found]
    (term,) = product["terms"]["OnDemand"].values()
    (dimension,) = term["priceDimensions"].values()
    assert float(dimension["pricePerUnit"]["USD"]) > 0


def _queue(endpoint: str) -> str:
    ec2 = client("ec2", endpoint, REGION)
    batch = client("batch", endpoint, REGION)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
    profile = client("iam", endpoint, REGION).create_instance_profile(
        InstanceProfileName="p")["InstanceProfile"]["Arn"]
    # No serviceRole: Batch uses (and makes) its service-linked role.
    env = batch.create_compute_environment(
        computeEnvironmentName="mnp-ce", type="MANAGED", computeResources={
            "type": "EC2", "minvCpus": 0, "maxvCpus": 16, "instanceTypes": ["c6i.2xlarge"],
            "subnets": [subnet], "securityGroupIds": [group], "instanceRole": profile})
    (described,) = batch.describe_compute_environments(
        computeEnvironments=["mnp-ce"])["computeEnvironments"]
    assert described["serviceRole"].endswith(
        ":role/aws-service-role/batch.amazonaws.com/AWSServiceRoleForBatch")
    # No securityGroupIds: an EFA launch template's interfaces carry the groups; without
    # groups anywhere Batch refuses.
    template = ec2.create_launch_template(LaunchTemplateName="mnp-efa", LaunchTemplateData={
        "NetworkInterfaces": [{"DeviceIndex": 0, "InterfaceType": "efa", "Groups": [group]}]})
    efa = {"type": "EC2", "minvCpus": 0, "maxvCpus": 16, "instanceTypes": ["c5n.18xlarge"],
           "subnets": [subnet], "instanceRole": profile}
    with pytest.raises(ClientError, match="At least 1 security group"):
        batch.create_compute_environment(computeEnvironmentName="mnp-efa-ce", type="MANAGED",
                                         computeResources=efa)
    batch.create_compute_environment(
        computeEnvironmentName="mnp-efa-ce", type="MANAGED", computeResources={
            **efa, "launchTemplate": {
                "launchTemplateId": template["LaunchTemplate"]["LaunchTemplateId"]}})
    batch.create_job_queue(
        jobQueueName="mnp-q", state="ENABLED", priority=1, computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}],
        jobStateTimeLimitActions=[{"reason": "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
                                   "state": "RUNNABLE", "maxTimeSeconds": 600,
                                   "action": "CANCEL"}])
    return "mnp-q"


def test_queue_keeps_time_limit_actions_and_jobs_wait_runnable(endpoint: str) -> None:
    batch = client("batch", endpoint, REGION)
    queue = _queue(endpoint)
    (described,) = batch.describe_job_queues(jobQueues=[queue])["jobQueues"]
    assert described["jobStateTimeLimitActions"][0]["maxTimeSeconds"] == 600
    batch.register_job_definition(jobDefinitionName="d", type="container", containerProperties={
        "image": "busybox", "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                     {"type": "MEMORY", "value": "512"}]})
    job = batch.submit_job(jobName="j", jobQueue=queue, jobDefinition="d")["jobId"]
    for _ in range(3):
        assert batch.describe_jobs(jobs=[job])["jobs"][0]["status"] == "RUNNABLE"
    batch.cancel_job(jobId=job, reason="not needed")
    (ended,) = batch.describe_jobs(jobs=[job])["jobs"]
    assert (ended["status"], ended["statusReason"]) == ("FAILED", "not needed")


def test_launch_template_data_keeps_only_its_own_tags(endpoint: str) -> None:
    ec2 = client("ec2", endpoint, REGION)
    made = ec2.create_launch_template(
        LaunchTemplateName="mnp-lt", LaunchTemplateData={"TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "node"}]}]},
        TagSpecifications=[{"ResourceType": "launch-template",
                            "Tags": [{"Key": "Cluster", "Value": "c"}]}])["LaunchTemplate"]
    (version,) = ec2.describe_launch_template_versions(
        LaunchTemplateId=made["LaunchTemplateId"])["LaunchTemplateVersions"]
    assert version["LaunchTemplateData"]["TagSpecifications"] == [
        {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "node"}]}]
    (template,) = ec2.describe_launch_templates(LaunchTemplateNames=["mnp-lt"])["LaunchTemplates"]
    assert template["Tags"] == [{"Key": "Cluster", "Value": "c"}]


def test_group_referencing_rule_keeps_its_description(endpoint: str) -> None:
    ec2 = client("ec2", endpoint, REGION)
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="r", Description="r", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
        "IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": group, "Description": "peers"}]}])
    rules = ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
    (ingress,) = [r for r in rules if not r["IsEgress"]]
    assert ingress["Description"] == "peers"


def test_function_keeps_its_dead_letter_config(endpoint: str) -> None:
    iam = client("iam", endpoint, REGION)
    trust = {"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"Service": "lambda.amazonaws.com"}}
    role = iam.create_role(RoleName="dlq-fn", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [trust]}))
    sqs = client("sqs", endpoint, REGION)
    url = sqs.create_queue(QueueName="dlq-fn")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"]
    lam = client("lambda", endpoint, REGION)
    lam.create_function(FunctionName="dlq-fn", Runtime="python3.13", Handler="m.h",
                        Role=role["Role"]["Arn"], Code={"ZipFile": b"PK\x05\x06" + bytes(18)},
                        DeadLetterConfig={"TargetArn": arn})
    assert lam.get_function(FunctionName="dlq-fn")["Configuration"]["DeadLetterConfig"] == {
        "TargetArn": arn}
    lam.update_function_configuration(FunctionName="dlq-fn", DeadLetterConfig={"TargetArn": ""})
    assert "DeadLetterConfig" not in lam.get_function_configuration(FunctionName="dlq-fn")
def test_input_template_quotes_string_values(endpoint: str) -> None:
    sqs, events = client("sqs", endpoint, REGION), client("events", endpoint, REGION)
    url = sqs.create_queue(QueueName="transformed")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    events.put_rule(Name="quotes", EventPattern=json.dumps({"source": ["demo"]}))
    # The user guide's example (eb-transform-target-input.html): strings arrive quoted.
    events.put_targets(Rule="quotes", Targets=[{"Id": "q", "Arn": arn, "InputTransformer": {
        "InputPathsMap": {"instance": "$.detail.instance", "count": "$.detail.count"},
        "InputTemplate": '{"instance" : <instance>, "count": <count>, "as text": "<instance>"}'}}])
    events.put_events(Entries=[{"Source": "demo", "DetailType": "d",
                                "Detail": json.dumps({"instance": "i-0123456789", "count": 3})}])
    (message,) = sqs.receive_message(QueueUrl=url)["Messages"]
    assert json.loads(message["Body"]) == {"instance": "i-0123456789", "count": 3,
                                           "as text": "i-0123456789"}


def test_deleted_lustre_file_system_is_deleting_then_not_found(endpoint: str) -> None:
    # What the provider's delete waiter reads (README "The FSx destroy wait"): the delete's
    # Lifecycle, then DescribeFileSystems of the id until FileSystemNotFound.
    ec2, fsx = client("ec2", endpoint, REGION), client("fsx", endpoint, REGION)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    fs_id = fsx.create_file_system(
        FileSystemType="LUSTRE", StorageCapacity=1200, SubnetIds=[subnet],
        LustreConfiguration={"DeploymentType": "PERSISTENT_2", "PerUnitStorageThroughput": 125},
    )["FileSystem"]["FileSystemId"]
    (found,) = fsx.describe_file_systems(FileSystemIds=[fs_id])["FileSystems"]
    assert found["Lifecycle"] == "AVAILABLE"
    deleted = fsx.delete_file_system(FileSystemId=fs_id,
                                     LustreConfiguration={"SkipFinalBackup": True})
    # API_DeleteFileSystem.html: "If the DeleteFileSystem operation is successful, this status
    # is DELETING."
    assert (deleted["FileSystemId"], deleted["Lifecycle"]) == (fs_id, "DELETING")
    # API_DescribeFileSystems.html, Errors: FileSystemNotFound, HTTP Status Code: 400.
    with pytest.raises(ClientError) as gone:
        fsx.describe_file_systems(FileSystemIds=[fs_id])
    assert gone.value.response["Error"]["Code"] == "FileSystemNotFound"
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert fs_id not in [f["FileSystemId"] for f in fsx.describe_file_systems()["FileSystems"]]
