"""Every bad input exits 2 with a message naming the value and the limit, and sends nothing."""

from __future__ import annotations

import pytest

from tests.jobs.moto_env import MAX_VCPUS
from tests.launcher.test_settings import FOUND_IN_ISSUE_24

SUBMIT = ["submit", "--job-name", "heat", "--nodes", "2", "--vcpus", "4", "--memory", "4096"]


def _replace(argv: list[str], flag: str, value: str) -> list[str]:
    """SUBMIT with one flag's value changed (or added)."""
    argv = list(argv)
    if flag in argv:
        argv[argv.index(flag) + 1] = value
        return argv
    return [*argv, flag, value]


BAD_SUBMIT = [
    ("--job-name", "heat run", "job name 'heat run' is invalid"),
    ("--job-name", "_heat", "starting with a letter or digit"),
    ("--job-name", "h" * 129, "is 129 characters; the limit is 128"),
    ("--nodes", "0", "node count 0 is out of range: must be between 1 and 1000"),
    ("--nodes", "1001", "node count 1001 is out of range: must be between 1 and 1000"),
    ("--nodes", "two", "node count 'two' is not a whole number"),
    ("--vcpus", "0", "vCPUs per node 0 is out of range: must be between 1 and 896"),
    ("--vcpus", "2.5", "vCPUs per node '2.5' is not a whole number"),
    ("--memory", "3", "memory per node (MiB) 3 is out of range: must be between 4 and 33554432"),
    ("--memory", "-100", "memory per node (MiB) -100 is out of range"),
    ("--input-path", "data/in", "path 'data/in' is not absolute"),
    ("--output-path", "/tmp/out", "--output-path /tmp/out is not under the EFS mount /mnt/efs"),
    ("--input-path", "/mnt/efs/../etc", "--input-path /mnt/etc is not under the EFS mount"),
    ("--output-path", "/mnt/efsx/out", "--output-path /mnt/efsx/out is not under the EFS mount"),
    ("--attempts", "0", "attempts 0 is out of range: must be between 1 and 10"),
    ("--attempts", "11", "attempts 11 is out of range: must be between 1 and 10"),
    ("--timeout", "59", "timeout (seconds) 59 is out of range: must be between 60 and "
     "2147483647"),
    ("--image-tag", ".hidden", "image tag '.hidden' is invalid"),
    ("--image-tag", "v1:latest", "image tag 'v1:latest' is invalid"),
    ("--tag", "owner", "tag 'owner' is not KEY=VALUE"),
    ("--tag", "aws:owner=me", "the 'aws:' prefix is reserved"),
    ("--env", "MNP_PRECHECK", "--env 'MNP_PRECHECK' is not NAME=VALUE"),
    ("--env", "1X=a", "--env '1X=a' is not NAME=VALUE with a NAME of letters"),
    ("--env", "AWS_BATCH_JOB_ID=x", "--env AWS_BATCH_JOB_ID: names starting with AWS_BATCH"),
    ("--env", "OUTPUT_PATH=/tmp", "--env OUTPUT_PATH: set it with --output-path"),
    ("--env", "MNP_RENDEZVOUS_SECRET=" + "s" * 20, "--env MNP_RENDEZVOUS_SECRET: every node "
     "reads it from the stack's Secrets Manager secret"),
    ("--env", "MNP_CHECKPOINT_KEY=" + "k" * 20, "--env MNP_CHECKPOINT_KEY: the launcher derives "
     "each job's own from the stack's secret"),
    ("--env", "MNP_RUN_AS=0:0", "--env: MNP_RUN_AS='0:0': root: the job's programs would hold "
     "the stack's secret"),
    # the launcher's own parser: refused here, not on the nodes after the allocation
    ("--env", "MNP_NETWORK=infiniband", "--env: MNP_NETWORK='infiniband': unknown value; "
     "allowed: one of tcp, ofi-tcp, efa"),
    ("--env", "MNP_PRECHECK=yes", "--env: MNP_PRECHECK='yes': unknown value; allowed: 0 or 1"),
    ("--env", "MNP_RANKS_PER_NODE=0", "--env: MNP_RANKS_PER_NODE='0': out of range; allowed: "
     "a whole number from 1 to 896"),
    ("--env", "MNP_RENDEZVOUS_TIMEOUT=soon", "--env: MNP_RENDEZVOUS_TIMEOUT='soon': not a "
     "number"),
    ("--env", "MNP_MPIEXEC_ARGS=--map-by 'ppr:1", "--env: MNP_MPIEXEC_ARGS=\"--map-by 'ppr:1\": "
     "No closing quotation"),
    # The values of issue 24 that the nodes refused only after the allocation, or not at all
    # (node settings: tests/launcher/test_settings.py).
    *(("--env", f"{name}={value}", f"--env: {name}={value!r}: {why}")
      for name, value, why in FOUND_IN_ISSUE_24),
    ("--interval", "0", "'0' must be more than 0 seconds"),
    ("--nodes", "9", f"--nodes 9 x --vcpus 8 = 72 vCPUs exceeds the compute environment's "
                     f"max_vcpus {MAX_VCPUS}"),
]


@pytest.mark.parametrize(("flag", "value", "message"), BAD_SUBMIT,
                         ids=[f"{f}={v[:12]}" for f, v, _ in BAD_SUBMIT])
def test_submit_rejects_bad_value(aws, run_main, flag, value, message):
    argv = _replace(SUBMIT, flag, value)
    if flag == "--nodes" and value == "9":
        argv = _replace(argv, "--vcpus", "8")
    result = run_main(*argv)
    assert result.code == 2, result.err
    assert message in result.err
    assert result.out == ""
    assert aws.requests() == []


def test_max_vcpus_comes_from_the_stack_output_not_synths_env(aws, run_main, monkeypatch):
    # issue 20: MAX_VCPUS sets synth's default; it used to override the deployed stack here.
    monkeypatch.setenv("MAX_VCPUS", "4096")
    aws.write_outputs(max_vcpus=16)
    result = run_main(*_replace(SUBMIT, "--vcpus", "16"))
    assert result.code == 2
    assert "= 32 vCPUs exceeds the compute environment's max_vcpus 16" in result.err
    assert aws.requests() == []


def test_mount_path_comes_from_stack_output(aws, run_main):
    aws.write_outputs(efs_mount_path="/shared")
    result = run_main(*SUBMIT, "--output-path", "/mnt/efs/runs")
    assert result.code == 2
    assert "--output-path /mnt/efs/runs is not under the EFS mount /shared" in result.err
    assert aws.requests() == []


def test_too_many_tags(aws, run_main):
    tags = [x for i in range(50) for x in ("--tag", f"k{i}=v")]
    result = run_main(*SUBMIT, *tags)
    assert result.code == 2
    assert ("50 distinct --tag keys plus 1 added by the CLI (submitted-by) exceed Batch's limit "
            "of 50 tags per job") in result.err
    assert aws.requests() == []


def test_missing_required_flag(aws, run_main):
    result = run_main("submit", "--job-name", "heat", "--nodes", "2", "--vcpus", "4")
    assert result.code == 2
    assert "the following arguments are required: --memory" in result.err
    assert aws.requests() == []


def test_no_queue_anywhere(aws, run_main, monkeypatch, tmp_path):
    (tmp_path / "empty.json").write_text('{"mnp-batch": {"max_vcpus": 64}}')
    monkeypatch.setenv("JOBS_OUTPUTS_FILE", str(tmp_path / "empty.json"))
    result = run_main(*SUBMIT)
    assert result.code == 2
    assert "no job queue name: pass --job-queue, set JOB_QUEUE_NAME" in result.err
    assert aws.requests() == []


def test_empty_command_after_double_dash(aws, run_main):
    result = run_main(*SUBMIT, "--")
    assert result.code == 2
    assert "nothing after '--'" in result.err
    assert aws.requests() == []


def test_command_only_for_submit(aws, run_main):
    result = run_main("list", "--", "echo")
    assert result.code == 2
    assert "'-- COMMAND' is only accepted by submit, preflight, scale-test, run-local" in result.err


SCALE = ["scale-test", "--vcpus", "8", "--memory", "4096"]


@pytest.mark.parametrize(("nodes", "message"), [
    ("2,x", "node count 'x' is not a whole number"),
    ("2,0", "node count 0 is out of range"),
    (",", "node list ',' is empty"),
    ("4,16", "--nodes 16 x --vcpus 8 = 128 vCPUs exceeds the compute environment's "
             "max_vcpus 64"),
])
def test_scale_test_checks_every_count_before_submitting(aws, run_main, nodes, message):
    result = run_main(*SCALE, "--nodes", nodes)
    assert result.code == 2
    assert message in result.err
    assert aws.requests() == []  # not even the counts that fit were submitted


@pytest.mark.parametrize(("argv", "message"), [
    (["status", "not a job"], "job id 'not a job' is invalid"),
    (["watch", "abc", "--max-wait", "-1"], "'-1' must be more than 0 seconds"),
    (["logs", "abc", "--node", "-1"], "node index -1 is out of range: must be between 0 and 999"),
    (["logs", "abc", "--node", "1000"], "node index 1000 is out of range"),
    (["cancel", "abc", "--reason", " "], "--reason is empty; Batch requires a reason"),
    (["cancel", "abc#1"], "abc#1 is one node of a multi-node job; cancel the whole job: abc"),
    (["list", "--status", "DONE"], "argument --status: invalid choice: 'DONE'"),
])
def test_other_commands_reject_bad_input(aws, run_main, argv, message):
    result = run_main(*argv)
    assert result.code == 2, result.err
    assert message in result.err
    assert aws.requests() == []


def test_bad_input_exit_code_from_a_real_process(aws):
    result = aws.process(*_replace(SUBMIT, "--nodes", "1001"))
    assert result.returncode == 2
    assert "node count 1001 is out of range" in result.stderr
    assert "Traceback" not in result.stderr
    assert aws.requests() == []


def test_dry_run_with_image_tag_registers_nothing(aws, run_main):
    result = run_main(*SUBMIT, "--image-tag", "v2", "--dry-run")
    assert result.code == 0
    assert "--image-tag v2 would first register a revision of mnp-batch-mpi" in result.err
    assert aws.requests() == []
