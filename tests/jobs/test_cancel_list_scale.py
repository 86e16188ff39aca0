"""cancel, list and scale-test against moto."""

from __future__ import annotations

import json
import time

import pytest

from jobs.commands.scale import results, solver_summary
from jobs.context import Context
from jobs.outputs import Settings
from tests.jobs.moto_env import DEFINITION, QUEUE


def submit_raw(aws, name="heat", status="RUNNING") -> str:
    job_id = aws.batch.submit_job(jobName=name, jobQueue=QUEUE, jobDefinition=DEFINITION)["jobId"]
    aws.set_status(job_id, status)
    return job_id


def test_cancel_terminates_with_the_reason(aws):
    job_id = submit_raw(aws, status="RUNNABLE")
    aws.start_recording()
    result = aws.cli("cancel", job_id, "--reason", "wrong grid size")
    assert result.returncode == 0, result.stderr
    requests = aws.requests()
    assert [r.operation for r in requests] == ["describejobs", "terminatejob"]
    assert requests[1].body == {"jobId": job_id, "reason": "wrong grid size"}
    assert f"{job_id} terminating (was RUNNABLE): wrong grid size" in result.stdout


def test_cancel_default_reason(aws):
    job_id = submit_raw(aws)
    aws.start_recording()
    aws.cli("cancel", job_id)
    assert "with the jobs CLI" in aws.requests()[1].body["reason"]


def test_cancel_of_a_finished_job_sends_no_terminate(aws):
    job_id = submit_raw(aws, status="SUCCEEDED")
    aws.start_recording()
    result = aws.cli("cancel", job_id)
    assert result.returncode == 0
    assert "already SUCCEEDED; nothing to cancel" in result.stderr
    assert [r.operation for r in aws.requests()] == ["describejobs"]


def test_cancel_unknown_job(aws):
    result = aws.cli("cancel", "11111111-2222-3333-4444-555555555555")
    assert result.returncode == 1
    assert "no job 11111111-2222-3333-4444-555555555555" in result.stderr


def test_list_asks_for_every_status(aws):
    running = submit_raw(aws, "a-running", "RUNNING")
    time.sleep(0.01)  # distinct createdAt for the newest-first order
    failed = submit_raw(aws, "b-failed", "FAILED")
    aws.start_recording()
    result = aws.cli("list")
    assert result.returncode == 0, result.stderr
    bodies = [r.body for r in aws.requests()]
    assert [b["jobStatus"] for b in bodies] == [
        "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]
    assert all(b["jobQueue"] == QUEUE for b in bodies)
    cells = [[c.strip() for c in line.split("│")[1:-1]] for line in result.stdout.splitlines()
             if line.startswith("│")]
    assert [c[:3] for c in cells] == [[failed, "b-failed", "FAILED"],
                                      [running, "a-running", "RUNNING"]]  # newest first


def test_list_one_status_as_json(aws):
    submit_raw(aws, "a-running", "RUNNING")
    submit_raw(aws, "b-failed", "FAILED")
    aws.start_recording()
    result = aws.cli("list", "--status", "failed", "--json")
    assert [r.body["jobStatus"] for r in aws.requests()] == ["FAILED"]
    assert [j["jobName"] for j in json.loads(result.stdout)] == ["b-failed"]


def test_list_unknown_queue(aws):
    result = aws.cli("list", "--job-queue", "nope")
    assert result.returncode == 1
    assert "Job queue nope does not exist" in result.stderr


def test_scale_test_submits_one_job_per_count(aws):
    result = aws.cli("scale-test", "--nodes", "2,4,8", "--vcpus", "8", "--memory", "15000",
                     "--output-path", "/mnt/efs/scaling", "--", "python", "-m", "solver", "heat")
    assert result.returncode == 0, result.stderr
    bodies = [r.body for r in aws.requests()]
    assert [b["jobName"] for b in bodies] == ["scale-test-2n", "scale-test-4n", "scale-test-8n"]
    assert [b["nodeOverrides"]["numNodes"] for b in bodies] == [2, 4, 8]
    for body in bodies:
        override = body["nodeOverrides"]["nodePropertyOverrides"][0]["containerOverrides"]
        assert override["command"] == ["python", "-m", "solver", "heat"]
        assert {"name": "MNP_RANKS_PER_NODE", "value": "8"} in override["environment"]
        assert body["tags"]["scale-test"] == "scale-test"
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["2", "4", "8"]


def test_scale_test_wait_prints_a_table(aws):
    result = aws.cli("scale-test", "--nodes", "2,4", "--vcpus", "2", "--memory", "2048",
                     "--job-name", "weak", "--wait", "--interval", "0.1", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout[result.stdout.index("[") :])
    assert [(r["nodes"], r["status"]) for r in rows] == [(2, "SUCCEEDED"), (4, "SUCCEEDED")]
    # moto has no node jobs, hence no main-node log to read a solver summary from.
    assert [r["solverSeconds"] for r in rows] == [None, None]


def test_scale_results_use_the_solver_summary(aws, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    jobs = []
    for nodes, seconds, mlups in ((2, 10.0, 800.0), (4, 5.5, 1450.0)):
        job_id = submit_raw(aws, f"scale-{nodes}n", "SUCCEEDED")
        stream = aws.seed_nodes(job_id, ["SUCCEEDED"] * nodes)[0]
        aws.put_logs(stream, ["step 100", json.dumps(
            {"grid": [4097, 4097], "steps": 100, "ranks": nodes * 8, "seconds": seconds,
             "mlups": mlups}), "launcher: all ranks exited 0"])
        jobs.append((nodes, job_id))
    aws.start_recording()
    ctx = Context(Settings(str(aws.outputs_file)))
    entries = []
    for nodes, job_id in jobs:
        job = ctx.api.job(job_id)
        entries.append({"nodes": nodes, "jobId": job_id, "job": job,
                        "summary": solver_summary(ctx, job)})
    rows = results(entries)
    assert [(r["solverSeconds"], r["mlups"]) for r in rows] == [(10.0, 800.0), (5.5, 1450.0)]
    assert rows[0]["speedup"] == 1.0
    assert rows[1]["speedup"] == pytest.approx(10.0 / 5.5)
    reads = [r.body for r in aws.requests() if r.operation == "getlogevents"]
    assert [r["logStreamName"] for r in reads] == [f"mnp/default/{j}-0" for _, j in jobs]
    assert all(r["startFromHead"] is False and r["limit"] == 50 for r in reads)


def test_scale_test_with_image_tag_registers_once(aws):
    result = aws.cli("scale-test", "--nodes", "1,2", "--vcpus", "2", "--memory", "2048",
                     "--image-tag", "v2")
    assert result.returncode == 0, result.stderr
    ops = [r.operation for r in aws.requests()]
    assert ops.count("registerjobdefinition") == 1
    submits = [r.body for r in aws.requests() if r.operation == "submitjob"]
    assert all(b["jobDefinition"].endswith(f"{DEFINITION}:2") for b in submits)
