"""submit-scientific-job.sh: the recipe's flags, forwarded to `python -m jobs submit`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.jobs.moto_env import DATA_BUCKET, REPO

SCRIPT = str(REPO / "submit-scientific-job.sh")
RECIPE = ["--job-name", "heat-4n", "--nodes", "4", "--vcpus", "8", "--memory", "15000",
          "--input-path", "/mnt/efs/input", "--output-path", "/mnt/efs/runs"]


def run_script(aws, *args: str, env: dict[str, str] | None = None):
    return subprocess.run([SCRIPT, *args], cwd=aws.tmp_path, env=env or aws.env(),
                          capture_output=True, text=True, timeout=60)


def test_script_submits_what_the_cli_would(aws):
    dry = aws.cli("submit", *RECIPE, "--dry-run", "--", "python", "-m", "solver", "heat")
    result = run_script(aws, *RECIPE, "--", "python", "-m", "solver", "heat")
    assert result.returncode == 0, result.stderr
    requests = aws.requests()
    assert [r.operation for r in requests] == ["submitjob"]
    assert requests[0].body == json.loads(dry.stdout)
    assert result.stdout.strip() == aws.batch.list_jobs(
        jobQueue=requests[0].body["jobQueue"], jobStatus="SUCCEEDED")["jobSummaryList"][0]["jobId"]


def test_script_accepts_equals_form_and_passes_other_flags(aws):
    args = [a for a in RECIPE]
    args[0:2] = ["--job-name=heat-eq"]
    result = run_script(aws, *args, "--attempts", "2", "--dry-run")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["jobName"] == "heat-eq" and body["retryStrategy"]["attempts"] == 2
    assert aws.requests() == []


def test_script_requires_the_recipe_flags(aws):
    result = run_script(aws, "--job-name", "x", "--nodes", "2", "--memory", "100")
    assert result.returncode == 2
    assert "submit-scientific-job.sh: error: --vcpus is required" in result.stderr
    assert aws.requests() == []


def test_script_passes_validation_errors_through(aws):
    result = run_script(aws, *RECIPE[:-1], "/tmp/out")
    assert result.returncode == 2
    assert "--output-path /tmp/out is not under the EFS mount /mnt/efs" in result.stderr
    assert aws.requests() == []


def test_script_falls_back_to_python3(aws, tmp_path):
    """Outside the project venv (no .venv next to the script) it runs python3 from PATH."""
    copy = tmp_path / "submit-scientific-job.sh"
    copy.write_text((REPO / "submit-scientific-job.sh").read_text())
    copy.chmod(0o755)
    # `python3` on PATH is then the test's interpreter, which has boto3 and rich.
    env = aws.env(PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")
    result = subprocess.run([str(copy), *RECIPE, "--dry-run"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["jobName"] == "heat-4n"


def test_script_forwards_the_staging_flags(aws):
    source, target = f"s3://{DATA_BUCKET}/input/case1/", f"s3://{DATA_BUCKET}/output/"
    result = run_script(aws, *RECIPE, "--stage-in", source, f"--stage-out={target}",
                        "--no-preflight", "--json")
    assert result.returncode == 0, result.stderr
    stage, job = aws.requests()
    assert stage.body["containerOverrides"]["command"][:5] == [
        "python", "-m", "staging", "in", source]
    out = json.loads(result.stdout)
    assert job.body["dependsOn"] == [{"jobId": out["stageIn"]["jobId"]}]
    assert job.body["parameters"] == {"stageOut": target, "outputDir": "/mnt/efs/runs"}


def test_script_refuses_a_stage_out_outside_the_stack(aws):
    result = run_script(aws, *RECIPE, "--stage-out", "s3://elsewhere/out/")
    assert result.returncode == 2
    assert f"--stage-out s3://elsewhere/out/ is not below s3://{DATA_BUCKET}/output/" \
        in result.stderr
    assert aws.requests() == []
