"""`submit --min-nodes`: the tags that make a job the first of a run the continuation
controller manages (continuation/README.md, "How members are linked").

The first job carries the run's settings; `mnp:family`, `mnp:generation` and
`mnp:previous` belong to continuations, which the controller tags itself. The first job
writes its checkpoints to its own default,
`OUTPUT_PATH/<job id>/checkpoints` (docs/CONTRACTS.md "Files on the shared file system"),
which is the directory every continuation resumes from (`Family.checkpoint_dir`). That
property reads the first job's OUTPUT_PATH from its description, which holds SubmitJob's
nodeOverrides only if Batch reflects them there (unverified: continuation/README.md, "What
only a real account can show"; moto does not), so once Batch has given the job its id the
CLI tags it with `mnp:checkpoint`, which `Family.checkpoint_dir` reads first.
"""

from __future__ import annotations

import argparse
import posixpath
from typing import Any

from continuation.family import (
    DEFAULT_MAX_GENERATIONS,
    DEFAULT_RUNNABLE_DEADLINE_S,
    TAG_CHECKPOINT,
    TAG_MAX_GENERATIONS,
    TAG_MIN_NODES,
    TAG_RUNNABLE_DEADLINE,
)
from jobs import validate
from jobs.context import Context
from jobs.errors import InvalidInput, JobsError

# The solver flag that would put checkpoints outside the run's one directory.
CHECKPOINT_FLAG = "--checkpoint-dir"
# The controller checks deadlines on a 5-minute sweep (continuation/README.md, "Where the
# controller runs"): a shorter deadline would not be honoured. A day bounds a typo.
MIN_RUNNABLE_DEADLINE_S = 300
MAX_RUNNABLE_DEADLINE_S = 86400

min_nodes = validate.int_range(1, validate.MAX_NODES, "--min-nodes")
max_generations = validate.int_range(1, 1000, "--max-generations")
runnable_deadline = validate.int_range(MIN_RUNNABLE_DEADLINE_S, MAX_RUNNABLE_DEADLINE_S,
                                       "--runnable-deadline (seconds)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--min-nodes and the two run bounds it enables."""
    parser.add_argument(
        "--min-nodes", type=min_nodes, metavar="N",
        help="make the job the first of a run that outlives lost nodes, stops and capacity "
        "shortfalls: the account's continuation controller resubmits it from its newest "
        "checkpoint on as many nodes as can be had, never fewer than N (1..--nodes); "
        "needs --output-path")
    parser.add_argument(
        "--max-generations", type=max_generations, metavar="G",
        help=f"jobs the run may use in all, the first included (with --min-nodes; default "
        f"{DEFAULT_MAX_GENERATIONS})")
    parser.add_argument(
        "--runnable-deadline", type=runnable_deadline, metavar="SECONDS",
        help="seconds a member may wait RUNNABLE for capacity before the controller moves or "
        f"shrinks it ({MIN_RUNNABLE_DEADLINE_S}..{MAX_RUNNABLE_DEADLINE_S}, with "
        f"--min-nodes; default {DEFAULT_RUNNABLE_DEADLINE_S})")


def tags(args: argparse.Namespace) -> dict[str, str]:
    """The run's tags for the first job ({} without --min-nodes); InvalidInput (exit 2) for
    flags that do not fit together. Checked before any AWS call."""
    if args.min_nodes is None:
        stray = [flag for flag, value in (("--max-generations", args.max_generations),
                                          ("--runnable-deadline", args.runnable_deadline))
                 if value is not None]
        if stray:
            raise InvalidInput(f"{' and '.join(stray)} bound a run: add --min-nodes N")
        return {}
    if args.min_nodes > args.nodes:
        raise InvalidInput(f"--min-nodes {args.min_nodes} is out of range: must be between 1 "
                           f"and --nodes ({args.nodes})")
    if getattr(args, "spot", False):
        raise InvalidInput("--min-nodes continues a multi-node run; --spot submits a "
                           "single-node job: drop one of them")
    if not args.output_path:
        raise InvalidInput("--min-nodes needs --output-path: every job of the run writes its "
                           "checkpoints to OUTPUT_PATH/<first job id>/checkpoints")
    if any(word == CHECKPOINT_FLAG or word.startswith(CHECKPOINT_FLAG + "=")
           for word in args.job_command):
        raise InvalidInput(f"--min-nodes: drop {CHECKPOINT_FLAG} from the command; the run "
                           "keeps its checkpoints in OUTPUT_PATH/<first job id>/checkpoints, "
                           "where every continuation resumes from")
    return {
        TAG_MIN_NODES: str(args.min_nodes),
        TAG_MAX_GENERATIONS: str(args.max_generations or DEFAULT_MAX_GENERATIONS),
        TAG_RUNNABLE_DEADLINE: str(args.runnable_deadline or DEFAULT_RUNNABLE_DEADLINE_S),
    }


def tag_checkpoint(ctx: Context, result: dict[str, object], output_path: str) -> str:
    """Tag the submitted first job with its run's checkpoint directory; returns it. A failed
    TagResource leaves the job running, so it is a warning naming what it costs."""
    directory = posixpath.join(output_path, str(result["jobId"]), "checkpoints")
    try:
        ctx.api.tag(str(result["jobArn"]), {TAG_CHECKPOINT: directory})
    except JobsError as exc:
        ctx.err.print(f"warning: could not tag {result['jobId']} with {TAG_CHECKPOINT} "
                      f"({exc.line()}): the controller will look for OUTPUT_PATH in its "
                      "description instead")
    return directory


def summary(job_id: str, checkpoint_dir: str, run_tags: dict[str, str]) -> dict[str, Any]:
    """The run as `submit --json` reports it: its id (the first job's) and its bounds."""
    return {
        "id": job_id,
        "minNodes": int(run_tags[TAG_MIN_NODES]),
        "maxGenerations": int(run_tags[TAG_MAX_GENERATIONS]),
        "runnableDeadlineSeconds": int(run_tags[TAG_RUNNABLE_DEADLINE]),
        "checkpointDir": checkpoint_dir,
    }
