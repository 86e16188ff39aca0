"""logs: each node's CloudWatch stream, one node, --follow, and the log group's origin."""

from __future__ import annotations

import subprocess
import sys
import time

from tests.jobs.moto_env import DEFINITION, LOG_GROUP, QUEUE


def job_with_logs(aws, status="SUCCEEDED", nodes=2) -> tuple[str, list[str]]:
    job_id = aws.batch.submit_job(jobName="heat", jobQueue=QUEUE,
                                  jobDefinition=DEFINITION)["jobId"]
    aws.set_status(job_id, status)
    streams = aws.seed_nodes(job_id, [status] * nodes)
    for index, stream in enumerate(streams):
        aws.put_logs(stream, [f"node {index} line {n}" for n in range(3)])
    aws.start_recording()
    return job_id, streams


def test_logs_of_every_node(aws):
    job_id, streams = job_with_logs(aws)
    result = aws.cli("logs", job_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"[node {i}] node {i} line {n}" for i in range(2) for n in range(3)]
    reads = [r.body for r in aws.requests() if r.operation == "getlogevents"]
    assert {(r["logGroupName"], r["logStreamName"]) for r in reads} == {
        (LOG_GROUP, s) for s in streams}


def test_logs_of_one_node(aws):
    job_id, streams = job_with_logs(aws, nodes=3)
    result = aws.cli("logs", job_id, "--node", "2")
    assert result.stdout.splitlines() == [f"[node 2] node 2 line {n}" for n in range(3)]
    reads = {r.body["logStreamName"] for r in aws.requests() if r.operation == "getlogevents"}
    assert reads == {streams[2]}


def test_logs_of_a_node_job_id(aws):
    job_id, _ = job_with_logs(aws)
    result = aws.cli("logs", f"{job_id}#1")
    assert result.stdout.splitlines() == [f"node 1 line {n}" for n in range(3)]


def test_node_out_of_range(aws):
    job_id, _ = job_with_logs(aws)
    result = aws.cli("logs", job_id, "--node", "5")
    assert result.returncode == 2
    assert f"--node 5 is out of range: job {job_id} has 2 nodes (0..1)" in result.stderr


def test_log_group_flag_and_missing_stream(aws):
    job_id, streams = job_with_logs(aws)
    result = aws.cli("logs", job_id, "--log-group", "/aws/batch/job")
    assert result.returncode == 1
    assert f"log stream {streams[0]} not found in log group /aws/batch/job" in result.stderr
    assert "hint: check --log-group" in result.stderr


def test_log_group_from_job_definition_without_outputs(aws, tmp_path):
    job_id, _ = job_with_logs(aws)
    (tmp_path / "cdktf.json").write_text("{}")  # a project with no synthesized stack
    aws.outputs_file.unlink()
    env = aws.env()
    del env["JOBS_OUTPUTS_FILE"]
    result = aws.cli("logs", job_id, "--node", "0", env=env)
    assert result.returncode == 0, result.stderr
    assert "[node 0] node 0 line 0" in result.stdout


def test_node_without_stream_yet(aws):
    job_id = aws.batch.submit_job(jobName="heat", jobQueue=QUEUE,
                                  jobDefinition=DEFINITION)["jobId"]
    aws.set_status(job_id, "RUNNABLE")
    aws.seed_nodes(job_id, ["RUNNABLE"])
    aws.backend()._jobs[f"{job_id}#0"].describe = lambda: {
        "jobId": f"{job_id}#0", "status": "RUNNABLE", "jobName": "heat"}
    result = aws.cli("logs", job_id)
    assert result.returncode == 0
    assert f"no log stream yet for {job_id}#0 (status RUNNABLE)" in result.stderr


def _follow_until_polling(aws, job_id: str) -> subprocess.Popen:
    """Start `logs --follow` and return once it has polled the log stream twice."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs", "logs", job_id, "--follow", "--interval", "0.2"],
        cwd=aws.tmp_path, env=aws.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    deadline = time.monotonic() + 30
    while sum(r.operation == "getlogevents" for r in aws.requests()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return proc


def test_follow_prints_new_lines_until_the_job_ends(aws):
    job_id, streams = job_with_logs(aws, status="RUNNING", nodes=1)
    proc = _follow_until_polling(aws, job_id)
    aws.put_logs(streams[0], ["late line", '{"grid": [257, 257], "steps": 100}'])
    aws.set_status(job_id, "SUCCEEDED")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.splitlines() == [f"node 0 line {n}" for n in range(3)] + [
        "late line", '{"grid": [257, 257], "steps": 100}']


def test_follow_waits_for_a_stream_that_does_not_exist_yet(aws):
    job_id = aws.batch.submit_job(jobName="heat", jobQueue=QUEUE,
                                  jobDefinition=DEFINITION)["jobId"]
    aws.set_status(job_id, "RUNNING")
    stream = aws.seed_nodes(job_id, ["RUNNING"])[0]  # described, but no stream in Logs yet
    aws.start_recording()
    proc = _follow_until_polling(aws, job_id)
    aws.put_logs(stream, ["first line"])
    aws.set_status(job_id, "SUCCEEDED")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"waiting for log stream {stream}" in err
    assert out.splitlines() == ["first line"]
