"""Third-party MPI applications in their own images, with the launcher added as the examples'
READMEs say: run on 3 containers with awsvpc's `ecs-eth0`, as Batch runs them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
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
HF = ["BAGEL", "/opt/bagel/h2o-hf.json"]
# BAGEL prints the SCF energy to 1e-8 hartree and the dipole to 1e-6 a.u. The SCF is
# converged to 1e-10 and the energy's error is quadratic in the density's, so 1 and 3 ranks
# (which sum the distributed integrals in different orders, ~1e-13) print the same digits
# but for a rounding flip of the last one: 1.5 units of it. A rank's lost share of the
# integrals, or a wrong reduction, moves the energy by millihartrees.
HF_ENERGY_ABS, HF_DIPOLE_ABS = 1.5e-8, 1.5e-6
# Long enough that Batch's stop always comes mid-run.
LONG = {"lammps": ["lmp", "-in", "/opt/lammps/in.melt", "-log", "none", "-var", "steps",
                   "100000000"],
        "bagel": ["sleep", "300"]}
FLAVOUR = {"lammps": "openmpi4", "bagel": "mpich"}


def _job(config: dict, image: str, scratch: Path, nodes: int, command: list[str],
         env: Mapping[str, str] | None = None) -> ContainerJob:
    return ContainerJob(batch_job(config, nodes, command, "example"), image,
                        efs_dir=scratch / "efs", log_dir=scratch / "logs",
                        env={**FAST_HEARTBEAT, **(env or {})})


def _run(config: dict, image: str, scratch: Path, nodes: int, command: list[str]) -> tuple[
        int, str, str]:
    with _job(config, image, scratch, nodes, command) as job:
        job.start()
        code = job.wait(180)
        out, err = job.output(0)
    return code, out, err


def _one_and_three(image: str, config: dict, scratch: Path, command: list[str],
                   name: str) -> tuple[str, str, str]:
    """`command` as a 1-node job, then on 3 nodes: (1-node stdout and stderr, 3-node stdout)."""
    code, ref_out, ref_err = _run(config, image, scratch, 1, command)
    assert code == 0, f"{ref_err}\n--- stdout:\n{ref_out[-3000:]}"
    code, out, err = _run(config, image, scratch, 3, command)
    assert code == 0, f"{err}\n--- stdout:\n{out[-3000:]}"
    assert f"{FLAVOUR[name]} mpiexec with 3 ranks" in err  # detected from the image's MPI
    return ref_out, ref_err, out


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _thermo(out: str) -> tuple[int, dict[str, float]]:
    """The rank count and the last row of LAMMPS's thermodynamic table."""
    lines = out.splitlines()
    head = max(i for i, line in enumerate(lines) if line.split()[:1] == ["Step"])
    loop = next(i for i in range(head, len(lines)) if lines[i].startswith("Loop time"))
    procs = int(re.search(r" on (\d+) procs for ", lines[loop]).group(1))
    row = dict(zip(lines[head].split(), map(float, lines[loop - 1].split()), strict=True))
    return procs, row


def _scf(out: str) -> tuple[float, tuple[float, ...]]:
    """BAGEL's converged SCF energy (its last iteration's row) and dipole moment."""
    head, converged, _ = out.partition("* SCF iteration converged.")
    assert converged, out[-2000:]
    rows = re.findall(r"^\s*\d+\s+(-\d+\.\d+)\s+\d+\.\d+\s+\d+\.\d+\s*$", head, re.M)
    dipole = re.search(r"Permanent dipole moment:\s*\(\s*(\S+),\s*(\S+),\s*(\S+)\s*\)", out)
    assert rows and dipole, out[-2000:]
    return float(rows[-1]), tuple(float(x) for x in dipole.groups())


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
    ref_out, _, out = _one_and_three(example_image("lammps"), synthesized_config, scratch,
                                     MELT, "lammps")
    ranks, ref = _thermo(ref_out)
    assert ranks == 1 and ref["Step"] == 100
    ranks, row = _thermo(out)
    assert ranks == 3 and row["Step"] == 100
    for key in ("Temp", "E_pair", "TotEng", "Press"):
        assert row[key] == pytest.approx(ref[key], rel=MELT_RTOL, abs=0), key


@pytest.mark.containers
@needs_engine
def test_bagel_hartree_fock_on_3_nodes_agrees_with_one_process(
        example_image, synthesized_config: dict, scratch: Path) -> None:
    ref_out, ref_err, out = _one_and_three(example_image("bagel"), synthesized_config,
                                           scratch, HF, "bagel")
    assert "mpich (/usr/bin/mpiexec)" in ref_err  # detected from Debian's MPICH 4.0
    energy, dipole = _scf(ref_out)
    assert energy == pytest.approx(-76.0267, abs=1e-4)  # water, HF/cc-pVDZ
    assert _scf(out)[0] == pytest.approx(energy, abs=HF_ENERGY_ABS, rel=0)
    assert _scf(out)[1] == pytest.approx(dipole, abs=HF_DIPOLE_ABS, rel=0)


# Each rank says where it runs, which interface UCX may use, what was forwarded and whether
# the rendezvous secret reached it.
WHERE = ('echo "$(hostname) ${UCX_NET_DEVICES:-unset} $(cat /sys/class/net/$UCX_NET_DEVICES/'
         'operstate) ${AWS_BATCH_JOB_ID:-none} ${MNP_RENDEZVOUS_SECRET:-nosecret} '
         '${BAGEL_NUM_THREADS:-unset}"')


@pytest.mark.containers
@needs_engine
def test_hydra_starts_a_rank_on_every_node_held_to_its_own_interface(
        example_image, synthesized_config: dict, scratch: Path) -> None:
    image = example_image("bagel")
    with _job(synthesized_config, image, scratch, 3, ["sh", "-c", WHERE]) as job:
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
    assert {r[5] for r in ranks} == {"1"}  # the image's MNP_FORWARD_ENV


def _all_ranks_up(job: ContainerJob, name: str) -> None:
    """Wait until the main node launched the world, then give every node's ranks time."""
    banner = f"{FLAVOUR[name]} mpiexec with 3 ranks"
    _wait_for(lambda: banner in job.output(0)[1], 120, banner)
    if name == "lammps":  # its first thermodynamic row: every rank is computing
        _wait_for(lambda: "Step" in job.output(0)[0], 60, "LAMMPS's first row")
    else:
        time.sleep(3)  # Hydra's proxies and ranks up on every node


@pytest.mark.containers
@needs_engine
def test_a_killed_node_ends_an_mpich_job_with_exit_4(
        example_image, synthesized_config: dict, scratch: Path) -> None:
    image = example_image("bagel")
    with _job(synthesized_config, image, scratch, 3, LONG["bagel"]) as job:
        job.start()
        _all_ranks_up(job, "bagel")
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


@pytest.mark.containers
@needs_engine
@pytest.mark.parametrize("name", ["lammps", "bagel"])
def test_batch_stop_ends_every_node_with_143(
        name: str, example_image, synthesized_config: dict, scratch: Path) -> None:
    image = example_image(name)
    with _job(synthesized_config, image, scratch, 3, LONG[name]) as job:
        job.start()
        _all_ranks_up(job, name)
        job.stop_job()  # SIGTERM to every container, SIGKILL 30 s later
        codes = job.wait_all(10)
        err = job.output(0)[1]
    # 143, not 137: every node ended on the SIGTERM, before the SIGKILL
    assert codes == {0: 143, 1: 143, 2: 143}, err
    assert "SIGTERM: forwarding to local ranks" in err


@pytest.mark.containers
@needs_engine
@pytest.mark.parametrize("name", ["lammps", "bagel"])
def test_a_node_that_never_starts_ends_the_job_with_exit_3(
        name: str, example_image, synthesized_config: dict, scratch: Path) -> None:
    image = example_image(name)
    with _job(synthesized_config, image, scratch, 3, LONG[name],
              env={"MNP_RENDEZVOUS_TIMEOUT": "5"}) as job:
        job.start(skip=[2])
        code = job.wait(60)
        err = job.output(0)[1]
        codes = job.wait_all(30)
    assert code == 3, err
    assert "rendezvous timeout after 5s: node(s) 2 never reported" in err
    assert f", {FLAVOUR[name]} (" in err  # the flavour was detected: this MPI's path
    assert set(codes) == {0, 1} and None not in codes.values()


# This machine has no EFA device (run-local's rendering passes none in). Open MPI images are
# told ofi-tcp, as a user without EFA would: the same OFI path (pml cm, mtl ofi) over libfabric's
# tcp provider. MPICH's image runs as the EFA definition says (MNP_NETWORK=efa: its own TCP).
WITHOUT_EFA_DEVICES = {"lammps": {"MNP_NETWORK": "ofi-tcp"}, "bagel": {}}
EXAMPLE_RUN = {"lammps": MELT, "bagel": HF}


@pytest.mark.containers
@needs_engine
@pytest.mark.parametrize("name", ["lammps", "bagel"])
def test_each_example_passes_the_efa_definitions_network_check_and_runs(
        name: str, example_image, efa_config: dict, scratch: Path) -> None:
    with _job(efa_config, example_image(name), scratch, 3, EXAMPLE_RUN[name],
              env=WITHOUT_EFA_DEVICES[name]) as job:
        job.start()
        code = job.wait(240)
        out, err = job.output(0)
        child = job.output(1)[1]
    assert code == 0, f"{err[-3000:]}\n--- stdout:\n{out[-3000:]}"
    # No solver in these images: the launcher's own check ran, and said so.
    assert "network check: launcher TCP pair check (no solver in this image: " in err
    assert "network check passed: 3 pairs of 3 nodes" in err
    report = json.loads(next((scratch / "efs").rglob("network.json")).read_text())
    assert report["ok"] is True and report["which"].startswith("launcher TCP pair check")
    assert sorted(p["ranks"] for p in report["check"]["pairs"]) == [[0, 1], [0, 2], [1, 2]]
    if name == "bagel":
        assert "MNP_NETWORK=efa, but mpich has no libfabric path" in err
        assert "MNP_NETWORK=efa, but mpich has no libfabric path" in child
        assert _scf(out)[0] == pytest.approx(-76.0267, abs=1e-4)
    else:
        assert "MNP_NETWORK=ofi-tcp: forcing --mca pml cm --mca mtl ofi" in err
        assert _thermo(out)[0] == 3
