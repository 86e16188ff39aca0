"""The real image as Batch runs it: one container per node with awsvpc's `ecs-eth0`, the
synthesized job definition, the launcher as ENTRYPOINT, faults as Batch and EC2 make them."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emulator.containers import LABEL_RUN, ContainerJob, ContainerNode, stack_secret_values
from emulator.engine import docker
from emulator.jobdef import LocalJob
from tests.emulator.conftest import batch_job, container_skip_reason

REPO = Path(__file__).resolve().parents[2]
_WHY = container_skip_reason()
pytestmark = [pytest.mark.containers,
              pytest.mark.skipif(_WHY is not None, reason=f"no container engine: {_WHY}")]

COMPARED = ("grid", "steps", "t", "l2_error", "max_error")
STACK = {"MNP_RENDEZVOUS_SECRET": secrets.token_hex(32)}
# Fast loss detection for the tests; the job definition keeps the launcher's defaults.
FAST_HEARTBEAT = {"MNP_HEARTBEAT_INTERVAL": "0.5", "MNP_HEARTBEAT_TIMEOUT": "5"}
SHOW_RANK = ("import json, os, socket; print(json.dumps({'uid': os.getuid(), 'gid': "
             "os.getgid(), 'host': socket.gethostname(), 'links': "
             "sorted(os.listdir('/sys/class/net'))}), flush=True)")


def _heat(steps: int, *extra: str) -> list[str]:
    return ["python", "-m", "solver", "heat", "--nx", "67", "--ny", "45", "--steps", str(steps),
            "--no-png", *extra]


def _job(config: dict, nodes: int, command: list[str]) -> LocalJob:
    """The containers Batch would start for `submit --nodes N --vcpus 1 -- command`."""
    return batch_job(config, nodes, command)


def _run(config: dict, image: str, scratch: Path, nodes: int, command: list[str],
         **kw: object) -> ContainerJob:
    # One stack: every run and attempt has its secret (checkpoint keys come from it).
    kw.setdefault("secret_values", STACK)
    return ContainerJob(_job(config, nodes, command), image, efs_dir=scratch / "efs",
                        log_dir=scratch / "logs", env=FAST_HEARTBEAT, **kw)


def _reference(scratch: Path, steps: int) -> tuple[dict, np.ndarray]:
    """The same heat run as one process of this machine's venv."""
    env = {**os.environ, "AWS_BATCH_JOB_ID": "ref#0", "PYTHONPATH": str(REPO),
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "NUMBA_CACHE_DIR": str(scratch / "numba")}
    mpiexec = Path(sys.executable).with_name("mpiexec")
    run = subprocess.run([str(mpiexec), "-n", "1", sys.executable, "-m", "solver",
                          *_heat(steps, "--output-path", str(scratch / "ref"))[3:]],
                         env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert run.returncode == 0, run.stderr
    return (json.loads(run.stdout.strip().splitlines()[-1]),
            np.load(scratch / "ref" / "ref" / "field.npy"))


def _left(tag: str) -> list[str]:
    return docker("ps", "-aq", "--filter", f"label={LABEL_RUN}={tag}").stdout.split()


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_run_local_gives_the_one_process_answer_on_four_containers(
        image: str, project: Path, scratch: Path) -> None:
    ref, ref_field = _reference(scratch, 200)
    run = subprocess.run(
        [sys.executable, "-m", "jobs", "run-local", "--nodes", "4", "--vcpus", "1",
         "--memory", "1024", "--efs-dir", str(scratch / "efs"), "--log-dir",
         str(scratch / "logs"), "--output-path", "/mnt/efs/out", "--image", image, "--json",
         "--", *_heat(200)],
        cwd=project, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
        text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    summary, result = json.loads(lines[-2]), json.loads(lines[-1])
    assert (summary["ranks"], summary["nodes"], result["exitCode"]) == (4, 4, 0)
    for key in COMPARED:
        assert summary[key] == pytest.approx(ref[key], rel=1e-12, abs=0), key
    out = scratch / "efs" / "out" / result["jobId"]
    np.testing.assert_array_equal(np.load(out / "field.npy"), ref_field)
    assert out.stat().st_uid == 1000  # written by the job's user, as through the access point
    streams = sorted(p.relative_to(scratch / "logs").as_posix()
                     for p in (scratch / "logs").rglob("*") if p.is_file())
    assert len(streams) == 4 and all(re.fullmatch(r"mnp/default/[0-9a-f]{32}", s)
                                     for s in streams)
    assert "memlock" in run.stderr  # what this machine refuses is said, not dropped
    tag = re.search(r"on network mnp-([0-9a-f]{6})", run.stderr).group(1)
    assert _left(tag) == []


def test_ranks_run_in_every_container_as_the_job_user_and_commcheck_reaches_all(
        image: str, synthesized_config: dict, scratch: Path) -> None:
    with _run(synthesized_config, image, scratch, 4, ["python", "-c", SHOW_RANK]) as job:
        job.start()
        assert job.wait(120) == 0, job.output(0)[1]
        ranks = [json.loads(line) for line in job.output(0)[0].splitlines()]
        hostnames = {n.hostname for n in job.nodes}
    assert {r["host"] for r in ranks} == hostnames and len(ranks) == 4
    assert all((r["uid"], r["gid"]) == (1000, 1000) for r in ranks)
    assert all("ecs-eth0" in r["links"] for r in ranks)  # awsvpc's second interface
    with _run(synthesized_config, image, scratch, 4,
              ["python", "-m", "solver", "commcheck", "--sizes", "8,65536", "--iterations",
               "5", "--timeout", "30"]) as job:
        job.start()
        assert job.wait(120) == 0, job.output(0)[1]
        summary = json.loads(job.output(0)[0].strip().splitlines()[-1])
        assert all(code == 0 for code in job.wait_all(30).values())
        hostnames = {n.hostname for n in job.nodes}
    assert summary["ok"] and summary["unreachable"] == []
    assert (summary["ranks"], summary["nodes"]) == (4, 4)
    assert set(summary["hosts"]) == hostnames


@pytest.mark.parametrize("fault", ["kill", "link-down"])
def test_a_lost_node_ends_the_job_with_exit_4(image: str, synthesized_config: dict,
                                             scratch: Path, fault: str) -> None:
    command = _heat(10**7, "--log-every", "40", "--checkpoint-every", "0")
    with _run(synthesized_config, image, scratch, 4, command) as job:
        job.start()
        _wait_for(lambda: "step 40/" in job.output(0)[1], 120, "the run to start")
        began = time.monotonic()
        job.kill_node(2) if fault == "kill" else job.link_down(2)
        assert job.wait(90) == 4
        took = time.monotonic() - began
        codes = job.wait_all(60)
        assert job.running() == []
        err = job.output(0)[1]
        tag = job.tag
    assert "node 2 lost mid-run" in err
    assert took < (20 if fault == "kill" else 30), took  # bounded: heartbeat timeout is 5 s
    assert codes[1] == 0 and None not in codes.values()
    assert _left(tag) == []


def test_batch_stop_checkpoints_and_attempt_2_resumes_bit_identical(
        image: str, synthesized_config: dict, scratch: Path) -> None:
    steps = 4000
    ref, ref_field = _reference(scratch, steps)
    command = _heat(steps, "--log-every", "40", "--checkpoint-every", "0")
    with _run(synthesized_config, image, scratch, 4, command, job_id="stopped") as job:
        job.start()
        _wait_for(lambda: "step 40/" in job.output(0)[1], 120, "the run to start")
        job.stop_job()  # SIGTERM to every container, SIGKILL 30 s later
        codes = job.wait_all(10)
        err = job.output(0)[1]
    assert codes == {0: 143, 1: 143, 2: 143, 3: 143}, err
    assert "stop requested: checkpoint at step" in err
    with _run(synthesized_config, image, scratch, 4, command, job_id="stopped",
              attempt=2) as job:
        job.start()
        assert job.wait(300) == 0, job.output(0)[1]
        summary = json.loads(job.output(0)[0].strip().splitlines()[-1])
    assert 0 < summary["restarted_from_step"] < steps
    for key in COMPARED:
        assert summary[key] == pytest.approx(ref[key], rel=1e-12, abs=0), key
    np.testing.assert_array_equal(np.load(scratch / "efs" / "out" / "stopped" / "field.npy"),
                                  ref_field)


def test_leftovers_of_a_killed_owner_are_removed_by_the_next_run(
        image: str, synthesized_config: dict, scratch: Path) -> None:
    script = (
        "import json, os, signal, sys; from pathlib import Path\n"
        "from tests.emulator.test_containers import _run\n"
        "job = _run(json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), 2, ['true'])\n"
        "job.setup(); print(job.tag, flush=True); os.kill(os.getpid(), signal.SIGKILL)\n")
    owner = subprocess.run([sys.executable, "-c", script, json.dumps(synthesized_config),
                            image, str(scratch)], cwd=REPO, capture_output=True, text=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    tag = owner.stdout.strip()
    assert owner.returncode == -9 and len(_left(tag)) == 2  # two pause containers left
    with _run(synthesized_config, image, scratch, 1, ["true"]):
        assert _left(tag) == []
    networks = docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert f"mnp-{tag}" not in networks


@pytest.mark.parametrize(("args", "message"), [
    (["--image", "mnp-no-such-image:x"], "image mnp-no-such-image:x is not in the local "
     "engine's store (hint: add --build"),
    (["--output-path", "/data/out"], "--output-path /data/out is not under the EFS mount"),
])
def test_run_local_refuses_what_cannot_run_before_starting_anything(
        image: str, project: Path, args: list[str], message: str) -> None:
    run = subprocess.run([sys.executable, "-m", "jobs", "run-local", "--nodes", "2", "--vcpus",
                          "1", "--memory", "1024", *args, "--", "true"], cwd=project,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr



@pytest.mark.parametrize("jobdef_secret", [False, True])
def test_every_node_gets_the_rendezvous_secret_once_per_run(jobdef_secret: bool,
                                                            tmp_path: Path) -> None:
    """The launcher refuses a multi-node job without it: a `secrets` entry, or one per run."""
    block = {"environment": [{"name": "MNP_RANKS_PER_NODE", "value": "1"}],
             "secrets": [{"name": "MNP_RENDEZVOUS_SECRET",
                          "valueFrom": "arn:aws:secretsmanager:us-east-1:1:secret:x"}]
             if jobdef_secret else []}
    job = LocalJob("t", 0, (block, block, block), (1000, 1000), None)
    runs = [ContainerJob(job, "unused", efs_dir=tmp_path, log_dir=tmp_path) for _ in (1, 2)]
    values = []
    for run in runs:
        run.nodes = [ContainerNode(i, f"10.214.0.{i + 2}", f"n{i}", f"p{i}", f"c{i}")
                     for i in range(3)]
        seen = {run.node_env(i)["MNP_RENDEZVOUS_SECRET"] for i in range(3)}
        assert len(seen) == 1 and len(seen.pop()) == 64
        values.append(run.node_env(0)["MNP_RENDEZVOUS_SECRET"])
        assert any("MNP_RENDEZVOUS_SECRET" in note for note in run.notes) != jobdef_secret
    assert values[0] != values[1]


def test_the_local_stacks_secret_is_made_once_and_kept_from_others(tmp_path: Path) -> None:
    first = stack_secret_values(tmp_path / "secret")
    assert stack_secret_values(tmp_path / "secret") == first  # every run and attempt
    assert len(first["MNP_RENDEZVOUS_SECRET"]) == 64
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    assert stack_secret_values(tmp_path / "other") != first  # another stack


def test_run_local_retries_by_the_job_definitions_strategy(image: str, project: Path,
                                                           scratch: Path) -> None:
    # exit 3 (rendezvous timeout) is retried; attempt 2 succeeds, with the same job id
    run = subprocess.run(
        [sys.executable, "-m", "jobs", "run-local", "--nodes", "2", "--vcpus", "1",
         "--memory", "1024", "--efs-dir", str(scratch / "efs"), "--log-dir",
         str(scratch / "logs"), "--image", image, "--json", "--", "sh", "-c",
         '[ "$AWS_BATCH_JOB_ATTEMPT" -ge 2 ] || exit 3'],
        cwd=project, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
        text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert (result["attempt"], result["exitCode"]) == (2, 0)
    assert "attempt 1 exited 3, which the retry rules retry: starting attempt 2" in run.stderr
    assert run.stderr.count(f"job {result['jobId']} attempt") == 2


# Every rank passes a barrier (the whole MPI world is up in both containers), then waits.
HOLD = ("from mpi4py import MPI; import time; c = MPI.COMM_WORLD; c.Barrier(); "
        "print('ready', flush=True) if c.rank == 0 else None; time.sleep(600)")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_to_run_local_removes_its_containers_and_network(
        image: str, project: Path, scratch: Path, sig: signal.Signals) -> None:
    # (SIGINT takes the same path, which the namespace emulator's test covers for all three.)
    run = subprocess.Popen(
        [sys.executable, "-m", "jobs", "run-local", "--nodes", "2", "--vcpus", "1",
         "--memory", "1024", "--efs-dir", str(scratch / "efs"), "--log-dir",
         str(scratch / "logs"), "--image", image, "--max-delay", "0.1", "--", "python", "-c",
         HOLD], cwd=project, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in run.stderr:
            found = re.search(r"on network mnp-([0-9a-f]{6})", line)
            if found:
                break
        tag = found.group(1)
        assert run.stdout.readline().strip() == "ready"
        assert len(_left(tag)) == 4  # two pause containers and two job containers
        run.send_signal(sig)
        _, err = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 128 + sig, err
    assert f"stopped by {signal.Signals(sig).name}" in err
    assert _left(tag) == []
    assert docker("network", "ls", "-q", "--filter", f"name=mnp-{tag}").stdout.split() == []
