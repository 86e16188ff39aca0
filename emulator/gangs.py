"""A Spot gang (launcher/README.md, "Spot gangs") as containers of the real image.

Batch runs a gang as an array job of single-node jobs on the Spot queue's job definition:
host network mode, one member per instance. Here each member is its own container on one
user-defined bridge with its own address and host name (what "its own instance" gives it);
the address stands in for the instance's private address, and unlike awsvpc no `ecs-eth0` is
added. Members start in random order (array children are independent jobs), each with the
variables Batch sets in an array child; any of them can be held back and started later.
"""

from __future__ import annotations

from collections.abc import Iterable

from emulator.containers import ContainerJob
from launcher.gang import ARRAY_INDEX_ENV, ARRAY_SIZE_ENV, CHILD_SEPARATOR


class ContainerGang(ContainerJob):
    """Run an array job (emulator.jobdef.apply_array_request) as one container per child."""

    awsvpc = False  # the Spot job definition has no networkConfiguration: host network

    def batch_env(self, index: int) -> dict[str, str]:
        """What Batch sets in array child `index`: its id `<parent>:<index>`, the index and
        the size, and none of the multi-node variables
        (docs.aws.amazon.com/batch/latest/userguide/job_env_vars.html; array_jobs.html)."""
        return {
            "AWS_BATCH_JOB_ID": f"{self.job_id}{CHILD_SEPARATOR}{index}",
            "AWS_BATCH_JOB_ATTEMPT": str(self.attempt),
            ARRAY_INDEX_ENV: str(index),
            ARRAY_SIZE_ENV: str(self.job.num_nodes),
            "AWS_BATCH_CE_NAME": "local", "AWS_BATCH_JQ_NAME": "local",
            "AWS_EXECUTION_ENV": "AWS_ECS_EC2",
        }

    def start(self, skip: Iterable[int] = ()) -> None:
        """Every member not in `skip`, in random order after random delays (index 0 is not
        started first: Batch starts array children as capacity comes)."""
        skipped = set(skip)
        members = [n.index for n in self.nodes if n.index not in skipped]
        self._rng.shuffle(members)
        if members:
            self.start_in_order(members[0], members[1:])

    def wait_member(self, index: int, timeout: float) -> int:
        """Member `index`'s exit code (subprocess.TimeoutExpired after `timeout` s)."""
        return self._wait_index(index, timeout)
