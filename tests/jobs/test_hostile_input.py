"""Hostile and broken input (issue 16): each class is refused with exit 2 and nothing sent, or,
for outside text, shown exactly as it is."""

from __future__ import annotations

import json

import pytest

from tests.jobs.moto_env import DEFINITION, QUEUE
from tests.jobs.test_outputs import synthesized_project
from tests.jobs.test_validation import SUBMIT, _replace

# --- outside text is plain text, never rich markup or emoji codes ----------------------------

REASONS = ["[/x] wrong grid", "[red]grid[/red]", "[bold]x", "[/]", "a [link=file:///etc]b[/link]",
           ":smile: grid", "[[double]]", "\\[escaped]"]


@pytest.mark.parametrize("reason", REASONS)
def test_cancel_sends_and_shows_the_reason_verbatim(aws, run_main, reason):
    job_id = aws.batch.submit_job(jobName="heat", jobQueue=QUEUE,
                                  jobDefinition=DEFINITION)["jobId"]
    aws.set_status(job_id, "RUNNABLE")
    aws.start_recording()
    result = run_main("cancel", job_id, "--reason", reason)
    assert result.code == 0, result.err
    assert [r.body for r in aws.requests() if r.operation == "terminatejob"] == [
        {"jobId": job_id, "reason": reason}]
    assert f"{job_id} terminating (was RUNNABLE): {reason}\n" in result.out


@pytest.mark.parametrize("reason", REASONS)
def test_status_list_and_watch_show_aws_text_verbatim(aws, run_main, reason):
    job_id = aws.batch.submit_job(jobName="heat", jobQueue=QUEUE,
                                  jobDefinition=DEFINITION)["jobId"]
    aws.set_status(job_id, "FAILED", reason)
    for argv in (["status", job_id], ["list"], ["watch", job_id, "--interval", "0.1"]):
        result = run_main(*argv)
        assert result.code in (0, 1), result.err  # watch of a FAILED job exits 1
        assert "Error" not in result.err, result.err
        assert reason in result.out + result.err, argv


# --- patterns match the whole value (`$` also matches before a trailing newline) -------------

@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--job-name", "heat\n", "job name 'heat\\n' is invalid"),
    ("--job-name", "heat\r", "job name 'heat\\r' is invalid"),
    ("--image-tag", "v1\n", "image tag 'v1\\n' is invalid"),
    ("--job-queue", "q\n", "job queue 'q\\n' is invalid"),
    ("--job-definition", "d\n", "job definition 'd\\n' is invalid"),
])
def test_a_trailing_newline_is_refused(aws, run_main, flag, value, message):
    result = run_main(*_replace(SUBMIT, flag, value))
    assert result.code == 2 and message in result.err, result.err
    assert aws.requests() == []


@pytest.mark.parametrize("argv", [["status", "abc\n"], ["cancel", "abc#1\n"],
                                  ["logs", "abc\n"], ["watch", "abc:1\n"]])
def test_a_job_id_with_a_trailing_newline_is_refused(aws, run_main, argv):
    result = run_main(*argv)
    assert result.code == 2 and "is invalid: expected a Batch job id" in result.err
    assert aws.requests() == []


# --- queue and job definition names are checked wherever they come from ----------------------

BAD_QUEUES = ["my queue", "[/x]", "-queue", "q" * 129, "arn:aws:batch:us-east-1:12:job-queue/q"]
BAD_DEFINITIONS = ["[/x]", "def:0", "def:x", "my def", "def:1:2"]


@pytest.mark.parametrize("value", BAD_QUEUES)
@pytest.mark.parametrize("source", ["flag", "env", "output"])
def test_a_bad_queue_name_is_refused(aws, run_main, monkeypatch, value, source):
    argv = list(SUBMIT)
    if source == "flag":
        argv += [f"--job-queue={value}"]
    elif source == "env":
        monkeypatch.setenv("JOB_QUEUE_NAME", value)
    else:
        aws.write_outputs(job_queue_name=value)
    for command in (argv, ["list"] + (argv[-1:] if source == "flag" else [])):
        result = run_main(*command)
        assert result.code == 2, result.err
        assert f"job queue {value!r} is invalid" in result.err
        assert {"flag": "--job-queue", "env": "JOB_QUEUE_NAME",
                "output": "stack output job_queue_name"}[source] in result.err
    assert aws.requests() == []


@pytest.mark.parametrize("value", BAD_DEFINITIONS)
def test_a_bad_job_definition_name_is_refused_before_registering(aws, run_main, monkeypatch,
                                                                  value):
    monkeypatch.setenv("JOB_DEFINITION_NAME", value)
    result = run_main(*SUBMIT, "--image-tag", "v2")
    assert result.code == 2, result.err
    assert f"job definition {value!r} is invalid" in result.err
    assert aws.requests() == []


@pytest.mark.parametrize("value", [
    QUEUE, f"arn:aws:batch:us-east-1:123456789012:job-queue/{QUEUE}"])
def test_queue_names_and_arns_pass(aws, run_main, value):
    result = run_main(*SUBMIT, "--job-queue", value, "--dry-run")
    assert result.code == 0, result.err
    assert json.loads(result.out)["jobQueue"] == value


# --- the job's command ------------------------------------------------------------------------

@pytest.mark.parametrize(("command", "message"), [
    ([""], "the job's command starts with ''"),
    (["  "], "the job's command starts with '  '"),
    (["", "python"], "the first word after '--' must name a program"),
    (["python", "a\0b"], "contains a NUL character"),
    ([], "nothing after '--'"),
])
def test_an_empty_program_is_refused(aws, run_main, command, message):
    for base in (SUBMIT, ["scale-test", "--nodes", "2", "--vcpus", "4", "--memory", "4096"]):
        result = run_main(*base, "--", *command)
        assert result.code == 2 and message in result.err, result.err
    assert aws.requests() == []


# --- tags: one value per key, within Batch's 50, the CLI's own keys protected -----------------

def test_repeated_identical_tags_count_once(aws, run_main):
    result = run_main(*SUBMIT, *["--tag", "k=v"] * 50, "--tag", "j=w", "--dry-run")
    assert result.code == 0, result.err
    assert json.loads(result.out)["tags"] == {"submitted-by": "mnp-batch-jobs-cli",
                                              "k": "v", "j": "w"}


@pytest.mark.parametrize(("command", "tags", "message"), [
    (SUBMIT, ["submitted-by=me"], "the CLI sets the tag submitted-by=mnp-batch-jobs-cli itself"),
    (["scale-test", "--nodes", "2", "--vcpus", "4", "--memory", "4096"], ["scale-test=x"],
     "the CLI sets the tag scale-test=scale-test itself"),
    (SUBMIT, ["k=a", "k=b"], "--tag k is given twice with different values ('a' and 'b')"),
    (SUBMIT, [f"k{i}=v" for i in range(49)] + ["k0=v"] * 5, None),  # 49 + 1: at the limit
    (SUBMIT, [f"k{i}=v" for i in range(50)], "50 distinct --tag keys plus 1"),
])
def test_tag_conflicts_and_limits(aws, run_main, command, tags, message):
    argv = [*command, *[x for t in tags for x in ("--tag", t)], "--dry-run"]
    result = run_main(*argv)
    if message is None:
        assert result.code == 0, result.err
        return
    assert result.code == 2 and message in result.err, result.err
    assert aws.requests() == []


# --- numbers: ASCII digits only, and bounded by what a node can have --------------------------

@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--memory", "99999999999999999999999", "must be between 4 and 33554432"),
    ("--memory", "33554433", "must be between 4 and 33554432"),
    ("--vcpus", "897", "vCPUs per node 897 is out of range: must be between 1 and 896"),
    ("--vcpus", "10" * 20, "is out of range"),
    ("--nodes", "\u0668", "node count '\u0668' is not a whole number"),
    ("--nodes", "\uff18", "is not a whole number"),
    ("--nodes", "1_0", "node count '1_0' is not a whole number"),
    ("--nodes", "+8", "node count '+8' is not a whole number"),
    ("--nodes", " 8", "node count ' 8' is not a whole number"),
    ("--memory", "4096\n", "is not a whole number"),
    ("--attempts", "\u0663", "attempts '\u0663' is not a whole number"),
    ("--timeout", "1e3", "timeout (seconds) '1e3' is not a whole number"),
    ("--interval", "nan", "'nan' must be more than 0 seconds and finite"),
    ("--interval", "inf", "'inf' must be more than 0 seconds and finite"),
    ("--max-wait", "1e400", "'1e400' must be more than 0 seconds and finite"),
])
def test_numbers_out_of_bounds_or_not_ascii(aws, run_main, flag, value, message):
    result = run_main(*_replace(SUBMIT, flag, value))
    assert result.code == 2 and message in result.err, result.err
    assert aws.requests() == []


@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "64.0", "1e2", "\u0666\u0664",
                                   "+64", "0", "-8", "99999999999999999999999x"])
def test_max_vcpus_that_is_not_a_whole_number_is_refused(aws, run_main, value):
    aws.write_outputs(max_vcpus=value)
    result = run_main(*SUBMIT)
    assert result.code == 2, result.err
    assert f"max_vcpus output {value!r} is not a whole number" in result.err
    assert aws.requests() == []


@pytest.mark.parametrize("length", [123, 124, 126, 128])
def test_a_scale_test_prefix_too_long_for_its_job_names(aws, run_main, length):
    result = run_main("scale-test", "--job-name", "p" * length, "--nodes", "2,4", "--vcpus", "4",
                      "--memory", "4096")
    assert result.code == 2, result.err
    assert f"job name prefix 'pppppppppppppppppppp'... is {length} characters; the limit is " \
           "122" in result.err
    assert aws.requests() == []


def test_the_longest_scale_test_prefix_makes_valid_names(aws, run_main):
    aws.write_outputs(max_vcpus=1000)
    result = run_main("scale-test", "--job-name", "p" * 122, "--nodes", "2,1000", "--vcpus", "1",
                      "--memory", "4096", "--dry-run")
    assert result.code == 0, result.err
    names = [r["jobName"] for r in json.loads(result.out)]
    assert names == ["p" * 122 + "-2n", "p" * 122 + "-1000n"]
    assert max(map(len, names)) == 128


# --- files the CLI reads but did not write -----------------------------------------------------

@pytest.mark.parametrize(("file", "text", "message"), [
    ("manifest", '{"version": "0.21.0", "stacks": {"mnp', "cannot read synth manifest"),
    ("manifest", "", "cannot read synth manifest"),
    ("manifest", "[]", "synth manifest"),
    ("manifest", '{"stacks": []}', "has no stacks map"),
    ("manifest", '{"stacks": {"mnp-batch": 1}}', "has no stacks map"),
    ("state", '{"version": 4, "outputs": {"job_q', "cannot read state file"),
    ("state", "null", "is not a JSON object"),
    ("state", '{"outputs": []}', "has no outputs map"),
])
def test_truncated_or_foreign_stack_files(aws, run_main, monkeypatch, tmp_path, file, text,
                                          message):
    project = tmp_path / "project"
    project.mkdir()
    synthesized_project(project)
    target = (project / "cdktf.out" / "manifest.json" if file == "manifest"
              else project / "terraform.mnp-batch.tfstate")
    target.write_text(text)
    monkeypatch.delenv("JOBS_OUTPUTS_FILE")
    monkeypatch.chdir(project)
    monkeypatch.setenv("PATH", "/nonexistent")  # no terraform: the state file is read
    result = run_main(*SUBMIT)
    assert result.code == 2, result.err
    assert message in result.err and "unexpected" not in result.err
    assert aws.requests() == []


@pytest.mark.parametrize("text", ['{"mnp-batch": {"job_queue_name": "q"', "", "[1]"])
def test_truncated_outputs_file(aws, run_main, text):
    aws.outputs_file.write_text(text)
    result = run_main(*SUBMIT)
    assert result.code == 2 and "stack outputs file" in result.err, result.err
    assert aws.requests() == []


# --- the region ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("region", "message"), [
    ("", "AWS_REGION is set but empty"),
    ("xx-fake-9", "'xx-fake-9' is not an AWS region known to botocore"),
    ("us-fake-1", "'us-fake-1' is not an AWS region known to botocore"),
    ("US-EAST-1", "'US-EAST-1' is not an AWS region"),
    # the region a user most likely meant comes first (issue: eu-west did not suggest eu-west-1)
    ("eu-west", "did you mean eu-west-1, eu-west-2, eu-west-3?"),
    ("us-east1", "did you mean us-east-1,"),
    ("us-east-1\n", "is not an AWS region"),
    ("aws-global", "is not an AWS region"),
])
def test_an_empty_or_unknown_region_is_refused(aws, run_main, monkeypatch, region, message):
    monkeypatch.setenv("AWS_REGION", region)
    result = run_main("status", "abc")
    assert result.code == 2 and message in result.err, result.err
    assert aws.requests() == []


def test_an_unknown_region_from_the_stack_outputs_is_refused(aws, run_main, monkeypatch):
    monkeypatch.delenv("AWS_REGION")
    aws.write_outputs(region="xx-fake-9")
    result = run_main("status", "abc")
    assert result.code == 2 and "the AWS region in use: 'xx-fake-9'" in result.err, result.err
    assert aws.requests() == []
