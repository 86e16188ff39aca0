"""`run-local --min-nodes`: a run that outlives its nodes, each member as containers of the
image, the next one decided by the controller's own code (emulator/continuations.py)."""

from __future__ import annotations

import argparse
import json
import random
from typing import Any

from continuation.family import TAG_MIN_NODES
from emulator.containers import ContainerJob
from emulator.continuations import ContinuedRun, Reclaim
from emulator.jobdef import LocalJob
from jobs import validate
from jobs.context import Context
from jobs.errors import InvalidInput


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--min-nodes (as `submit` will have it) and the emulation's own --reclaim-after."""
    parser.add_argument("--min-nodes", type=validate.nodes, metavar="M",
                        help="a run that outlives its nodes: when a job ends by node loss "
                        "(4) or a stop (143), continue from its checkpoint on the nodes left, "
                        "never fewer than M, as the stack's controller decides "
                        "(continuation/README.md)")
    parser.add_argument("--reclaim-after", type=validate.nodes, action="append", default=[],
                        metavar="STEPS", help="emulation only, with --min-nodes: the Nth use "
                        "stops a child node of the run's Nth job once that job has run STEPS "
                        "steps (read from the solver's --log-every lines), as a Spot reclaim "
                        "would: SIGTERM, SIGKILL 30 s later, and that node's capacity is gone")


def check(args: argparse.Namespace, staged: bool) -> None:
    """Refuse, before anything starts, what the continued run cannot do."""
    if args.reclaim_after and not args.min_nodes:
        raise InvalidInput("--reclaim-after needs --min-nodes (a run to continue)")
    if not args.min_nodes:
        return
    if args.min_nodes > args.nodes:
        raise InvalidInput(f"--min-nodes {args.min_nodes} is more than --nodes {args.nodes}: "
                           f"allowed 1..{args.nodes}")
    if len(args.reclaim_after) >= args.nodes:
        raise InvalidInput(f"{len(args.reclaim_after)} --reclaim-after for {args.nodes} "
                           f"nodes: at most {args.nodes - 1} (each takes a node away)")
    if staged:
        raise InvalidInput("--min-nodes with --stage-in/--stage-out is not emulated: run "
                           "without staging")


def tags(args: argparse.Namespace) -> dict[str, str]:
    """The tag that makes the run one the controller continues (continuation/family.py)."""
    return {TAG_MIN_NODES: str(args.min_nodes)} if args.min_nodes else {}


def run(ctx: Context, args: argparse.Namespace, definition: dict[str, Any],
        request: dict[str, Any], owner: tuple[int, int], stack: dict[str, str]) -> int:
    """Every member of the run; the exit code of the last."""
    def make_job(local: LocalJob, job_id: str) -> ContainerJob:
        return ContainerJob(local, args.image, efs_dir=args.efs_dir.resolve(),
                            log_dir=args.log_dir.resolve(), job_id=job_id,
                            max_delay=args.max_delay, secret_values=stack)

    members = ContinuedRun(definition, request, make_job, owner=owner,
                           reclaims=[Reclaim(s) for s in args.reclaim_after],
                           rng=random.Random(),
                           on_event=lambda text: ctx.err.print(f"run-local: {text}")).run()
    last = members[-1]
    if last.summary_line:
        print(last.summary_line)
    if args.json:
        print(json.dumps({"jobs": [{"jobId": m.job_id, "nodes": m.nodes,
                                    "exitCode": m.exit_code,
                                    "decision": str(m.decision.action if m.decision else "")}
                                   for m in members], "exitCode": last.exit_code}))
    return last.exit_code
