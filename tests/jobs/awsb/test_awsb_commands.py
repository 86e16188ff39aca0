"""awsbstat, awsbout, awsbkill, awsbqueues, awsbhosts against moto: ParallelCluster's shapes,
what was sent, and bad input."""

from __future__ import annotations

import json
import re

import boto3
import pytest

from tests.jobs.moto_env import DEFINITION, INSTANCE_TYPE, QUEUE, REGION, SPOT_QUEUE

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"


def submit(aws, name: str = "heat") -> str:
    return aws.batch.submit_job(jobName=name, jobQueue=QUEUE, jobDefinition=DEFINITION,
                                nodeOverrides={"numNodes": 2})["jobId"]


def one_error_line(result, prog: str, message: str, code: int = 2) -> None:
    assert result.code == code
    (line,) = result.err.splitlines()
    assert line.startswith(f"{prog}: error: ") and message in line, line


# --- awsbstat

def test_awsbstat_table_has_parallelclusters_columns(awsb, aws):
    job_id = submit(aws)
    aws.set_status(job_id, "RUNNING")
    aws.start_recording()
    result = awsb("awsbstat")
    assert result.code == 0, result.err
    header, dashes, row = result.out.splitlines()
    assert header.split() == ["jobId", "jobName", "status", "startedAt", "stoppedAt",
                              "exitCode"]
    assert set(dashes) == {"-", " "}
    assert row.split()[:3] == [job_id, "heat", "RUNNING"]
    # The active statuses, one ListJobs each, on the stack's queue.
    listed = [r.body for r in aws.requests() if r.operation == "listjobs"]
    assert [b["jobStatus"] for b in listed] == ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING",
                                                "RUNNING"]
    assert {b["jobQueue"] for b in listed} == {QUEUE}


def test_awsbstat_one_job_expands_its_nodes(awsb, aws):
    job_id = submit(aws)
    aws.seed_nodes(job_id, ["SUCCEEDED", "FAILED"], [0, 4])
    aws.set_status(job_id, "FAILED")
    result = awsb("awsbstat", job_id)
    assert result.code == 0, result.err
    rows = [line.split() for line in result.out.splitlines()[2:]]
    # ParallelCluster marks a multi-node parent `<id> *<nodes>`.
    assert rows[0][:4] == [job_id, "*2", "heat", "FAILED"]
    assert [(r[0], r[2], r[-1]) for r in rows[1:]] == [(f"{job_id}#0", "SUCCEEDED", "0"),
                                                       (f"{job_id}#1", "FAILED", "4")]


def test_awsbstat_details_of_a_node(awsb, aws):
    job_id = submit(aws)
    aws.seed_nodes(job_id, ["SUCCEEDED", "SUCCEEDED"], [0, 0])
    result = awsb("awsbstat", "-d", f"{job_id}#1")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == f"{'jobId':25}: {job_id}#1"
    keys = [line.split(":")[0].strip() for line in lines[:-1]]
    assert keys == ["jobId", "jobName", "createdAt", "startedAt", "stoppedAt", "status",
                    "statusReason", "jobDefinition", "jobQueue", "command", "exitCode",
                    "reason", "vcpus", "memory[MB]", "nodes", "logStream", "log"]
    assert f"{'logStream':25}: mnp/default/{job_id}-1" in lines
    assert re.fullmatch(rf"createdAt {{16}}: {ISO}", lines[2])
    assert lines[-1] == "-" * 25


@pytest.mark.parametrize(("argv", "message", "code"), [
    (["-s", "RUNNING,DONE"], "--status 'RUNNING,DONE': DONE is not a status", 2),
    (["0000-no-such-job"], "no job 0000-no-such-job in us-east-1", 1),
])
def test_awsbstat_bad_input(awsb, aws, argv, message, code):
    one_error_line(awsb("awsbstat", *argv), "awsbstat", message, code)


# --- awsbout

def test_awsbout_prints_the_main_nodes_log_with_times(awsb, aws):
    job_id = submit(aws)
    streams = aws.seed_nodes(job_id, ["SUCCEEDED", "SUCCEEDED"], [0, 0])
    aws.put_logs(streams[0], ["rank 0 starts", "rank 0 done"])
    aws.put_logs(streams[1], ["child"])
    result = awsb("awsbout", job_id)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["rank 0 starts", "rank 0 done"]
    assert all(re.match(rf"{ISO}: ", line) for line in lines)
    assert awsb("awsbout", "-hd", "1", job_id).out.endswith(": rank 0 starts\n")
    tail = awsb("awsbout", "-t", "1", f"{job_id}#1").out
    assert tail.count("\n") == 1 and tail.endswith(": child\n")


@pytest.mark.parametrize(("argv", "message"), [
    (["-hd", "1", "-t", "1"], "--tail and --head cannot be used together"),
    (["-hd", "1", "-s"], "--stream and --head cannot be used together"),
    (["-sp", "2"], "--stream-period can be used only with --stream"),
])
def test_awsbout_flag_conflicts(awsb, aws, argv, message):
    job_id = submit(aws)
    aws.start_recording()
    one_error_line(awsb("awsbout", *argv, job_id), "awsbout", message)
    assert aws.requests() == []


# --- awsbkill

def test_awsbkill_terminates_with_parallelclusters_messages(awsb, aws):
    queued, done = submit(aws, "a"), submit(aws, "b")
    aws.set_status(queued, "RUNNABLE")
    aws.set_status(done, "SUCCEEDED")
    aws.start_recording()
    result = awsb("awsbkill", queued, done)
    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        f"Your job cancellation request for job ({queued}) in status (RUNNABLE) has been "
        "submitted.", f"Job ({done}) is already in (SUCCEEDED) status."]
    (sent,) = [r.body for r in aws.requests() if r.operation == "terminatejob"]
    assert sent == {"jobId": queued, "reason": "Terminated by the user"}


@pytest.mark.parametrize(("ids", "message", "code"), [
    (["{job}", "0000-missing"], "Job (0000-missing) not found: nothing was terminated", 1),
    (["{job}#1"], "is one node of a multi-node job; kill the whole job", 2),
    (["not/an/id"], "job id 'not/an/id' is invalid", 2),
])
def test_awsbkill_refuses_before_terminating_anything(awsb, aws, ids, message, code):
    job_id = submit(aws)
    aws.start_recording()
    result = awsb("awsbkill", *(i.format(job=job_id) for i in ids))
    assert result.code == code
    assert message in result.err.splitlines()[-1]
    assert "terminatejob" not in [r.operation for r in aws.requests()]


def test_awsbkill_refuses_a_job_of_another_queue(awsb, aws):
    env = aws.batch.describe_compute_environments()["computeEnvironments"][0]
    aws.batch.create_job_queue(jobQueueName="other", state="ENABLED", priority=1,
                               computeEnvironmentOrder=[{
                                   "order": 1,
                                   "computeEnvironment": env["computeEnvironmentArn"]}])
    job_id = aws.batch.submit_job(jobName="x", jobQueue="other", jobDefinition=DEFINITION,
                                  nodeOverrides={"numNodes": 2})["jobId"]
    one_error_line(awsb("awsbkill", job_id), "awsbkill", "is a job of queue")


# --- awsbqueues

def test_awsbqueues_table_and_details(awsb, aws):
    result = awsb("awsbqueues")
    assert result.code == 0, result.err
    assert [line.split() for line in result.out.splitlines()] == [
        ["jobQueueName", "status"], ["-" * len(SPOT_QUEUE), "-" * len("status")],
        [QUEUE, "VALID"], [SPOT_QUEUE, "VALID"]]
    details = awsb("awsbqueues", QUEUE).out.splitlines()
    assert [line.split(":")[0].strip() for line in details[:-1]] == [
        "jobQueueArn", "jobQueueName", "priority", "status", "statusReason"]
    assert f"{'jobQueueName':25}: {QUEUE}" in details


def test_awsbqueues_unknown_queue(awsb, aws):
    one_error_line(awsb("awsbqueues", "nosuch"), "awsbqueues", "no job queue nosuch", 1)


# --- awsbhosts

def register_host(aws) -> tuple[str, str]:
    """An EC2 instance registered in the compute environment's ECS cluster, as Batch does."""
    env = aws.batch.describe_compute_environments()["computeEnvironments"][0]
    instance = aws.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                     InstanceType=INSTANCE_TYPE)["Instances"][0]
    ecs = boto3.client("ecs", endpoint_url=aws.url, region_name=REGION)
    ecs.register_container_instance(cluster=env["ecsClusterArn"], instanceIdentityDocument=(
        json.dumps({"instanceId": instance["InstanceId"], "instanceType": INSTANCE_TYPE})))
    aws.start_recording()
    return instance["InstanceId"], instance["PrivateIpAddress"]


def test_awsbhosts_lists_the_compute_environments_instances(awsb, aws):
    instance_id, address = register_host(aws)
    result = awsb("awsbhosts")
    assert result.code == 0, result.err
    header, _, row = result.out.splitlines()
    assert header.split() == ["ec2InstanceId", "instanceType", "privateIpAddress",
                              "publicIpAddress", "runningJobs"]
    assert row.split()[:3] == [instance_id, INSTANCE_TYPE, address]
    assert {"ecs:listcontainerinstances", "ecs:describecontainerinstances",
            "ec2:describeinstances"} <= set(aws.operations())
    details = awsb("awsbhosts", instance_id).out.splitlines()
    assert f"{'ec2InstanceId':25}: {instance_id}" in details
    assert f"{'registeredCPUs':25}: 4.0" in details


def test_awsbhosts_without_hosts_and_with_an_unknown_one(awsb, aws):
    result = awsb("awsbhosts")
    assert result.code == 0 and result.out.splitlines()[0].split()[0] == "ec2InstanceId"
    one_error_line(awsb("awsbhosts", "i-0123456789abcdef0"), "awsbhosts",
                   "instance i-0123456789abcdef0 is not a host", 1)
    bad = awsb("awsbhosts", "host-1")
    assert bad.code == 2 and "instance id 'host-1' is invalid" in bad.err
