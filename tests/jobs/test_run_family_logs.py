"""`logs` of a job of a run: each generation's main-node log in order, or one generation."""

from __future__ import annotations

from tests.jobs.test_run_family_status import three_generations


def seed_logs(aws, ids: list[str]) -> None:
    """Two nodes per member, each with its own lines (moto models no node jobs or logs)."""
    for generation, job_id in enumerate(ids, start=1):
        status = aws.batch.describe_jobs(jobs=[job_id])["jobs"][0]["status"]
        for index, stream in enumerate(aws.seed_nodes(job_id, [status] * 2)):
            aws.put_logs(stream, [f"g{generation} node {index} step {n}" for n in range(2)])


def test_logs_of_a_run_print_each_generations_main_node_in_order(aws):
    ids = three_generations(aws)
    seed_logs(aws, ids)
    for job_id in ids:  # any member names the whole run
        result = aws.cli("logs", job_id)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            f"[g{g}] [node 0] g{g} node 0 step {n}" for g in (1, 2, 3) for n in range(2)]


def test_logs_of_one_generation_print_every_node(aws):
    ids = three_generations(aws)
    seed_logs(aws, ids)
    result = aws.cli("logs", ids[0], "--generation", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"[node {i}] g2 node {i} step {n}" for i in range(2) for n in range(2)]
    one = aws.cli("logs", ids[0], "--generation", "3", "--node", "1")
    assert one.stdout.splitlines() == [f"[node 1] g3 node 1 step {n}" for n in range(2)]


def test_a_generation_the_run_does_not_have_exits_2(aws):
    ids = three_generations(aws)
    result = aws.cli("logs", ids[0], "--generation", "4")
    assert result.returncode == 2
    assert f"--generation 4: run {ids[0]} has generations 1, 2, 3" in result.stderr


def test_generation_of_a_plain_job_exits_2(aws):
    job_id = aws.batch.submit_job(jobName="plain", jobQueue="mnp-batch-mpi",
                                  jobDefinition="mnp-batch-mpi")["jobId"]
    result = aws.cli("logs", job_id, "--generation", "1")
    assert result.returncode == 2
    assert f"--generation 1: {job_id} is not part of a run" in result.stderr
