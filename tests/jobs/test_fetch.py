"""fetch against moto's S3: a job's staged outputs (uploaded with a manifest built by
staging.manifest, as the stage-out job writes them) downloaded, resumed and verified."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

from continuation.family import family_of
from staging.manifest import FileEntry, Manifest, build
from tests.jobs.moto_env import DATA_BUCKET, DEFINITION, QUEUE

OUT = f"s3://{DATA_BUCKET}/output/runs/"
# A tree as a run leaves it: nested keys, an empty file, spaces and unicode in names.
TREE = {
    "summary.json": b'{"steps": 100}\n',
    "fields/step 100/field.npy": bytes(range(256)) * 64,
    "fields/empty.dat": b"",
    "r\u00e9sultats/\u6e29\u5ea6 map.txt": b"t=1\n" * 10,
}


def job_with_stage_out(aws, status: str = "SUCCEEDED") -> str:
    """A job submitted to moto with the stage-out parameters submit sets."""
    job_id = aws.batch.submit_job(jobName="heat", jobQueue=QUEUE, jobDefinition=DEFINITION,
                                  parameters={"stageOut": OUT,
                                              "outputDir": "/mnt/efs/runs"})["jobId"]
    aws.set_status(job_id, status)
    return job_id


def upload(aws, tmp_path: Path, job_id: str, tree: dict[str, bytes] = TREE,
           manifest: Manifest | None = None) -> Manifest:
    """The stage-out job's result: every file of the run's folder, then manifest.json."""
    run = tmp_path / "efs" / job_id
    for path, data in tree.items():
        (run / path).parent.mkdir(parents=True, exist_ok=True)
        (run / path).write_bytes(data)
    manifest = manifest or build(job_id, "SUCCEEDED", run)
    prefix = f"output/runs/{job_id}/"
    for path, data in tree.items():
        aws.s3.put_object(Bucket=DATA_BUCKET, Key=prefix + path, Body=data)
    aws.s3.put_object(Bucket=DATA_BUCKET, Key=prefix + "manifest.json",
                      Body=manifest.to_json().encode())
    aws.start_recording()
    return manifest


def fetched_keys(aws) -> list[str]:
    """Keys below the job's folder the CLI read (HeadObject and GetObject), but the manifest."""
    keys = set()
    for request in aws.requests():
        path = urllib.parse.unquote(urllib.parse.urlsplit(request.url).path)
        if request.service == "s3" and "/output/runs/" in path:
            keys.add(path.split("/output/runs/", 1)[1].split("/", 1)[1])
    return sorted(keys - {"manifest.json"})


def local_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in root.rglob("*") if p.is_file()}


def test_fetch_downloads_and_verifies_the_tree(aws, run_main, tmp_path):
    job_id = job_with_stage_out(aws)
    upload(aws, tmp_path, job_id)
    result = run_main("fetch", job_id, "--json")
    assert result.code == 0, result.err
    root = aws.tmp_path / "outputs" / job_id
    assert local_tree(root) == TREE
    out = json.loads(result.out)
    assert out == {"jobId": job_id, "source": f"{OUT}{job_id}/", "to": f"outputs/{job_id}",
                   "status": "SUCCEEDED", "files": 4, "bytes": sum(map(len, TREE.values())),
                   "downloaded": 4, "skipped": 0,
                   "bytesDownloaded": sum(map(len, TREE.values()))}


def test_plain_summary_and_to_dir(aws, run_main, tmp_path):
    job_id = job_with_stage_out(aws)
    upload(aws, tmp_path, job_id)
    result = run_main("fetch", job_id, "--to", str(tmp_path / "res"))
    assert result.code == 0, result.err
    assert result.out.strip() == (
        f"{tmp_path / 'res' / job_id}: 4 files, {sum(map(len, TREE.values()))} bytes, all "
        f"matching {OUT}{job_id}/manifest.json (4 downloaded, 0 already there); the job ended "
        "SUCCEEDED")


def test_a_rerun_resumes_after_a_partial_download(aws, run_main, tmp_path):
    job_id = job_with_stage_out(aws)
    upload(aws, tmp_path, job_id)
    root = aws.tmp_path / "outputs" / job_id
    # An interrupted run: two files complete, one cut short under its .part name, one stale.
    (root / "fields" / "step 100").mkdir(parents=True)
    (root / "summary.json").write_bytes(TREE["summary.json"])
    (root / "fields" / "empty.dat").write_bytes(b"")
    (root / "fields" / "step 100" / "field.npy.part").write_bytes(
        TREE["fields/step 100/field.npy"][:1000])
    (root / "r\u00e9sultats").mkdir()
    (root / "r\u00e9sultats" / "\u6e29\u5ea6 map.txt").write_bytes(b"old run\n")
    result = run_main("fetch", job_id, "--json")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert (out["downloaded"], out["skipped"]) == (2, 2)
    assert fetched_keys(aws) == ["fields/step 100/field.npy", "r\u00e9sultats/\u6e29\u5ea6 map.txt"]
    assert local_tree(root) == TREE  # no .part left, the stale file replaced
    again = run_main("fetch", job_id, "--json")
    assert json.loads(again.out)["skipped"] == 4


def test_a_mismatch_is_named_and_not_kept(aws, run_main, tmp_path):
    job_id = job_with_stage_out(aws)
    manifest = upload(aws, tmp_path, job_id)
    aws.s3.put_object(Bucket=DATA_BUCKET, Key=f"output/runs/{job_id}/summary.json",
                      Body=b'{"steps": 999}\n')  # same size, other bytes
    aws.start_recording()
    result = run_main("fetch", job_id)
    assert result.code == 1
    assert "1 of 4 files do not match the manifest" in result.err
    assert "summary.json: SHA-256 differs from the manifest" in result.err
    root = aws.tmp_path / "outputs" / job_id
    assert not (root / "summary.json").exists() and not (root / "summary.json.part").exists()
    assert set(local_tree(root)) == {e.path for e in manifest.files} - {"summary.json"}


def test_an_object_missing_from_s3_is_named(aws, run_main, tmp_path):
    job_id = job_with_stage_out(aws)
    upload(aws, tmp_path, job_id)
    aws.s3.delete_object(Bucket=DATA_BUCKET, Key=f"output/runs/{job_id}/fields/empty.dat")
    result = run_main("fetch", job_id)
    assert result.code == 1
    assert f"fields/empty.dat: output/runs/{job_id}/fields/empty.dat could not be read" \
        in result.err


@pytest.mark.parametrize("evil", ["../escaped.txt", "/etc/evil", "a/../../b", "./a", "a//b",
                                  "a\\..\\b"])
def test_a_manifest_path_escaping_the_folder_is_refused(aws, run_main, tmp_path, evil):
    job_id = job_with_stage_out(aws)
    manifest = Manifest(job_id=job_id, status="SUCCEEDED", source="/mnt/efs/runs",
                        files=[FileEntry("ok.txt", 2, "0" * 64), FileEntry(evil, 1, "0" * 64)])
    upload(aws, tmp_path, job_id, tree={}, manifest=manifest)
    result = run_main("fetch", job_id)
    assert result.code == 1
    assert f"the manifest lists {evil!r}, which is not a plain relative path" in result.err
    assert not (aws.tmp_path / "outputs").exists()


def test_no_manifest_after_the_job_ended(aws, run_main):
    job_id = job_with_stage_out(aws, "FAILED")
    aws.s3.put_object(Bucket=DATA_BUCKET, Key=f"output/runs/{job_id}/summary.json", Body=b"{}")
    result = run_main("fetch", job_id)
    assert result.code == 1
    assert ("outputs not complete yet: the job's stage-out has not finished "
            f"(no {OUT}{job_id}/manifest.json; the job ended FAILED)") in result.err
    assert not (aws.tmp_path / "outputs").exists()


def test_no_manifest_while_the_job_runs(aws, run_main):
    job_id = job_with_stage_out(aws, "RUNNING")
    result = run_main("fetch", job_id)
    assert result.code == 1
    assert f"job {job_id} is still RUNNING: its outputs are copied to {OUT}{job_id}/ when " \
        "it ends" in result.err


def test_from_works_once_batch_forgot_the_job(aws, run_main, tmp_path):
    job_id = "0b1d3f4e-0000-4000-8000-000000000001"
    upload(aws, tmp_path, job_id)
    result = run_main("fetch", job_id, "--from", OUT, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["downloaded"] == 4
    assert [r.operation for r in aws.requests() if r.service == "batch"] == []


def test_a_job_without_stage_out(aws, run_main):
    job_id = aws.batch.submit_job(jobName="heat", jobQueue=QUEUE,
                                  jobDefinition=DEFINITION)["jobId"]
    result = run_main("fetch", job_id)
    assert result.code == 2
    assert f"job {job_id} was submitted without --stage-out" in result.err


def test_the_manifest_of_another_job_is_refused(aws, run_main, tmp_path):
    job_id = job_with_stage_out(aws)
    other = build("another-job", "SUCCEEDED", tmp_path)
    upload(aws, tmp_path, job_id, tree={}, manifest=other)
    result = run_main("fetch", job_id)
    assert result.code == 1
    assert "is the manifest of job another-job, not of" in result.err


def test_a_node_id_names_the_parent(aws, run_main):
    result = run_main("fetch", "abc-123#2")
    assert result.code == 2
    assert "abc-123#2 is one node or child of job abc-123" in result.err
    assert aws.requests() == []


def test_status_says_where_the_outputs_are(aws, run_main, tmp_path):
    job_id = job_with_stage_out(aws)
    before = run_main("status", job_id)
    assert before.code == 0, before.err
    assert (f"outputs     {OUT}{job_id}/ (not complete yet: no manifest.json, which "
            "stage-out writes last)") in before.out
    upload(aws, tmp_path, job_id)
    after = run_main("status", job_id)
    assert (f"outputs     {OUT}{job_id}/ (complete: 4 files, {sum(map(len, TREE.values()))} "
            f"bytes; get them with python -m jobs fetch {job_id})") in after.out
    data = json.loads(run_main("status", job_id, "--json").out)["data"]
    assert data["stageOut"]["location"] == f"{OUT}{job_id}/"
    assert data["stageOut"]["complete"] is True and data["stageOut"]["files"] == 4
    assert data["stageOut"]["outputDir"] == "/mnt/efs/runs"


def test_status_shows_the_staged_input(aws, run_main):
    source = f"s3://{DATA_BUCKET}/input/case1/"
    submitted = run_main("submit", "--job-name", "heat", "--nodes", "2", "--vcpus", "8",
                         "--memory", "15000", "--no-preflight", "--stage-in", source, "--json")
    assert submitted.code == 0, submitted.err
    out = json.loads(submitted.out)
    result = run_main("status", out["jobId"], "--json")
    assert json.loads(result.out)["data"] == {"stageIn": {
        "jobId": out["stageIn"]["jobId"], "status": "SUCCEEDED", "source": source,
        "dest": out["stageIn"]["dest"]}}
    text = run_main("status", out["jobId"]).out
    assert (f"inputs      {source} -> {out['stageIn']['dest']} (stage-in job "
            f"{out['stageIn']['jobId']} SUCCEEDED)") in text
    assert "outputs" not in text


def test_a_progress_bar_on_a_terminal_only(aws, tmp_path):
    job_id = job_with_stage_out(aws)
    upload(aws, tmp_path, job_id)
    plain = aws.cli("fetch", job_id, "--to", "plain")
    assert plain.returncode == 0 and plain.stderr == ""
    # stderr on a pseudo-terminal, as in a user's shell: rich draws the bar there.
    main, secondary = pty.openpty()
    screen = bytearray()

    def drain() -> None:  # read as it comes: a full terminal buffer would block the writer
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the writer closed its end
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    proc = subprocess.Popen([sys.executable, "-m", "jobs", "fetch", job_id, "--to", "tty"],
                            cwd=aws.tmp_path, env=aws.env(), stdout=subprocess.PIPE,
                            stderr=secondary)
    os.close(secondary)
    out, _ = proc.communicate(timeout=60)
    reader.join(timeout=30)
    os.close(main)
    assert proc.returncode == 0
    assert b"4 files" in screen and b"\xe2\x94\x81" in screen  # the description, the bar (━)
    assert out.decode().startswith(f"tty/{job_id}: 4 files")


def test_a_run_is_fetched_from_its_newest_job(aws, run_main, tmp_path):
    """Every member of a --min-nodes run stages out its own folder (the controller copies
    `parameters`, continuation/apply.py); the run's result is the newest member's."""
    submitted = run_main("submit", "--job-name", "heat", "--nodes", "2", "--vcpus", "8",
                         "--memory", "15000", "--output-path", "/mnt/efs/runs", "--min-nodes",
                         "1", "--stage-out", OUT, "--no-preflight", "--json")
    assert submitted.code == 0, submitted.err
    first = json.loads(submitted.out)["jobId"]
    aws.set_status(first, "FAILED", "Host EC2 (instance i-0a1b2c3d4e5f60718) terminated.")
    family = family_of(aws.batch.describe_jobs(jobs=[first])["jobs"])
    second = aws.batch.submit_job(
        jobName=family.continuation_name(2), jobQueue=QUEUE, jobDefinition=DEFINITION,
        parameters={"stageOut": OUT, "outputDir": "/mnt/efs/runs"},
        tags=family.tags_for(2, family.newest))["jobId"]
    aws.set_status(second, "SUCCEEDED")
    upload(aws, tmp_path, first, {"partial.txt": b"stopped at step 34\n"})
    upload(aws, tmp_path, second)
    result = run_main("fetch", first, "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["jobId"] == second
    assert local_tree(aws.tmp_path / "outputs" / second) == TREE
    assert f"fetching its newest job {second} (generation 2, SUCCEEDED)" in \
        " ".join(result.err.split())
    own = run_main("fetch", first, "--only-this-job", "--json")
    assert own.code == 0, own.err
    assert local_tree(aws.tmp_path / "outputs" / first) == {"partial.txt": b"stopped at step 34\n"}
