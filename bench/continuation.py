"""Continuation overhead: a 4-node run in the real image reclaimed twice, 4 -> 3 -> 2 nodes.

Each reclaim stops one child's container as ECS stops a task (SIGTERM, SIGKILL 30 s later);
continuation.decide (the controller's code) decides the next job and the emulator starts it
(emulator/continuations.py). Per continuation: SIGTERM to the continuation's first step, in
three parts (the stop: checkpoint and the main node's exit; the emulator between jobs:
removing the old containers, decide(), the new job's network and pause containers; the new
job's start to its first step), and the steps computed again. Batch's own scheduling between
the FAILED job and the continuation's start (the controller's event, SubmitJob, placement and
instance start) is not in these figures: AWS documents no figure for it, so it is unmeasured
here (continuation/README.md).
"""

from __future__ import annotations

import json
import secrets
import statistics
import tempfile
from pathlib import Path

from bench.common import BenchError, Options, Row, Section
from bench.start import bench_image, stack_config

STEPS = {True: 120, False: 400}
RECLAIM_AFTER = 20  # steps into each member: both reclaims land early in their job


def _run(config: dict, image: str, steps: int) -> list:  # noqa: ANN401 - emulator types
    from emulator.containers import ContainerJob
    from emulator.continuations import ContinuedRun, Reclaim
    from emulator.jobdef import access_point_owner, multinode_definition
    from jobs.request import JobSpec, submit_request

    definition = multinode_definition(config)
    request = submit_request(JobSpec(
        name="bench-continuation", queue="local", definition=definition["jobDefinitionName"],
        nodes=4, vcpus=1, memory=1024, output_path="/mnt/efs/out", attempts=1,
        command=("python", "-m", "solver", "heat", "--nx", "129", "--ny", "97", "--steps",
                 str(steps), "--checkpoint-every", "10", "--log-every", "1", "--no-png"),
        tags={"mnp:min-nodes": "2"}))
    # One stack secret for every job: checkpoint keys derive from it (launcher/jobkeys.py).
    stack = {"MNP_RENDEZVOUS_SECRET": secrets.token_hex(32)}
    with tempfile.TemporaryDirectory(prefix="bench-continuation-") as scratch:
        def make_job(local, job_id):  # noqa: ANN001, ANN202
            return ContainerJob(local, image, efs_dir=Path(scratch) / "efs",
                                log_dir=Path(scratch) / "logs", job_id=job_id, max_delay=0.0,
                                secret_values=stack)

        members = ContinuedRun(definition, request, make_job,
                               owner=access_point_owner(config),
                               reclaims=[Reclaim(RECLAIM_AFTER)] * 2).run()
    if [m.nodes for m in members] != [4, 3, 2] or members[-1].exit_code != 0:
        raise BenchError("the reclaimed run did not go 4 -> 3 -> 2 nodes to exit 0: "
                         + "; ".join(f"{m.nodes} nodes exit {m.exit_code}" for m in members))
    return members


def measure(opts: Options) -> Section:
    """One reclaimed run (two continuations); each continuation's overhead and recomputation."""
    sec = Section("continuation", "Continuation after a reclaim (containers of the image)")
    image = bench_image(sec)
    if image is None:
        return sec
    from emulator.continuations import overhead

    rows = overhead(_run(stack_config(opts), image, STEPS[opts.quick]))
    for k, row in enumerate(rows, start=1):
        sec.rows.append(Row(
            f"continuation {k} ({row['nodes']} nodes): SIGTERM to its first step",
            row["seconds"], "s",
            f"stop {row['stop']:.1f} s + between jobs {row['decide_and_start']:.1f} s + start "
            f"{row['first_step']:.1f} s"))
        sec.rows.append(Row(f"continuation {k}: steps computed again", row["recomputed"],
                            "steps", f"predecessor exited {row['exit_code']}"))
    sec.data = {"continuations": rows}
    sec.notes.append(
        f"A 4-node heat run (129x97, --vcpus 1, checkpoint every 10 steps) reclaimed "
        f"{RECLAIM_AFTER} steps into each job. Median SIGTERM to first step: "
        f"{statistics.median(r['seconds'] for r in rows):.1f} s. Batch's scheduling of the "
        "continuation (event delivery, SubmitJob to RUNNING) is excluded and unmeasured: AWS "
        "documents no figure for it. Raw: " + json.dumps(rows))
    return sec
