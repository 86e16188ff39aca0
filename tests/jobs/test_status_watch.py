"""status and watch: node jobs `<id>#i` seeded into moto, live progress, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.jobs.moto_env import DEFINITION, QUEUE


def submitted(aws, status="RUNNING", nodes=("RUNNING", "RUNNING"), codes=None) -> str:
    """A job submitted straight to moto, forced into `status`, with node jobs; recording reset."""
    job_id = aws.batch.submit_job(jobName="heat", jobQueue=QUEUE,
                                  jobDefinition=DEFINITION)["jobId"]
    aws.set_status(job_id, status)
    aws.seed_nodes(job_id, list(nodes), codes)
    aws.start_recording()
    return job_id


def test_status_shows_job_and_each_node(aws):
    job_id = submitted(aws, "FAILED", ("FAILED", "SUCCEEDED", "FAILED"), [4, 0, 137])
    aws.set_status(job_id, "FAILED", "Essential container in task exited")
    result = aws.cli("status", job_id)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "FAILED" in out and "Essential container in task exited" in out
    node_rows = [line for line in out.splitlines() if f"mnp/default/{job_id}-" in line]
    assert len(node_rows) == 3
    assert "0 (main)" in node_rows[0] and "FAILED" in node_rows[0] and " 4 " in node_rows[0]
    assert "SUCCEEDED" in node_rows[1] and " 0 " in node_rows[1]
    assert " 137 " in node_rows[2]
    ops = aws.requests()
    assert [r.operation for r in ops] == ["describejobs", "describejobs"]
    assert ops[0].body == {"jobs": [job_id]}
    assert ops[1].body == {"jobs": [f"{job_id}#0", f"{job_id}#1", f"{job_id}#2"]}


def test_status_json(aws):
    job_id = submitted(aws, "RUNNING", ("RUNNING", "STARTING"))
    result = aws.cli("status", job_id, "--json")
    data = json.loads(result.stdout)
    assert data["job"]["jobId"] == job_id
    assert [n["status"] for n in data["nodes"]] == ["RUNNING", "STARTING"]
    assert data["nodes"][0]["nodeDetails"] == {"nodeIndex": 0, "isMainNode": True}


def test_status_of_unknown_job(aws):
    result = aws.cli("status", "00000000-0000-0000-0000-000000000000")
    assert result.returncode == 1
    assert "no job 00000000-0000-0000-0000-000000000000 in us-east-1" in result.stderr
    assert "Traceback" not in result.stderr


def _watch(aws, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "jobs", "watch", *args, "--interval", "0.2"],
                            cwd=aws.tmp_path, env=aws.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_polls(aws, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if sum(r.operation == "describejobs" for r in aws.requests()) >= count:
            return
        time.sleep(0.05)
    raise AssertionError("watch never polled")


def test_watch_follows_progress_until_succeeded(aws):
    job_id = submitted(aws, "RUNNING", ("STARTING", "RUNNING"))
    proc = _watch(aws, job_id)
    _wait_for_polls(aws, 2)
    aws.backend()._jobs[f"{job_id}#0"].status = "RUNNING"
    _wait_for_polls(aws, 6)
    for index in (0, 1):
        aws.backend()._jobs[f"{job_id}#{index}"].status = "SUCCEEDED"
    aws.set_status(job_id, "SUCCEEDED")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    progress = [line.split(" ", 1)[1] for line in err.splitlines()]
    assert progress[0] == f"{job_id} RUNNING | nodes: 1 RUNNING, 1 STARTING"
    assert f"{job_id} RUNNING | nodes: 2 RUNNING" in progress
    assert progress[-1] == f"{job_id} SUCCEEDED | nodes: 2 SUCCEEDED"
    assert out.startswith(f"{job_id} SUCCEEDED")


def test_watch_exits_one_when_the_job_fails(aws):
    job_id = submitted(aws, "RUNNING")
    proc = _watch(aws, job_id)
    _wait_for_polls(aws, 2)
    aws.set_status(job_id, "FAILED", "Host EC2 (instance i-1) terminated.")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert f"{job_id} FAILED" in out and "Host EC2 (instance i-1) terminated." in out


def test_watch_gives_up_after_max_wait(aws):
    job_id = submitted(aws, "RUNNABLE", ())
    result = subprocess.run(
        [sys.executable, "-m", "jobs", "watch", job_id, "--interval", "0.1", "--max-wait", "0.5"],
        cwd=aws.tmp_path, env=aws.env(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"gave up after 0.5 s; still not finished: {job_id}" in result.stderr
    assert "terminatejob" not in [r.operation for r in aws.requests()]

