"""`status` of a job of a run shows the whole chain, found the way the controller links it
(continuation/README.md, "How members are linked")."""

from __future__ import annotations

import json

from continuation.family import TAG_FAMILY, TAG_GENERATION, TAG_PREVIOUS, family_of
from tests.jobs.moto_env import DEFINITION, QUEUE

SUBMIT = ["submit", "--job-name", "heat-run", "--nodes", "4", "--vcpus", "8", "--memory",
          "15000", "--output-path", "/mnt/efs/runs", "--no-preflight", "--min-nodes", "2"]


def continue_run(aws, previous_id: str, nodes: int, reason: str) -> str:
    """Mark `previous_id` FAILED and submit its continuation as the controller does: the name
    and tags come from continuation/family.py itself."""
    aws.set_status(previous_id, "FAILED", reason)
    ids = [previous_id]
    while (prev := aws.batch.describe_jobs(jobs=[ids[-1]])["jobs"][0]["tags"].get(
            TAG_PREVIOUS)):
        ids.append(prev)
    family = family_of(aws.batch.describe_jobs(jobs=ids)["jobs"])
    generation = family.newest.generation + 1
    return aws.batch.submit_job(
        jobName=family.continuation_name(generation), jobQueue=QUEUE, jobDefinition=DEFINITION,
        nodeOverrides={"numNodes": nodes}, propagateTags=True,
        tags=family.tags_for(generation, family.newest))["jobId"]


def three_generations(aws) -> list[str]:
    first = aws.cli(*SUBMIT)
    assert first.returncode == 0, first.stderr
    first_id = first.stdout.strip()
    second = continue_run(aws, first_id, 3, "Essential container in task exited")
    third = continue_run(aws, second, 2, "Essential container in task exited")
    return [first_id, second, third]


def test_status_of_any_member_shows_every_generation(aws):
    ids = three_generations(aws)
    for job_id in (ids[0], ids[2]):  # forward by name from the first, back from the newest
        result = aws.cli("status", job_id, "--json")
        assert result.returncode == 0, result.stderr
        family = json.loads(result.stdout)["family"]
        assert family["id"] == ids[0]
        assert family["minNodes"] == 2
        assert [(m["generation"], m["jobId"], m["jobName"], m["status"])
                for m in family["members"]] == [
            (1, ids[0], "heat-run", "FAILED"), (2, ids[1], "heat-run-g2", "FAILED"),
            (3, ids[2], "heat-run-g3", aws.batch.describe_jobs(jobs=[ids[2]])["jobs"][0][
                "status"])]
        assert [m["reason"] for m in family["members"][:2]] == [
            "Essential container in task exited"] * 2


def test_status_table_names_the_run(aws):
    ids = three_generations(aws)
    result = aws.cli("status", ids[1])
    assert result.returncode == 0, result.stderr
    assert f"run {ids[0]}: 2+ nodes, at most 10 jobs" in result.stdout
    for job_id in ids:
        assert job_id in result.stdout


def test_a_job_of_another_run_with_the_same_name_is_not_a_member(aws):
    ids = three_generations(aws)
    stranger = aws.batch.submit_job(jobName="heat-run-g2", jobQueue=QUEUE,
                                    jobDefinition=DEFINITION, tags={TAG_FAMILY: "someone-else",
                                                                    TAG_GENERATION: "2"})
    result = aws.cli("status", ids[0], "--json")
    members = [m["jobId"] for m in json.loads(result.stdout)["family"]["members"]]
    assert stranger["jobId"] not in members
    assert members == ids


def test_a_plain_job_has_no_family(aws):
    plain = aws.cli(*SUBMIT[:-2])
    result = aws.cli("status", plain.stdout.strip(), "--json")
    assert result.returncode == 0, result.stderr
    assert "family" not in json.loads(result.stdout)


def test_watch_follows_a_run_through_its_continuations(aws):
    ids = three_generations(aws)
    aws.set_status(ids[2], "SUCCEEDED")
    result = aws.cli("watch", ids[0], "--interval", "0.1", "--max-wait", "30")
    assert result.returncode == 0, result.stderr
    assert f"{ids[0]} continued as {ids[1]} (generation 2, " in result.stderr
    assert f"{ids[1]} continued as {ids[2]} (generation 3, " in result.stderr
    assert f"{ids[2]} SUCCEEDED" in result.stdout


def test_watch_of_a_run_whose_newest_member_failed_exits_1(aws):
    ids = three_generations(aws)
    aws.set_status(ids[2], "FAILED", "Essential container in task exited")
    result = aws.cli("watch", ids[1], "--interval", "0.1", "--max-wait", "30")
    assert result.returncode == 1
    assert f"{ids[2]} FAILED" in result.stdout
