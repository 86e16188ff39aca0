"""`submit --min-nodes`: the first job of a run carries the tags continuation/family.py reads,
and bad bounds exit 2 before anything is sent."""

from __future__ import annotations

import json

import pytest

from continuation import family as run
from continuation.apply import continuation_request
from continuation.decide import Action, QueueSpec, decide
from tests.jobs.moto_env import DATA_BUCKET, QUEUE

BASE = ["submit", "--job-name", "heat-run", "--nodes", "4", "--vcpus", "8", "--memory", "15000",
        "--output-path", "/mnt/efs/runs", "--no-preflight"]


def test_min_nodes_tags_the_first_job_as_the_controller_reads_them(aws):
    result = aws.cli(*BASE, "--min-nodes", "2", "--max-generations", "5",
                     "--runnable-deadline", "900", "--json", "--", "python", "-m", "solver",
                     "heat")
    assert result.returncode == 0, result.stderr
    body = aws.requests()[0].body
    assert body["tags"] == {"submitted-by": "mnp-batch-jobs-cli", run.TAG_MIN_NODES: "2",
                            run.TAG_MAX_GENERATIONS: "5", run.TAG_RUNNABLE_DEADLINE: "900"}
    job_id = json.loads(result.stdout)["jobId"]
    described = aws.batch.describe_jobs(jobs=[job_id])["jobs"][0]
    # What the controller will read back from Batch: a managed run of one member whose
    # checkpoints are the first job's own default directory (continuation/README.md).
    assert run.is_managed(described)
    family = run.family_of([described])
    assert (family.id, family.min_nodes, family.max_generations,
            family.runnable_deadline_s) == (job_id, 2, 5, 900)
    # Tagged after SubmitJob (the id is Batch's), so it does not hang on whether Batch's
    # description shows the nodeOverrides' OUTPUT_PATH: moto's does not.
    assert family.checkpoint_dir == f"/mnt/efs/runs/{job_id}/checkpoints"
    tagging = aws.requests()[1]  # TagResource is POST /v1/tags/<job ARN>
    assert "/v1/tags/" in tagging.url and tagging.body == {
        "tags": {run.TAG_CHECKPOINT: f"/mnt/efs/runs/{job_id}/checkpoints"}}
    assert json.loads(result.stdout)["family"] == {
        "id": job_id, "minNodes": 2, "maxGenerations": 5, "runnableDeadlineSeconds": 900,
        "checkpointDir": f"/mnt/efs/runs/{job_id}/checkpoints"}


def test_defaults_are_the_controllers_own(aws):
    result = aws.cli(*BASE, "--min-nodes", "4")
    assert result.returncode == 0, result.stderr
    tags = aws.requests()[0].body["tags"]
    assert tags[run.TAG_MAX_GENERATIONS] == str(run.DEFAULT_MAX_GENERATIONS)
    assert tags[run.TAG_RUNNABLE_DEADLINE] == str(run.DEFAULT_RUNNABLE_DEADLINE_S)
    assert "continues on 4..4 nodes" in result.stderr


def test_without_min_nodes_no_run_tags(aws):
    result = aws.cli(*BASE)
    assert result.returncode == 0, result.stderr
    assert not any(k.startswith("mnp:") for k in aws.requests()[0].body["tags"])


@pytest.mark.parametrize(("extra", "message"), [
    (["--min-nodes", "0"], "--min-nodes 0 is out of range: must be between 1 and 1000"),
    (["--min-nodes", "5"], "--min-nodes 5 is out of range: must be between 1 and --nodes (4)"),
    (["--min-nodes", "x"], "--min-nodes 'x' is not a whole number"),
    (["--max-generations", "3"], "--max-generations bound a run: add --min-nodes N"),
    (["--min-nodes", "2", "--max-generations", "0"],
     "--max-generations 0 is out of range: must be between 1 and 1000"),
    (["--min-nodes", "2", "--runnable-deadline", "60"],
     "--runnable-deadline (seconds) 60 is out of range: must be between 300 and 86400"),
    (["--min-nodes", "2", "--", "python", "-m", "solver", "heat", "--checkpoint-dir=/x"],
     "drop --checkpoint-dir from the command"),
])
def test_bad_run_bounds_exit_2_and_send_nothing(aws, extra, message):
    result = aws.cli(*BASE, *extra)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert aws.requests() == []


def test_min_nodes_needs_an_output_path(aws):
    argv = [a for a in BASE if a not in ("--output-path", "/mnt/efs/runs")]
    result = aws.cli(*argv, "--min-nodes", "2")
    assert result.returncode == 2
    assert "--min-nodes needs --output-path" in result.stderr
    assert aws.requests() == []


def test_a_run_with_stage_out_hands_its_location_to_every_continuation(aws):
    """Each member's terminal-state event stages out its own folder (stacks/stage_out.py
    reads `parameters`), so the controller's SubmitJob must carry the first job's."""
    result = aws.cli(*BASE, "--min-nodes", "1", "--stage-out", f"s3://{DATA_BUCKET}/output/",
                     "--json")
    assert result.returncode == 0, result.stderr
    job_id = json.loads(result.stdout)["jobId"]
    aws.set_status(job_id, "FAILED", "Host EC2 (instance i-0a1b2c3d4e5f60718) terminated.")
    described = aws.batch.describe_jobs(jobs=[job_id])["jobs"][0]
    assert described["parameters"] == {"stageOut": f"s3://{DATA_BUCKET}/output/",
                                       "outputDir": "/mnt/efs/runs"}
    family = run.family_of([described])
    queues = [QueueSpec(QUEUE, slots=8, vcpus=8, memory_mib=15000)]
    decision = decide(family, queues, now_ms=0)
    # one node fewer than Batch describes (moto's description keeps the definition's count)
    assert (decision.action, decision.nodes) == (Action.CONTINUE,
                                                 family.newest.num_nodes - 1), decision.reason
    assert continuation_request(family, decision, queues)["parameters"] == \
        described["parameters"]
