"""Third-party MPI applications in their own images, with the launcher added as the examples'
READMEs say: run on 3 containers with awsvpc's `ecs-eth0`, as Batch runs them."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulator.containers import ContainerJob
from tests.emulator.conftest import batch_job, container_skip_reason

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.parent.name for p in (REPO / "examples").glob("*/Dockerfile"))
_WHY = container_skip_reason()
needs_engine = pytest.mark.skipif(_WHY is not None, reason=f"no container engine: {_WHY}")

FAST_HEARTBEAT = {"MNP_HEARTBEAT_INTERVAL": "0.5", "MNP_HEARTBEAT_TIMEOUT": "5"}
MELT = ["lmp", "-in", "/opt/lammps/in.melt", "-log", "none", "-var", "steps", "100"]
# LAMMPS sums forces in an order that depends on how atoms are split across ranks, so 3
# ranks and 1 differ by rounding (~1e-16) at step 0; the melt's chaotic dynamics amplify
# that by about e^(lambda t) over t = 100 steps x 0.005 tau. Measured here after 100 steps:
# E_pair -4.78756088755815 (1 rank) vs -4.78756088755819 (3 nodes), 1e-14 relative. 1e-9
# leaves five orders of margin and still catches any real error (a lost atom or a wrong
# force moves the energies by 1e-4 or more).
MELT_RTOL = 1e-9


def _run(config: dict, image: str, scratch: Path, nodes: int, command: list[str]) -> tuple[
        int, str, str]:
    with ContainerJob(batch_job(config, nodes, command, 'example'), image, efs_dir=scratch / "efs",
                      log_dir=scratch / "logs", env=FAST_HEARTBEAT) as job:
        job.start()
        code = job.wait(180)
        out, err = job.output(0)
    return code, out, err


def _thermo(out: str) -> tuple[int, dict[str, float]]:
    """The rank count and the last row of LAMMPS's thermodynamic table."""
    lines = out.splitlines()
    head = max(i for i, line in enumerate(lines) if line.split()[:1] == ["Step"])
    loop = next(i for i in range(head, len(lines)) if lines[i].startswith("Loop time"))
    procs = int(re.search(r" on (\d+) procs for ", lines[loop]).group(1))
    row = dict(zip(lines[head].split(), map(float, lines[loop - 1].split()), strict=True))
    return procs, row


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_is_complete_and_passes_hadolint(name: str) -> None:
    directory = REPO / "examples" / name
    text = (directory / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=debian:bookworm-slim" in text
    assert "pip install --no-cache-dir --disable-pip-version-check /tmp/launcher" in text
    assert re.search(r"^USER 1000:1000$", text, re.M)
    assert 'ENTRYPOINT ["mnp-launch"]' in text
    readme = (directory / "README.md").read_text()
    for step in (f"docker build -f examples/{name}/Dockerfile", "--image-tag",
                 "python -m jobs run-local --image"):
        assert step in readme, step
    hadolint = Path(sys.executable).parent / "hadolint"
    proc = subprocess.run([str(hadolint), str(directory / "Dockerfile")], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.containers
@needs_engine
def test_lammps_melt_on_3_nodes_agrees_with_one_process(
        example_image, synthesized_config: dict, scratch: Path) -> None:
    image = example_image("lammps")
    code, out, err = _run(synthesized_config, image, scratch, 1, MELT)
    assert code == 0, err
    ranks, ref = _thermo(out)
    assert ranks == 1 and ref["Step"] == 100
    code, out, err = _run(synthesized_config, image, scratch, 3, MELT)
    assert code == 0, err
    assert "openmpi4 mpiexec with 3 ranks" in err  # detected from Debian's Open MPI 4.1
    ranks, row = _thermo(out)
    assert ranks == 3 and row["Step"] == 100
    for key in ("Temp", "E_pair", "TotEng", "Press"):
        assert row[key] == pytest.approx(ref[key], rel=MELT_RTOL, abs=0), key


# Each rank says where it runs, which interface UCX may use, what was forwarded and whether
# the rendezvous secret reached it.
WHERE = ('echo "$(hostname) ${UCX_NET_DEVICES:-unset} $(cat /sys/class/net/$UCX_NET_DEVICES/'
         'operstate) ${AWS_BATCH_JOB_ID:-none} ${MNP_RENDEZVOUS_SECRET:-nosecret}"')


@pytest.mark.containers
@needs_engine
def test_hydra_starts_a_rank_on_every_node_held_to_its_own_interface(
        example_image, synthesized_config: dict, scratch: Path) -> None:
    image = example_image("scalapack")
    with ContainerJob(batch_job(synthesized_config, 3, ["sh", "-c", WHERE], "example"), image,
                      efs_dir=scratch / "efs", log_dir=scratch / "logs",
                      env=FAST_HEARTBEAT) as job:
        job.start()
        code = job.wait(120)
        out, err = job.output(0)
        hosts = {n.hostname for n in job.nodes}
        job_id = job.job_id
    assert code == 0, err
    assert "mpich mpiexec with 3 ranks" in err  # detected from Hydra's banner
    ranks = [line.split() for line in out.splitlines()]
    assert {r[0] for r in ranks} == hosts and len(ranks) == 3
    # the interface holding the node's own address (the ENI's stand-in), never ecs-eth0
    assert all(r[1] not in ("unset", "ecs-eth0") and r[2] == "up" for r in ranks), ranks
    assert {r[3] for r in ranks} == {f"{job_id}#0"}  # forwarded from the main node
    assert {r[4] for r in ranks} == {"nosecret"}


@pytest.mark.containers
@needs_engine
def test_a_killed_node_ends_an_mpich_job_with_exit_4(
        example_image, synthesized_config: dict, scratch: Path) -> None:
    image = example_image("scalapack")
    with ContainerJob(batch_job(synthesized_config, 3, ["sleep", "300"], "example"), image,
                      efs_dir=scratch / "efs", log_dir=scratch / "logs",
                      env=FAST_HEARTBEAT) as job:
        job.start()
        deadline = time.monotonic() + 120
        while "mpich mpiexec with 3 ranks" not in job.output(0)[1]:
            assert time.monotonic() < deadline, job.output(0)[1]
            time.sleep(0.2)
        time.sleep(3)  # Hydra's proxies and ranks up on every node
        job.kill_node(2)
        began = time.monotonic()
        code = job.wait(90)
        took = time.monotonic() - began
        err = job.output(0)[1]
        codes = job.wait_all(60)
    assert code == 4, err
    assert "node 2 lost mid-run" in err
    assert took < 20, took  # bounded by the 5 s heartbeat timeout
    assert codes[1] == 0 and None not in codes.values()
