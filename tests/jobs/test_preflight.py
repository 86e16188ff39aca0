"""preflight against moto: each check passes and fails with its message, nothing is submitted,
UNKNOWN names the IAM action moto's policy enforcement denied, and the cost bound's arithmetic."""

from __future__ import annotations

import json

import boto3
import pytest

from jobs.preflight.pricing import Estimate
from jobs.preflight.sizing import registered_memory
from tests.jobs import moto_env
from tests.jobs.moto_env import INSTANCE_TYPE, REPOSITORY_URL, STANDARD_QUOTA, ZONE

JOB = ["--job-name", "heat-4n", "--nodes", "4", "--vcpus", "8", "--memory", "15000"]
READS = ["batch:describejobqueues", "batch:describecomputeenvironments",
         "batch:describejobdefinitions", "ecr:describeimages", "ec2:describeinstancetypes",
         "ec2:describesubnets", "ec2:describeinstancetypeofferings",
         "ec2:describelaunchtemplateversions", "servicequotas:getservicequota",
         "ec2:describeinstances", "pricing:getproducts"]


def report(aws, *flags: str) -> tuple[int, dict[str, dict[str, str]], dict]:
    """Exit code, checks by name, and the whole --json report of `preflight`."""
    result = aws.cli("preflight", *JOB, *flags, "--json")
    assert "Traceback" not in result.stderr
    out = json.loads(result.stdout)
    return result.returncode, {c["check"]: c for c in out["checks"]}, out


def refused(aws, *flags: str, name: str, message: str, hint: str = "") -> None:
    """submit exits 2 with the FAIL line in its table and sends no SubmitJob."""
    result = aws.cli("submit", *JOB, *flags)
    assert result.returncode == 2, result.stderr
    line = next(x for x in result.stderr.splitlines() if x.startswith(f"│ {name} "))
    assert "FAIL" in line and message in line and hint in line
    assert f"failed ({name}" in result.stderr and "nothing was submitted" in result.stderr
    assert "submitjob" not in aws.operations() and aws.requests() == []


def test_every_check_passes_and_the_job_is_submitted(aws):
    code, found, out = report(aws, "--timeout", "3600")
    assert code == 0
    assert {c["status"] for c in found.values()} == {"PASS"}
    assert list(found) == ["instance type", "max vCPUs", "vCPU quota", "AZ offering", "image",
                           "EFA", "/dev/shm"]
    assert found["instance type"]["message"] == (
        "c6i.2xlarge holds 8 vCPUs and 15000 MiB per node (ECS registers 15938 of its 16384 MiB)")
    assert found["vCPU quota"]["message"] == (
        "32 vCPUs (4 x c6i.2xlarge) + 0 running <= quota L-1216C47A (Running On-Demand Standard "
        "(A, C, D, H, I, M, R, T, Z) instances) of 256")
    assert aws.operations(preflight=True) == READS
    assert aws.requests() == []  # preflight alone submits nothing
    aws.start_recording()
    submitted = aws.cli("submit", *JOB)
    assert submitted.returncode == 0, submitted.stderr
    assert "preflight heat-4n: all 7 checks passed" in submitted.stderr
    assert aws.operations(preflight=True) == READS
    assert aws.operations() == ["batch:submitjob"]


def test_the_table_and_cost_line(aws):
    result = aws.cli("preflight", *JOB, "--timeout", "3600", "--attempts", "3")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 7 and all("│ PASS " in row for row in rows)
    # 4 nodes x $0.34/h x 1 h x 3 attempts
    assert "max cost: $4.08 = 4 nodes x $0.3400/h (c6i.2xlarge on-demand) x 1 h attempt " \
        "timeout x 3 attempts" in result.stdout


@pytest.mark.parametrize(("memory", "status"), [("15938", "PASS"), ("15939", "FAIL")])
def test_memory_against_what_ecs_registers(aws, memory, status):
    code, found, _ = report(aws, "--memory", memory)
    assert found["instance type"]["status"] == status
    assert code == (0 if status == "PASS" else 2)


def test_memory_that_no_type_registers_is_refused(aws):
    refused(aws, "--memory", "16000", name="instance type",
            message="--memory 16000 MiB fits no allowed type with 8 vCPUs: the largest that "
            "fits is 15938 MiB on c6i.2xlarge", hint="use --memory 15938 or less")


def test_vcpus_that_no_type_has_are_refused(aws):
    refused(aws, "--vcpus", "16", "--nodes", "2", name="instance type",
            message="no allowed type has 16 vCPUs: the largest, c6i.2xlarge, has 8",
            hint="use --vcpus 8 or less")


def test_multi_node_job_on_a_spot_environment(aws):
    aws.use_environment("spot-ce", resource_type="SPOT")
    refused(aws, name="instance type", message="compute environment spot-ce is SPOT: "
            "multi-node jobs run on EC2 on-demand only (never Spot or Fargate)")


def test_max_vcpus_counts_what_the_environment_runs(aws):
    # moto launches instances for desiredvCpus: 5 x c6i.2xlarge = 40 vCPUs in use.
    aws.use_environment("busy-ce", desired_vcpus=40)
    code, found, _ = report(aws, "--nodes", "3")
    assert code == 0
    assert found["max vCPUs"]["message"] == (
        "3 nodes x 8 vCPUs (c6i.2xlarge) = 24 + 40 in use <= maxvCpus 64 of busy-ce")
    refused(aws, name="max vCPUs",
            message="4 nodes x 8 vCPUs (c6i.2xlarge) = 32 + 40 in use > maxvCpus 64 of busy-ce",
            hint="use --nodes 3 or less, or raise max_vcpus in the stack")


def test_vcpu_quota_counts_running_instances(aws):
    aws.use_environment("busy-ce", desired_vcpus=40, max_vcpus=256)
    moto_env.SEEDED_QUOTAS[STANDARD_QUOTA] = 64.0
    code, found, _ = report(aws, "--nodes", "3")
    assert code == 0
    assert found["vCPU quota"]["message"].startswith("24 vCPUs (3 x c6i.2xlarge) + 40 running "
                                                     "<= quota L-1216C47A")
    refused(aws, name="vCPU quota",
            message="32 vCPUs (4 x c6i.2xlarge) + 40 running > quota L-1216C47A (Running "
            "On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances) of 64",
            hint="request an increase of L-1216C47A (Service Quotas, ec2) to at least 72")


def test_type_not_offered_in_the_subnets_az(aws):
    aws.use_environment("east-e-ce", zone="us-east-1e")
    subnet = aws.batch.describe_compute_environments(computeEnvironments=["east-e-ce"])[
        "computeEnvironments"][0]["computeResources"]["subnets"][0]
    aws.start_recording()
    refused(aws, name="AZ offering",
            message=f"c6i.2xlarge is not offered in the AZ of subnet {subnet} (us-east-1e): "
            "only in us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f",
            hint="use a subnet in an AZ that offers it")
    _, found, _ = report(aws, "--nodes", "1")
    assert found["AZ offering"]["status"] == "FAIL"


def test_image_tag_not_in_ecr(aws):
    _, found, _ = report(aws, "--image-tag", "v2")
    assert found["image"] == {"check": "image", "status": "PASS", "hint": "",
                              "message": f"{REPOSITORY_URL}:v2 is in ECR"}
    aws.start_recording()
    refused(aws, "--image-tag", "v9", name="image",
            message=f"image {REPOSITORY_URL}:v9 is not in ECR",
            hint="build and push that tag first")
    assert "registerjobdefinition" not in " ".join(aws.operations(preflight=True))


def efa_template(aws) -> str:
    """A launch template with an EFA interface, as the EFA switch makes it."""
    return aws.ec2.create_launch_template(LaunchTemplateName="mnp-batch-efa", LaunchTemplateData={
        "NetworkInterfaces": [{"DeviceIndex": 0, "NetworkCardIndex": 0,
                               "InterfaceType": "efa"}]})["LaunchTemplate"]["LaunchTemplateId"]


def test_efa_on_with_a_type_without_efa(aws):
    aws.use_environment("efa-ce", template_id=efa_template(aws))
    refused(aws, name="EFA", message="EFA is on but c6i.2xlarge does not support EFA "
            "(EFA types allowed: none)", hint="allow only EFA-capable types")


def test_efa_on_with_an_efa_type_and_no_price(aws):
    aws.use_environment("efa-ce", template_id=efa_template(aws),
                        instance_types=("c5n.18xlarge",), max_vcpus=288)
    aws.register_definition(environment=[{"name": "MNP_NETWORK", "value": "efa"}])
    result = aws.cli("preflight", *JOB, "--nodes", "2")
    assert result.returncode == 0, result.stdout
    assert "│ EFA " in result.stdout and "EFA is on and c5n.18xlarge supports it" in result.stdout
    # No price seeded for c5n.18xlarge: the Price List API answers with nothing.
    assert "max cost: price unknown for c5n.18xlarge (the Price List API has no Linux " \
        "on-demand price for c5n.18xlarge in us-east-1)" in result.stdout


def test_efa_in_the_job_definition_without_an_efa_interface(aws):
    aws.register_definition(environment=[{"name": "MNP_NETWORK", "value": "efa"}])
    refused(aws, name="EFA", message="MNP_NETWORK=efa but the launch template has no network "
            "interface of type efa")


def test_shared_memory_counts_inside_the_container_memory(aws):
    aws.register_definition(linuxParameters={"sharedMemorySize": 4096})
    _, found, _ = report(aws, "--memory", "8192")
    assert found["/dev/shm"]["message"] == ("/dev/shm 4096 MiB (sharedMemorySize) of --memory "
                                            "8192 MiB leaves the application 4096 MiB")
    refused(aws, "--memory", "6000", name="/dev/shm",
            message="/dev/shm 4096 MiB (sharedMemorySize) counts inside --memory 6000 MiB: full, "
            "it leaves the application 1904 MiB", hint="use --memory 8192 or more")


@pytest.mark.parametrize(("action", "check"), [
    ("servicequotas:GetServiceQuota", "vCPU quota"),
    ("ec2:DescribeInstanceTypes", "instance type"),
    ("ec2:DescribeInstanceTypeOfferings", "AZ offering"),
    ("ecr:DescribeImages", "image"),
    ("ec2:DescribeSubnets", "AZ offering"),
    ("ec2:DescribeLaunchTemplateVersions", "EFA"),
])
def test_denied_call_is_unknown_and_names_the_permission(aws, deny, action, check):
    deny(action)
    code, found, _ = report(aws)
    assert code == 0
    assert found[check]["status"] == "UNKNOWN"
    assert found[check]["message"] == f"{action} was denied to the caller"
    assert found[check]["hint"] == f"allow {action} in the caller's IAM policy"
    # UNKNOWN does not refuse: the job is submitted.
    submitted = aws.cli("submit", *JOB)
    assert submitted.returncode == 0, submitted.stderr
    assert f"│ {check} " in submitted.stderr and "UNKNOWN" in submitted.stderr
    assert aws.operations() == ["batch:submitjob"]


def test_quota_with_running_instances_unknown(aws, deny):
    deny("ec2:DescribeInstances")
    code, found, _ = report(aws)
    assert code == 0
    assert found["vCPU quota"] == {
        "check": "vCPU quota", "status": "UNKNOWN",
        "message": "32 vCPUs fit quota L-1216C47A (Running On-Demand Standard (A, C, D, H, I, M, "
        "R, T, Z) instances) of 256, but what already runs is unknown: ec2:DescribeInstances "
        "was denied to the caller",
        "hint": "allow ec2:DescribeInstances in the caller's IAM policy"}
    moto_env.SEEDED_QUOTAS[STANDARD_QUOTA] = 16.0
    code, found, _ = report(aws)
    assert code == 2 and found["vCPU quota"]["status"] == "FAIL"


def test_aws_strings_are_printed_as_plain_text(aws):
    aws.use_environment("gone-ce")
    subnet = aws.batch.describe_compute_environments(computeEnvironments=["gone-ce"])[
        "computeEnvironments"][0]["computeResources"]["subnets"][0]
    aws.ec2.delete_subnet(SubnetId=subnet)
    result = aws.cli("preflight", *JOB)
    assert result.returncode == 0, result.stderr
    # "[InvalidSubnetID.NotFound]" would vanish if rich read it as markup.
    assert "[InvalidSubnetID.NotFound]" in result.stdout and "│ UNKNOWN" in result.stdout


def test_dry_run_prints_the_report_and_the_estimate(aws):
    result = aws.cli("submit", *JOB, "--timeout", "7200", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["jobName"] == "heat-4n"
    assert "│ instance type " in result.stderr
    assert "max cost: $5.44 = 4 nodes x $0.3400/h (c6i.2xlarge on-demand) x 2 h attempt " \
        "timeout x 2 attempts" in result.stderr
    refused_dry = aws.cli("submit", *JOB, "--memory", "16000", "--dry-run")
    assert refused_dry.returncode == 0
    assert "dry run: submit would refuse this job: preflight: 1 check failed (instance type)" \
        in refused_dry.stderr
    assert aws.requests() == []


def test_no_timeout_means_no_bound(aws):
    result = aws.cli("preflight", *JOB)
    assert "max cost: no bound: 4 nodes x $0.3400/h (c6i.2xlarge on-demand), but no attempt " \
        "timeout" in result.stdout


def test_no_preflight_reads_nothing(aws):
    result = aws.cli("submit", *JOB, "--memory", "16000", "--no-preflight")
    assert result.returncode == 0, result.stderr
    assert aws.operations(preflight=True) == []
    assert aws.operations() == ["batch:submitjob"]


def test_scale_test_refuses_every_count_when_one_fails(aws):
    moto_env.SEEDED_QUOTAS[STANDARD_QUOTA] = 24.0
    result = aws.cli("scale-test", "--nodes", "2,4", "--vcpus", "4", "--memory", "4096")
    assert result.returncode == 2
    assert "preflight scale-test-2n: all 7 checks passed" in result.stderr
    assert "32 vCPUs (4 x c6i.2xlarge) + 0 running > quota L-1216C47A" in result.stderr
    assert aws.requests() == []
    # One read of each kind for both counts.
    assert aws.operations(preflight=True) == READS


def test_missing_queue_is_one_line(aws):
    result = aws.cli("preflight", *JOB, "--job-queue", "no-such-queue")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: Job queue no-such-queue does not exist (hint: check --job-queue/--job-definition, "
        "JOB_QUEUE_NAME/JOB_DEFINITION_NAME, the stack outputs and AWS_REGION)"]


@pytest.mark.parametrize(("nodes", "hourly", "timeout", "attempts", "usd"), [
    (4, 0.34, 3600, 2, 2.72),
    (8, 3.888, 86400, 3, 8 * 3.888 * 24 * 3),
    (1, 1.0, 1800, 1, 0.5),
])
def test_estimate_arithmetic(nodes, hourly, timeout, attempts, usd):
    estimate = Estimate(nodes, INSTANCE_TYPE, hourly, timeout, attempts)
    assert estimate.usd == pytest.approx(usd)
    assert estimate.line().startswith(f"max cost: ${usd:,.2f} = {nodes} nodes x ${hourly:.4f}/h")


def test_registered_memory_follows_the_batch_doc_example():
    # m4.large: 8192 MiB installed, 7985 MiB seen by the agent, 32 MiB kept by the Batch AMI.
    assert registered_memory(8192) == 7985 - 32


def test_without_credentials_preflight_exits_one_naming_them_once(aws):
    env = {k: v for k, v in aws.env().items()
           if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = aws.cli("preflight", *JOB, env=env)
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""  # not seven identical UNKNOWN rows
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: preflight could not decide any check: ")
    assert "no AWS credentials found" in line
    assert "hint: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in line


def test_without_credentials_submit_shows_one_preflight_line_not_a_table(aws):
    env = {k: v for k, v in aws.env().items()
           if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = aws.cli("submit", *JOB, env=env)
    assert result.returncode == 1  # SubmitJob itself fails: preflight only advises
    first, last = result.stderr.splitlines()
    assert first.startswith("preflight: no check could be decided: ")
    assert "no AWS credentials found" in first and "│" not in result.stderr
    assert last.startswith("error: no AWS credentials found")


def test_cost_line_says_why_no_type_is_known(aws, deny):
    deny("ec2:DescribeInstanceTypes")
    code, found, out = report(aws)
    assert code == 0
    assert found["max vCPUs"]["message"] == "ec2:DescribeInstanceTypes was denied to the caller"
    result = aws.cli("preflight", *JOB)
    assert ("max cost: unknown (ec2:DescribeInstanceTypes was denied to the caller)"
            in result.stdout)


def test_without_credentials_preflight_json_still_prints_the_report(aws):
    env = {k: v for k, v in aws.env().items()
           if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    result = aws.cli("preflight", *JOB, "--json", env=env)
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert {c["status"] for c in out["checks"]} == {"UNKNOWN"}
    assert "no AWS credentials found" in out["estimate"]["note"]
    assert result.stderr.startswith("error: preflight could not decide any check: ")


def lustre_file_system(aws, capacity: int = 2400, throughput: int = 125) -> str:
    """A PERSISTENT_2 file system in moto, named in the stack outputs as an FSx stack does."""
    fsx = boto3.client("fsx", endpoint_url=aws.url, region_name="us-east-1")
    subnet = aws.ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    fs_id = fsx.create_file_system(
        FileSystemType="LUSTRE", StorageCapacity=capacity, SubnetIds=[subnet],
        LustreConfiguration={"DeploymentType": "PERSISTENT_2",
                             "PerUnitStorageThroughput": throughput},
    )["FileSystem"]["FileSystemId"]
    aws.write_outputs(fsx_file_system_id=fs_id, fsx_mount_path="/fsx")
    aws.start_recording()
    return fs_id


def test_fsx_stack_shows_the_file_systems_monthly_cost_beside_the_job(aws):
    fs_id = lustre_file_system(aws)
    result = aws.cli("preflight", *JOB, "--timeout", "3600", "--attempts", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("max cost: $4.08"))
    # 2400 GiB x $0.145 per GB-month (the seeded PERSISTENT_2 125 MB/s/TiB price)
    assert lines[at + 1] == (
        f"FSx for Lustre {fs_id}: $348.00/month = 2400 GiB x $0.1450/GB-month (PERSISTENT_2, "
        "125 MB/s/TiB), while the stack exists, beside the job's own cost")
    assert "fsx:describefilesystems" in aws.operations(preflight=True)
    code, _, out = report(aws, "--timeout", "3600")
    assert code == 0
    assert out["fsx"] == {"fileSystemId": fs_id, "storageCapacityGiB": 2400,
                          "deploymentType": "PERSISTENT_2", "perUnitStorageThroughput": 125,
                          "usdPerGibMonth": 0.145, "monthlyUsd": 348.0, "note": None}


def test_fsx_tier_without_a_price_says_so(aws):
    fs_id = lustre_file_system(aws, capacity=1200, throughput=1000)
    result = aws.cli("preflight", *JOB, "--timeout", "3600")
    assert result.returncode == 0, result.stderr
    assert (f"FSx for Lustre {fs_id}: 1200 GiB (PERSISTENT_2, 1000 MB/s/TiB): price unknown (the "
            "Price List API has no Persistent_2 1000 MB/s/TiB Lustre SSD price in us-east-1)"
            ) in result.stdout


def test_fsx_off_reads_no_file_system(aws):
    aws.write_outputs(fsx_file_system_id="", fsx_mount_path="")
    result = aws.cli("preflight", *JOB, "--timeout", "3600")
    assert result.returncode == 0, result.stderr
    assert "FSx" not in result.stdout
    assert aws.operations(preflight=True) == READS


def test_fsx_denied_is_named(aws, deny):
    fs_id = lustre_file_system(aws)
    deny("fsx:DescribeFileSystems")
    result = aws.cli("preflight", *JOB, "--timeout", "3600")
    assert result.returncode == 0, result.stderr
    assert (f"FSx for Lustre {fs_id}: monthly cost unknown (fsx:DescribeFileSystems was denied "
            "to the caller)") in result.stdout


def fallback_queues(aws) -> list[str]:
    """Two fallback queues as stacks/fallback.py makes them (one type each), in the outputs."""
    names = []
    for instance_type in ("c6i.4xlarge", "m5.large"):
        env = aws.create_environment(f"fallback-{instance_type.replace('.', '-')}", ZONE,
                                     (instance_type,))
        name = f"{moto_env.QUEUE}_{instance_type.replace('.', '-')}"
        aws.batch.create_job_queue(jobQueueName=name, state="ENABLED", priority=1,
                                   computeEnvironmentOrder=[{
                                       "order": 1,
                                       "computeEnvironment": env["computeEnvironmentArn"]}])
        names.append(name)
    aws.write_outputs(fallback_job_queue_names=names)
    moto_env.SEEDED_PRICES[("c6i.4xlarge", moto_env.REGION)] = 0.68
    aws.start_recording()
    return names


def test_fallback_queues_show_nodes_quota_headroom_and_price(aws):
    first, second = fallback_queues(aws)
    code, _, out = report(aws, "--timeout", "3600")
    assert code == 0
    # The job's 32 ranks (4 x 8) on each type, one rank per vCPU as the controller moves a run:
    # 2 x 16 vCPUs, 16 x 2 vCPUs. Nothing runs, so the headroom is the seeded quota of 256.
    assert out["fallbacks"] == [
        {"queue": first, "instanceType": "c6i.4xlarge", "nodes": 2, "vcpusPerNode": 16,
         "vcpus": 32, "quotaCode": STANDARD_QUOTA, "quotaVcpus": 256, "runningVcpus": 0,
         "headroomVcpus": 256, "hourlyUsd": 0.68, "notes": []},
        {"queue": second, "instanceType": "m5.large", "nodes": 16, "vcpusPerNode": 2,
         "vcpus": 32, "quotaCode": STANDARD_QUOTA, "quotaVcpus": 256, "runningVcpus": 0,
         "headroomVcpus": 256, "hourlyUsd": None,
         "notes": ["price unknown: the Price List API has no Linux on-demand price for "
                   "m5.large in us-east-1"]}]
    result = aws.cli("preflight", *JOB, "--timeout", "3600")
    assert result.returncode == 0, result.stderr
    assert (f"fallback {first}: 2 x c6i.4xlarge (32 vCPUs); quota {STANDARD_QUOTA} headroom 256 "
            "vCPUs (256 - 0 running): fits; $0.6800/h per node, $1.36/h in all"
            ) in result.stdout


def test_fallback_headroom_counts_running_instances(aws):
    first, _ = fallback_queues(aws)
    moto_env.SEEDED_QUOTAS[STANDARD_QUOTA] = 40.0
    aws.ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2,
                          InstanceType="c6i.2xlarge")
    _, _, out = report(aws)
    # 40 - 2 x 8 running = 24 < the 32 vCPUs two c6i.4xlarge take.
    assert out["fallbacks"][0]["headroomVcpus"] == 24
    result = aws.cli("preflight", *JOB)
    assert (f"fallback {first}: 2 x c6i.4xlarge (32 vCPUs); quota {STANDARD_QUOTA} headroom 24 "
            "vCPUs (40 - 16 running): EXCEEDS") in result.stdout


def test_a_missing_fallback_queue_is_named_not_fatal(aws):
    aws.write_outputs(fallback_job_queue_names=["gone"])
    code, _, out = report(aws)
    assert code == 0
    assert out["fallbacks"] == [{
        "queue": "gone", "instanceType": None, "nodes": None, "vcpusPerNode": None,
        "vcpus": None, "quotaCode": None, "quotaVcpus": None, "runningVcpus": None,
        "headroomVcpus": None, "hourlyUsd": None,
        "notes": ["--whole-node: job queue gone does not exist"]}]
