"""Staging as Batch runs it, in containers: the stage-in job before any node, the stage-out job
after the job ended however it ended, both in the real image on the job's own network, against
a moto server no port of this machine exposes (docs/CONTRACTS.md, "Data in and out")."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import s3box
from emulator.s3box import S3Box
from tests.emulator.conftest import container_skip_reason
from tests.examples.conftest import example_image  # noqa: F401  (the LAMMPS image fixture)

REPO = Path(__file__).resolve().parents[2]
_WHY = container_skip_reason()
pytestmark = [pytest.mark.containers,
              pytest.mark.skipif(_WHY is not None, reason=f"no container engine: {_WHY}")]

# Nested keys, a 0-byte object, spaces and non-ASCII in a key.
TREE = {
    "params.json": b'{"nx": 33, "ny": 33}',
    "mesh/level 1/grid.bin": bytes(range(256)) * 64,
    "mesh/empty.dat": b"",
    "données/été 2026/π.txt": "température\n".encode(),
}
# Each rank (one per node) lists INPUT_PATH with SHA-256s into its node's own output file.
LIST_INPUT = (
    "import hashlib, json, os, pathlib, socket; root = pathlib.Path(os.environ['INPUT_PATH']); "
    "out = pathlib.Path(os.environ['OUTPUT_PATH'], os.environ['AWS_BATCH_JOB_ID'].split('#')[0]); "
    "out.mkdir(parents=True, exist_ok=True); "
    "seen = {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() "
    "for p in root.rglob('*') if p.is_file()}; "
    "(out / f'listing-{socket.gethostname()}.json').write_text(json.dumps("
    "{'input': str(root), 'files': seen}))")


@pytest.fixture(scope="module")
def s3(image: str) -> Iterator[S3Box]:
    """A moto server, reachable only from its own internal network and the jobs' networks."""
    with S3Box(s3box.build_image()) as box:
        yield box


def _run_local(project: Path, scratch: Path, image: str, box: S3Box, *args: str,
               staging_image: str | None = None, nodes: int = 2) -> list[str]:
    return [sys.executable, "-m", "jobs", "run-local", "--nodes", str(nodes), "--vcpus", "1",
            "--memory", "1024", "--efs-dir", str(scratch / "efs"), "--log-dir",
            str(scratch / "logs"), "--output-path", "/mnt/efs/out", "--image", image,
            "--staging-image", staging_image or image, "--s3-endpoint", box.endpoint,
            "--max-delay", "0.2", "--json", *args]


def _local(argv: list[str], project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=project, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=600)


def _manifest_matches(box: S3Box, prefix: str) -> dict:
    """The manifest at `prefix`manifest.json, checked against every object's bytes."""
    stored = box.objects("data", prefix)
    manifest = json.loads(stored.pop(f"{prefix}manifest.json")[0])
    assert {f["path"]: (f["size"], f["sha256"]) for f in manifest["files"]} == {
        key[len(prefix):]: (len(body), hashlib.sha256(body).hexdigest())
        for key, (body, _) in stored.items()}
    # each object carries its SHA-256, which a rerun compares before sending it again
    assert all(meta.get("sha256") == hashlib.sha256(body).hexdigest()
               for body, meta in stored.values())
    return manifest


def test_stage_in_run_stage_out_then_a_failed_attempt_2_duplicates_nothing(
        image: str, project: Path, scratch: Path, s3: S3Box) -> None:
    s3.put("data", {f"in/tree/{k}": v for k, v in TREE.items()})
    run = _local(_run_local(project, scratch, image, s3, "--stage-in", "s3://data/in/tree",
                            "--stage-out", "s3://data/out", "--", "python", "-c", LIST_INPUT),
                 project)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    job = result["jobId"]
    assert (result["stageInExitCode"], result["stageOutExitCode"]) == (0, 0)
    assert re.fullmatch(r"/mnt/efs/input/staged/local-run-\d{8}T\d{6}Z-[0-9a-f]{6}",
                        result["inputPath"])
    # Every node saw the whole tree, byte for byte, at INPUT_PATH.
    listings = sorted((scratch / "efs" / "out" / job).glob("listing-*.json"))
    assert len(listings) == 2
    for listing in listings:
        seen = json.loads(listing.read_text())
        assert seen["input"] == result["inputPath"]
        assert seen["files"].pop(".mnp-manifest.json")  # the complete copy's marker
        assert seen["files"] == {k: hashlib.sha256(v).hexdigest() for k, v in TREE.items()}
    assert not list((scratch / "efs" / "input" / "staged").glob("*.partial"))
    manifest = _manifest_matches(s3, f"out/{job}/")
    assert manifest["status"] == "SUCCEEDED" and len(manifest["files"]) == 2
    # Staging ran before and after the nodes, in the order Batch gives it.
    err = run.stderr
    assert err.index("stage-in job exited 0") < err.index("node logs in") < err.index(
        "stage-out job exited 0")

    # Attempt 2 of the same job writes into the same OUTPUT_PATH/<job id>/ and fails.
    fail = ("import os, pathlib; p = pathlib.Path(os.environ['OUTPUT_PATH'], "
            "os.environ['AWS_BATCH_JOB_ID'].split('#')[0]); "
            "(p / 'attempt-2.txt').write_text('second'); raise SystemExit(1)")
    run = _local(_run_local(project, scratch, image, s3, "--job-id", job, "--first-attempt",
                            "2", "--stage-out", "s3://data/out", "--", "python", "-c", fail),
                 project)
    assert run.returncode == 1, run.stderr[-3000:]
    manifest = _manifest_matches(s3, f"out/{job}/")
    assert manifest["status"] == "FAILED"
    assert sorted(f["path"] for f in manifest["files"]) == sorted(
        [p.name for p in listings] + ["attempt-2.txt"])
    assert len(s3.objects("data", f"out/{job}/")) == 4  # 3 files and the manifest, once each
    assert "1 uploaded, 2 already there (same size and SHA-256)" in run.stderr


def test_a_missing_prefix_ends_the_job_with_2_before_any_node_starts(
        image: str, project: Path, scratch: Path, s3: S3Box) -> None:
    s3.put("data", {"in/other/x": b"x"})
    run = _local(_run_local(project, scratch, image, s3, "--stage-in", "s3://data/in/absent",
                            "--stage-out", "s3://data/out", "--", "python", "-c", LIST_INPUT),
                 project)
    assert run.returncode == 2, run.stderr[-3000:]
    assert "s3://data/in/absent/: no objects below this prefix" in run.stderr
    assert "no node starts" in run.stderr
    assert not (scratch / "logs" / "mnp").exists()  # no node's log stream: none started
    assert not list((scratch / "efs").rglob("local-run-*"))  # no DEST, no DEST.partial
    # As on Batch, the job failed (its dependency did) and the stage-out job still ran.
    job = json.loads(run.stdout.strip().splitlines()[-1])["jobId"]
    manifest = _manifest_matches(s3, f"out/{job}/")
    assert manifest["status"] == "FAILED" and manifest["files"] == []
    assert "the job wrote no outputs" in manifest["note"]


def test_a_batch_stop_still_stages_out_the_checkpoint(image: str, project: Path, scratch: Path,
                                                      s3: S3Box) -> None:
    heat = ["python", "-m", "solver", "heat", "--nx", "65", "--ny", "65", "--steps", "10000000",
            "--log-every", "40", "--checkpoint-every", "0", "--no-png"]
    proc = subprocess.Popen(_run_local(project, scratch, image, s3, "--stage-out",
                                       "s3://data/stopped", "--", *heat),
                            cwd=project, env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")))
    reader.start()
    deadline = time.monotonic() + 180
    while not any("step 40/" in line for line in lines):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # as `jobs cancel` makes Batch stop the job's containers
    out, _ = proc.communicate(timeout=180)
    reader.join()
    err = "".join(lines)
    assert proc.returncode == 143, err[-3000:]
    job = re.search(r"run-local: job (\S+) attempt 1", err).group(1)
    manifest = _manifest_matches(s3, f"stopped/{job}/")
    assert manifest["status"] == "FAILED"
    # the checkpoint the solver wrote on SIGTERM reached S3
    assert any(f["path"].startswith("checkpoints/") for f in manifest["files"]), manifest


def test_a_bring_your_own_image_without_boto3_is_staged_by_ours(
        image: str, example_image, project: Path, scratch: Path,  # noqa: F811
        s3: S3Box) -> None:
    lammps = example_image("lammps")
    has_boto3 = subprocess.run(["docker", "run", "--rm", "--entrypoint", "python3", lammps,
                                "-c", "import boto3"], capture_output=True, text=True)
    assert has_boto3.returncode != 0  # nothing of staging is in the job's image
    s3.put("data", {"in/melt/in.melt": (REPO / "examples" / "lammps" / "in.melt").read_bytes()})
    melt = ('out="$OUTPUT_PATH/${AWS_BATCH_JOB_ID%%#*}"; mkdir -p "$out" && '
            'exec lmp -in "$INPUT_PATH/in.melt" -var steps 100 -log "$out/log.lammps"')
    run = _local(_run_local(project, scratch, lammps, s3, "--stage-in", "s3://data/in/melt",
                            "--stage-out", "s3://data/lammps", "--", "sh", "-c", melt,
                            staging_image=image), project)
    assert run.returncode == 0, run.stderr[-3000:]
    job = json.loads(run.stdout.strip().splitlines()[-1])["jobId"]
    manifest = _manifest_matches(s3, f"lammps/{job}/")
    assert [f["path"] for f in manifest["files"]] == ["log.lammps"]
    log = s3.objects("data", f"lammps/{job}/log.lammps")[f"lammps/{job}/log.lammps"][0]
    assert re.search(rb"Loop time of \S+ on 2 procs for 100 steps", log), log[-2000:]
