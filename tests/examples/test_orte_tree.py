"""Open MPI 4 (ORTE, the LAMMPS example's Debian MPI) spawns its daemons as a tree across
containers, each with its own file system: the agent and every node's keys are where ORTE
looks for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.containers import ContainerJob
from tests.emulator.conftest import batch_job, container_skip_reason

_WHY = container_skip_reason()

# Each rank prints its host and the address its orted's ssh session came from.
ORIGIN = ('echo "ORIGIN $(hostname) $(tr "\\0" "\\n" < /proc/$PPID/environ | '
          'grep ^SSH_CONNECTION= | cut -d= -f2 | cut -d" " -f1)"')


@pytest.mark.containers
@pytest.mark.skipif(_WHY is not None, reason=f"no container engine: {_WHY}")
def test_a_child_container_starts_another_childs_orted(
        example_image, synthesized_config: dict, scratch: Path) -> None:
    image = example_image("lammps")
    # ORTE's radix 2 makes 4 nodes a tree of depth 2 (its default, 64, would be flat).
    env = {"MNP_HEARTBEAT_INTERVAL": "0.5", "MNP_HEARTBEAT_TIMEOUT": "5",
           "OMPI_MCA_routed_radix": "2"}
    with ContainerJob(batch_job(synthesized_config, 4, ["sh", "-c", ORIGIN], "example"), image,
                      efs_dir=scratch / "efs", log_dir=scratch / "logs", env=env) as job:
        job.start()
        code = job.wait(180)
        out, err = job.output(0)
        ips = [n.ip for n in job.nodes]
        names = {n.hostname: n.index for n in job.nodes}
    assert code == 0, err
    assert "openmpi4 mpiexec with 4 ranks" in err
    origin = {names[w[1]]: (w[2:] or ["-"])[0] for w in map(str.split, out.splitlines())
              if w[:1] == ["ORIGIN"]}
    # daemon i is node i (the hostfile's order): node 1's orted started node 3's
    assert origin == {0: "-", 1: ips[0], 2: ips[0], 3: ips[1]}
