"""awsbsub against moto: the SubmitJob request its flags make, the node command run with bash,
and bad input refused with one line before any AWS call."""

from __future__ import annotations

import os
import subprocess

import pytest

from jobs.awsb.awsbsub import build_parser
from tests.jobs.moto_env import DEFINITION, QUEUE

SCRIPT = "#!/bin/bash\necho \"node $AWS_BATCH_JOB_NODE_INDEX in $PWD args $*\" > out.txt\n"


def submitted(aws) -> dict:
    (request,) = [r for r in aws.requests() if r.operation == "submitjob"]
    return request.body


def overrides(body: dict) -> dict:
    (override,) = body["nodeOverrides"]["nodePropertyOverrides"]
    assert override["targetNodes"] == "0:"
    return override["containerOverrides"]


def run_on_node(command: list[str], tmp_path, job_id: str = "4a1b-77#0") -> None:
    """What a rank does with the job's command (bash is the image's shell too)."""
    env = {"PATH": os.environ["PATH"], "AWS_BATCH_JOB_ID": job_id,
           "AWS_BATCH_JOB_NODE_INDEX": "0", "TMPDIR": str(tmp_path)}
    subprocess.run(command, env=env, cwd="/", check=True, timeout=30)


@pytest.mark.parametrize(("flag", "dest", "value"), [
    ("-jn", "job_name", "heat"), ("-cf", "command_file", True), ("-w", "working_dir", "/mnt/x"),
    ("-pw", "parent_working_dir", "/mnt/x"), ("-p", "vcpus", 4), ("-m", "memory", 4096),
    ("-e", "env", "A,B"), ("-r", "retry_attempts", 3), ("-t", "timeout", 600),
    ("-n", "nodes", 4), ("-d", "depends_on", "jobId=a1"), ("-c", "cluster", "mnp-batch"),
])
def test_parallelcluster_short_flags(flag, dest, value):
    argv = [flag] if value is True else [flag, str(value)]
    assert getattr(build_parser().parse_args([*argv, "cmd"]), dest) == value


def test_script_file_is_a_multi_node_job_and_runs_in_the_working_dir(awsb, aws, tmp_path):
    aws.write_outputs(efs_mount_path=str(tmp_path))
    (tmp_path / "script.sh").write_text(SCRIPT)
    result = awsb("awsbsub", "-n", "4", "-p", "8", "-m", "15000", "-jn", "heat", "-t", "600",
                  "-w", f"{tmp_path}/runs/a", "-cf", "script.sh", "x", "y z")
    assert result.code == 0, result.err
    body = submitted(aws)
    job_id = result.out.split()[1]
    assert result.out == f"Job {job_id} (heat) has been submitted.\n"
    assert aws.batch.describe_jobs(jobs=[job_id])["jobs"][0]["jobName"] == "heat"
    assert (body["jobName"], body["jobQueue"], body["jobDefinition"]) == ("heat", QUEUE,
                                                                         DEFINITION)
    assert body["nodeOverrides"]["numNodes"] == 4
    assert body["timeout"] == {"attemptDurationSeconds": 600}
    container = overrides(body)
    assert container["resourceRequirements"] == [{"type": "VCPU", "value": "8"},
                                                 {"type": "MEMORY", "value": "15000"}]
    assert container["environment"] == [{"name": "MNP_RANKS_PER_NODE", "value": "8"}]
    assert SCRIPT in container["command"]  # the script travels in the command, no S3
    run_on_node(container["command"], tmp_path)
    out = (tmp_path / "runs" / "a" / "out.txt").read_text()
    assert out == f"node 0 in {tmp_path}/runs/a args x y z\n"


def test_stdin_script_default_name_and_directory(awsb, aws, tmp_path):
    aws.write_outputs(efs_mount_path=str(tmp_path))
    result = awsb("awsbsub", "-n", "2", stdin="echo from-stdin > where.txt\n")
    assert result.code == 0, result.err
    assert result.out.endswith(" (STDIN) has been submitted.\n")
    body = submitted(aws)
    assert body["jobName"] == "STDIN"
    # -p/-m left out: the job definition's own VCPU and MEMORY.
    assert overrides(body)["resourceRequirements"] == [{"type": "VCPU", "value": "2"},
                                                      {"type": "MEMORY", "value": "2048"}]
    run_on_node(overrides(body)["command"], tmp_path)
    # PARENT/job-<parent id>: a node's `<id>#<i>` suffix is dropped so all nodes share it.
    assert (tmp_path / "job-4a1b-77" / "where.txt").read_text() == "from-stdin\n"


def test_command_with_arguments_and_dependencies(awsb, aws, tmp_path):
    aws.write_outputs(efs_mount_path=str(tmp_path))
    result = awsb("awsbsub", "-p", "2", "-m", "2048", "-pw", f"{tmp_path}/p", "-d",
                  "jobId=a1b2;jobId=c3d4,type=N_TO_N", "-r", "3", "touch", "made-here")
    assert result.code == 0, result.err
    body = submitted(aws)
    assert body["jobName"] == "touch"
    assert body["dependsOn"] == [{"jobId": "a1b2"}, {"jobId": "c3d4", "type": "N_TO_N"}]
    assert body["retryStrategy"]["attempts"] == 3
    run_on_node(overrides(body)["command"], tmp_path, job_id="e5f6")
    assert (tmp_path / "p" / "job-e5f6" / "made-here").exists()


def test_env_names_are_exported_and_forwarded_to_every_rank(awsb, aws, monkeypatch):
    monkeypatch.setenv("SOLVER_MODE", "fast")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    result = awsb("awsbsub", "-p", "2", "-m", "2048", "-e", "SOLVER_MODE,OMP_NUM_THREADS",
                  "--no-preflight", "true")
    assert result.code == 0, result.err
    assert overrides(submitted(aws))["environment"] == [
        {"name": "MNP_FORWARD_ENV", "value": "OMP_NUM_THREADS,SOLVER_MODE"},
        {"name": "MNP_RANKS_PER_NODE", "value": "2"},
        {"name": "OMP_NUM_THREADS", "value": "2"}, {"name": "SOLVER_MODE", "value": "fast"}]


BIG = "x" * (31 * 1024)


@pytest.mark.parametrize(("argv", "stdin", "message"), [
    (["-w", "/tmp/elsewhere", "true"], None, "--working-dir /tmp/elsewhere is not under the EFS"),
    (["-pw", "/home/me", "true"], None, "--parent-working-dir /home/me is not under the EFS"),
    (["-if", "data.csv", "true"], None, "--input-file data.csv: awsbsub does not upload files"),
    (["-a", "4", "true"], None, "--array-size 4: Batch does not run arrays"),
    (["-d", "job=a1", "true"], None, "--depends-on 'job=a1' is not jobId=ID"),
    (["-d", "jobId=a1,type=ALL", "true"], None, "--depends-on type 'ALL' is not one of"),
    (["-cf", "missing.sh"], None, "script missing.sh: FileNotFoundError"),
    (["-e", "NO_SUCH_VARIABLE", "true"], None, "--env NO_SUCH_VARIABLE: no such variable"),
    (["-e", "AWS_REGION", "true"], None, "--env AWS_REGION: names starting with PCLUSTER_"),
    (["-e", "A", "-eb", "B", "true"], None, "--env-blacklist can be used only with --env all"),
    (["-w", "/mnt/efs/a", "-pw", "/mnt/efs", "true"], None, "cannot be used together"),
    ([], None, "no command: give COMMAND"),
    ([], "  \n", "the script read from stdin is empty"),
    (["-n", "40", "-p", "8", "true"], None, "exceeds the compute environment's max_vcpus 64"),
    (["echo", BIG], None, "bytes; Batch accepts at most 30720"),
])
def test_bad_input_is_one_line_and_sends_nothing(awsb, aws, monkeypatch, argv, stdin, message):
    monkeypatch.setenv("A", "1")
    result = awsb("awsbsub", "-p", "2", "-m", "2048", *argv, stdin=stdin)
    assert result.code == 2
    assert result.out == ""
    (line,) = result.err.splitlines()
    assert line.startswith("awsbsub: error: ") and message in line
    assert aws.requests() == [] and aws.requests(preflight=True) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["-n", "0", "true"], "node count 0 is out of range"),
    (["-jn", "bad name", "true"], "job name 'bad name' is invalid"),
    (["-t", "30", "true"], "timeout (seconds) 30 is out of range"),
    (["-w", "relative/dir", "true"], "path 'relative/dir' is not absolute"),
])
def test_bad_flag_values_are_refused_by_the_parser(awsb, aws, argv, message):
    result = awsb("awsbsub", *argv)
    assert result.code == 2
    assert message in result.err.splitlines()[-1]
    assert aws.requests() == []


def test_console_scripts_run_as_processes(aws):
    """The pyproject entry points exist and exit with their main()'s code."""
    import sys
    import tomllib

    from tests.jobs.moto_env import REPO

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    awsb = {k: v for k, v in scripts.items() if k.startswith("awsb")}
    assert sorted(awsb) == ["awsbhosts", "awsbkill", "awsbout", "awsbqueues", "awsbstat",
                            "awsbsub"]
    module, _, function = awsb["awsbqueues"].partition(":")
    code = f"import sys; from {module} import {function}; sys.exit({function}())"
    ok = subprocess.run([sys.executable, "-c", code], env=aws.env(), capture_output=True,
                        text=True, timeout=60, cwd=aws.tmp_path)
    assert ok.returncode == 0 and QUEUE in ok.stdout, ok.stderr
    bad = subprocess.run([sys.executable, "-c", code, "no_such"], env=aws.env(),
                         capture_output=True, text=True, timeout=60, cwd=aws.tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("awsbqueues: error: no job queue")
