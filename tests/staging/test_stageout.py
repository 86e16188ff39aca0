"""`python -m staging out`: a job's outputs under one key per file, unchanged files not sent
again, the manifest deleted before and written after every object (docs/CONTRACTS.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from staging.__main__ import run
from staging.stageout import SHA256_METADATA

JOB = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
OUTPUTS = {
    "summary.json": b'{"steps": 10}\n',
    "field.npy": b"\x93NUMPY" + bytes(1000),
    "checkpoints/step 10/rank 0.npz": b"checkpoint",
    "empty.log": b"",
    # above boto3's 8 MiB multipart threshold: its SHA-256 must survive a multipart upload
    "big.bin": bytes(range(251)) * (9 * 4177),
}


def _write(root: Path, tree: dict[str, bytes]) -> None:
    for relative, body in tree.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(body)


def _stage_out(out: Path, status: str = "SUCCEEDED", job: str = JOB) -> int:
    return run(["out", "--job", job, "--status", status, "--from", str(out),
                "--to", "s3://data/results/"])


def _bucket(s3: Any) -> dict[str, bytes]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="data").get("Contents", [])]
    return {k: s3.get_object(Bucket="data", Key=k)["Body"].read() for k in keys}


def test_outputs_land_under_the_job_id_with_the_manifest_last(
        s3: Any, tmp_path: Path, calls: list) -> None:
    _write(tmp_path / JOB, OUTPUTS)
    assert _stage_out(tmp_path) == 0
    stored = _bucket(s3)
    manifest = json.loads(stored.pop(f"results/{JOB}/manifest.json"))
    assert stored == {f"results/{JOB}/{k}": v for k, v in OUTPUTS.items()}
    # The manifest describes these bytes (what `jobs fetch` checks each file against).
    assert {f["path"]: (f["size"], f["sha256"]) for f in manifest["files"]} == {
        k: (len(v), hashlib.sha256(v).hexdigest()) for k, v in OUTPUTS.items()}
    assert (manifest["job_id"], manifest["status"], manifest["format"]) == (JOB, "SUCCEEDED", 1)
    writes = [key for op, key in calls if op in ("PutObject", "CompleteMultipartUpload")]
    assert writes[-1] == f"results/{JOB}/manifest.json"
    assert len(writes) == len(OUTPUTS) + 1
    assert ("CompleteMultipartUpload", f"results/{JOB}/big.bin") in calls
    head = s3.head_object(Bucket="data", Key=f"results/{JOB}/big.bin")
    assert head["Metadata"][SHA256_METADATA] == hashlib.sha256(OUTPUTS["big.bin"]).hexdigest()


def test_a_rerun_sends_only_what_changed_and_never_duplicates(
        s3: Any, tmp_path: Path, calls: list, capsys: pytest.CaptureFixture) -> None:
    _write(tmp_path / JOB, OUTPUTS)
    assert _stage_out(tmp_path, "FAILED") == 0
    # attempt 2 of the job rewrote its summary (same size, other bytes) and added a file
    _write(tmp_path / JOB, {"summary.json": b'{"steps": 20}\n', "field.png": b"png"})
    calls.clear()
    capsys.readouterr()
    assert _stage_out(tmp_path) == 0
    sent = [key for op, key in calls if op in ("PutObject", "CreateMultipartUpload")]
    assert sorted(sent[:-1]) == [f"results/{JOB}/field.png", f"results/{JOB}/summary.json"]
    assert sent[-1] == f"results/{JOB}/manifest.json"
    # the old manifest went before any object changed
    assert calls.index(("DeleteObject", f"results/{JOB}/manifest.json")) < min(
        calls.index(("PutObject", key)) for key in sent)
    stored = _bucket(s3)
    manifest = json.loads(stored.pop(f"results/{JOB}/manifest.json"))
    assert len(stored) == len(OUTPUTS) + 1  # one object per file: nothing twice
    assert stored[f"results/{JOB}/summary.json"] == b'{"steps": 20}\n'
    assert manifest["status"] == "SUCCEEDED" and len(manifest["files"]) == len(OUTPUTS) + 1
    assert "6 files, 9436876 bytes; 2 uploaded, 4 already there" in capsys.readouterr().err


def test_a_node_job_is_skipped(s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _write(tmp_path / JOB, OUTPUTS)
    assert _stage_out(tmp_path, job=f"{JOB}#1") == 0
    assert _bucket(s3) == {}
    assert "is one node of a multi-node job" in capsys.readouterr().err


def test_no_output_directory_gives_an_empty_manifest_that_says_so(s3: Any,
                                                                  tmp_path: Path) -> None:
    assert _stage_out(tmp_path, "FAILED") == 0
    stored = _bucket(s3)
    assert list(stored) == [f"results/{JOB}/manifest.json"]
    manifest = json.loads(stored[f"results/{JOB}/manifest.json"])
    assert manifest["files"] == [] and manifest["bytes"] == 0
    assert "does not exist: the job wrote no outputs" in manifest["note"]


@pytest.mark.parametrize(("argv", "code", "message"), [
    (["--job", JOB, "--status", "SUCCEEDED", "--to", "s3://missing-bucket/r/"], 2,
     "s3://missing-bucket/r/" + JOB + "/: not found (NoSuchBucket)"),
    (["--job", "../etc", "--status", "FAILED", "--to", "s3://data/r/"], 2,
     "job id '../etc' is not a job id"),
    (["--job", JOB, "--status", "RUNNING", "--to", "s3://data/r/"], 2,
     "invalid choice: 'RUNNING'"),
])
def test_bad_locations_exit_2_naming_them(s3: Any, tmp_path: Path,
                                          capsys: pytest.CaptureFixture, argv: list[str],
                                          code: int, message: str) -> None:
    _write(tmp_path / JOB, OUTPUTS)
    try:
        got = run(["out", *argv, "--from", str(tmp_path)])
    except SystemExit as stop:
        got = stop.code
    assert got == code and message in capsys.readouterr().err
    assert _bucket(s3) == {}
