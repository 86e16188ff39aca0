"""Issue 24 part 5: nothing AWS would refuse is sent, outside text never reaches the terminal
raw, and cancel keeps to the stack's queues."""

from __future__ import annotations

import json

import pytest

from jobs.render import printable
from jobs.validate import MAX_SUBMIT_BYTES
from tests.jobs.moto_env import DEFINITION, QUEUE, SPOT_QUEUE
from tests.jobs.test_validation import SUBMIT, _replace

# --- SubmitJob's 30 KiB, 32-bit integers, the tag pattern -------------------------------------


@pytest.mark.parametrize("where", ["command", "env"])
def test_a_request_over_30_kib_is_refused_before_anything_is_sent(aws, run_main, where):
    big = "x" * 40_000
    extra = ["--", "python", big] if where == "command" else ["--env", f"BIG={big}"]
    for base in (SUBMIT, [*SUBMIT, "--image-tag", "v2"],
                 ["scale-test", "--nodes", "2,4", "--vcpus", "4", "--memory", "4096"]):
        aws.start_recording()
        result = run_main(*base, *extra)
        assert result.code == 2, result.err
        assert "would be 40" in result.err and f"at most {MAX_SUBMIT_BYTES} (30 KiB)" in \
            result.err
        assert aws.requests(preflight=True) == []  # no registration, no preflight reads


def test_a_request_just_under_30_kib_is_sent_whole(aws, run_main):
    base = [*SUBMIT, "--dry-run", "--no-preflight", "--"]
    overhead = len(run_main(*base, "python").out)  # indented JSON is larger than the request
    arg = "x" * (MAX_SUBMIT_BYTES - overhead)
    result = run_main(*base, "python", arg)
    assert result.code == 0, result.err
    command = json.loads(result.out)["nodeOverrides"]["nodePropertyOverrides"][0][
        "containerOverrides"]["command"]
    assert command == ["python", arg]


@pytest.mark.parametrize(("value", "code"), [("2147483647", 0), ("2147483648", 2),
                                              ("99999999999", 2)])
def test_timeout_is_a_32_bit_integer(aws, run_main, value, code):
    result = run_main(*_replace(SUBMIT, "--timeout", value), "--dry-run", "--no-preflight")
    assert result.code == code, result.err
    if code:
        assert f"timeout (seconds) {value} is out of range: must be between 60 and " \
               "2147483647" in result.err
    else:
        assert json.loads(result.out)["timeout"] == {"attemptDurationSeconds": 2147483647}


@pytest.mark.parametrize(("tag", "message"), [
    ("team=a#b", "tag value 'a#b' has '#'"),
    ("team=a,b", "tag value 'a,b' has ','"),
    ("team=a\nb", "tag value 'a\\nb' has '\\n'"),
    ("team=a\x1b[2Jb", "tag value 'a\\x1b[2Jb' has '\\x1b'"),
    ("te;am=x", "tag key 'te;am' has ';'"),
    ("team=a\u200bb", "has '\\u200b'"),  # zero-width space: a format character, not \p{Z}
])
def test_tags_outside_batchs_pattern_are_refused(aws, run_main, tag, message):
    result = run_main(*SUBMIT, "--tag", tag, "--dry-run")
    assert result.code == 2, result.err
    assert message in result.err and "letters, digits, spaces and _ . : / = + - @" in result.err
    assert aws.requests() == []


def test_tags_of_letters_digits_spaces_and_the_allowed_punctuation_pass(aws, run_main):
    value = "Équipe 7 ü:/=+-@_.\u00a0東京"
    result = run_main(*SUBMIT, "--tag", f"proj ét_1={value}", "--dry-run", "--no-preflight")
    assert result.code == 0, result.err
    assert json.loads(result.out)["tags"]["proj ét_1"] == value


# --- outside text: control characters are shown escaped, never sent to the terminal ----------

HOSTILE = "grid\x1b[2J\x1b]0;pwned\x07 done\u202e\r\nnext"


def test_printable_escapes_every_control_character_and_keeps_the_rest():
    assert printable(HOSTILE) == "grid\\x1b[2J\\x1b]0;pwned\\x07 done\\u202e\\r\\nnext"
    assert printable("a\tb", keep="\t") == "a\tb"
    assert printable("[red]é 東京 ☃") == "[red]é 東京 ☃"


def test_status_list_watch_and_cancel_escape_a_hostile_reason(aws, run_main):
    job_id = aws.batch.submit_job(jobName="heat", jobQueue=QUEUE,
                                  jobDefinition=DEFINITION)["jobId"]
    aws.set_status(job_id, "FAILED", HOSTILE)
    for argv in (["status", job_id], ["list"], ["watch", job_id, "--interval", "0.1"],
                 ["cancel", job_id, "--reason", "stop\x1b[31m"]):
        result = run_main(*argv)
        assert result.code in (0, 1), result.err
        shown = result.out + result.err
        assert not any(ch in shown for ch in "\x1b\x07\r\u202e"), (argv, shown)
        assert "\\x1b[2J" in shown or argv[0] == "cancel", argv


def test_logs_escape_control_characters_and_keep_tabs(aws, run_main):
    job_id = aws.batch.submit_job(jobName="heat", jobQueue=QUEUE,
                                  jobDefinition=DEFINITION)["jobId"]
    aws.set_status(job_id, "SUCCEEDED")
    (stream,) = aws.seed_nodes(job_id, ["SUCCEEDED"])
    aws.put_logs(stream, ["a\tb\x1b[2J", "c\x1b]0;t\x07"])
    result = run_main("logs", job_id)
    assert result.code == 0, result.err
    assert result.out.splitlines() == ["a\tb\\x1b[2J", "c\\x1b]0;t\\x07"]


# --- cancel keeps to the stack's queues -----------------------------------------------------

def _job(aws, queue: str) -> str:
    job_id = aws.batch.submit_job(jobName="heat", jobQueue=queue,
                                  jobDefinition=DEFINITION)["jobId"]
    aws.set_status(job_id, "RUNNING")
    return job_id


def test_cancel_refuses_a_job_of_another_queue(aws, run_main):
    aws.batch.create_job_queue(jobQueueName="other", state="ENABLED", priority=1,
                               computeEnvironmentOrder=aws.batch.describe_job_queues(
                                   jobQueues=[QUEUE])["jobQueues"][0]["computeEnvironmentOrder"])
    job_id = _job(aws, "other")
    aws.start_recording()
    result = run_main("cancel", job_id)
    assert result.code == 2, result.err
    assert f"{job_id} is a job of queue arn:" in result.err and ":job-queue/other, not of " \
        f"{QUEUE} or {SPOT_QUEUE}: not cancelled" in result.err
    assert "--any-queue" in result.err
    assert [r.operation for r in aws.requests()] == ["describejobs"]
    # told otherwise, it is cancelled; --job-queue names the queue meant
    for extra in (["--any-queue"], ["--job-queue", "other"]):
        aws.start_recording()
        result = run_main("cancel", job_id, *extra)
        assert result.code == 0, result.err
        assert [r.operation for r in aws.requests()] == ["describejobs", "terminatejob"]


@pytest.mark.parametrize("queue", [QUEUE, SPOT_QUEUE])
def test_cancel_acts_on_the_stacks_own_queues(aws, run_main, queue):
    job_id = _job(aws, queue)
    aws.start_recording()
    result = run_main("cancel", job_id)
    assert result.code == 0, result.err
    assert [r.operation for r in aws.requests()] == ["describejobs", "terminatejob"]
