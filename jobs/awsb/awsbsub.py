"""awsbsub: submit a script or command to the stack's multi-node queue, ParallelCluster style."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from jobs import validate
from jobs.awsb import entry
from jobs.awsb.script import node_command
from jobs.commands.common import dry_run, preflight
from jobs.context import Context
from jobs.errors import InvalidInput
from jobs.request import JobSpec, submit_request

PROG = "awsbsub"
T = TypeVar("T")
# Batch SubmitJob dependsOn: at most 20 jobs; type N_TO_N or SEQUENTIAL (array jobs only).
MAX_DEPENDENCIES = 20
DEPENDENCY_TYPES = ("N_TO_N", "SEQUENTIAL")
# ParallelCluster's --env all left these out (awsbsub.py, _get_env_key_value_list).
ENV_BLACKLIST = ("HOME", "LD_LIBRARY_PATH", "PATH", "PWD", "TERM", "TERMCAP", "USER", "VCPUS")
# ...and never exported these prefixes; AWS_BATCH* are Batch's own, refused by SubmitJob.
ENV_EXCLUDED_PREFIXES = ("PCLUSTER_", "AWS_", "LESS_TERMCAP_")
# Variables every rank gets from the main node (launcher/README.md, Settings).
FORWARD_ENV = "MNP_FORWARD_ENV"
STDIN_NAME = "STDIN"  # ParallelCluster's job name for a script read from stdin


def build_parser() -> argparse.ArgumentParser:
    """ParallelCluster's awsbsub flags (awsbatch-cli/src/awsbatch/awsbsub.py)."""
    p = entry.parser(PROG, "Submits jobs to the stack's job queue (a multi-node job of "
                     "-n nodes; the script runs on every MPI rank).")
    p.add_argument("-jn", "--job-name", type=validate.job_name,
                   help="up to 128 letters, digits, '-', '_'; starts alphanumeric (default: the "
                   "command's name, or STDIN)")
    p.add_argument("-cf", "--command-file", action="store_true",
                   help="COMMAND is a script file to run on the nodes (its text travels in the "
                   "job's command)")
    p.add_argument("-w", "--working-dir", type=validate.absolute_path, metavar="DIR",
                   help="job working directory on the shared file system (under the EFS mount); "
                   "default PARENT/job-<job id>")
    p.add_argument("-pw", "--parent-working-dir", type=validate.absolute_path, metavar="PARENT",
                   help="parent of the job-<job id> working directory (default: the EFS mount)")
    p.add_argument("-if", "--input-file", action="append", metavar="FILE",
                   help="not supported: put input files on the shared file system")
    p.add_argument("-p", "--vcpus", type=validate.vcpus,
                   help="vCPUs per node, also the MPI ranks per node (default: the job "
                   "definition's)")
    p.add_argument("-m", "--memory", type=validate.memory, metavar="MIB",
                   help="memory per node in MiB (default: the job definition's)")
    p.add_argument("-e", "--env", metavar="NAMES",
                   help="comma-separated names of variables of this shell to export to every "
                   "rank, or 'all' (less --env-blacklist and PCLUSTER_*, AWS_* names)")
    p.add_argument("-eb", "--env-blacklist", metavar="NAMES",
                   help=f"with --env all: names not to export (default: "
                   f"{','.join(ENV_BLACKLIST)})")
    p.add_argument("-r", "--retry-attempts", type=validate.attempts, metavar="N",
                   help=f"attempts 1..{validate.MAX_ATTEMPTS} with the exit-code retry rules "
                   "(default: the job definition's retry strategy)")
    p.add_argument("-t", "--timeout", type=validate.timeout, metavar="S",
                   help=f"per-attempt time limit in seconds (at least {validate.MIN_TIMEOUT_S})")
    p.add_argument("-n", "--nodes", type=validate.nodes, default=1,
                   help=f"number of nodes, 1..{validate.MAX_NODES} (default 1)")
    p.add_argument("-a", "--array-size", type=int, metavar="N",
                   help="not supported: Batch refuses arrays of multi-node jobs")
    p.add_argument("-d", "--depends-on", metavar="DEPS",
                   help="jobs to wait for: jobId=ID[,type=N_TO_N|SEQUENTIAL];... "
                   f"(at most {MAX_DEPENDENCIES})")
    p.add_argument("-aws", "--awscli", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--dry-run", action="store_true",
                   help="print the SubmitJob request as JSON; send nothing")
    p.add_argument("--no-preflight", action="store_true",
                   help="skip the jobs CLI's preflight checks")
    p.add_argument("command", nargs="?",
                   help="the command to run, or the script (with -cf); none: read a script "
                   "from stdin")
    p.add_argument("arguments", nargs=argparse.REMAINDER,
                   help="arguments of the command or script")
    p.set_defaults(image_tag=None)
    return p


def dependencies(value: str | None) -> list[dict[str, str]]:
    """`jobId=ID[,type=T];...` as SubmitJob's dependsOn."""
    if not value:
        return []
    found = []
    for part in [p.strip() for p in value.split(";") if p.strip()]:
        fields: dict[str, str] = {}
        for pair in re.split(r"[\s,]+", part):
            key, sep, val = pair.partition("=")
            if not sep or key not in ("jobId", "type") or not val or key in fields:
                raise InvalidInput(f"--depends-on {part!r} is not jobId=ID[,type=TYPE]")
            fields[key] = val
        if "jobId" not in fields:
            raise InvalidInput(f"--depends-on {part!r} names no jobId")
        validate_or_fail(validate.job_id, fields["jobId"], "--depends-on")
        if fields.get("type", DEPENDENCY_TYPES[0]) not in DEPENDENCY_TYPES:
            raise InvalidInput(f"--depends-on type {fields['type']!r} is not one of "
                               f"{', '.join(DEPENDENCY_TYPES)}")
        found.append(fields)
    if len(found) > MAX_DEPENDENCIES:
        raise InvalidInput(f"--depends-on names {len(found)} jobs; Batch allows at most "
                           f"{MAX_DEPENDENCIES}")
    return found


def validate_or_fail(check: Callable[[str], T], value: str, flag: str) -> T:
    """An argparse type applied to part of a flag's value."""
    try:
        return check(value)
    except argparse.ArgumentTypeError as exc:
        raise InvalidInput(f"{flag}: {exc}") from None


def exported(names: str | None, blacklist: str | None,
             environ: dict[str, str]) -> dict[str, str]:
    """The variables --env names (or 'all'), from this shell."""
    if blacklist and names != "all":
        raise InvalidInput('--env-blacklist can be used only with --env all')
    if not names:
        return {}
    skip = [n.strip() for n in blacklist.split(",")] if blacklist else list(ENV_BLACKLIST)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    if wanted == ["all"]:
        wanted = [n for n in sorted(environ) if n not in skip]
        wanted = [n for n in wanted if not n.upper().startswith(ENV_EXCLUDED_PREFIXES)
                  and "()" not in n]
    reserved = [n for n in wanted if n.upper().startswith(ENV_EXCLUDED_PREFIXES)]
    if reserved:
        raise InvalidInput(f"--env {reserved[0]}: names starting with "
                           f"{', '.join(ENV_EXCLUDED_PREFIXES)} are never exported")
    missing = [n for n in wanted if n not in environ]
    if missing:
        raise InvalidInput(f"--env {missing[0]}: no such variable in this shell")
    return validate.check_env([validate_or_fail(validate.env_var, f"{n}={environ[n]}", "--env")
                               for n in wanted])


def script_text(args: argparse.Namespace) -> str | None:
    """The script to run: -cf FILE's text, stdin's when no command is given, else None."""
    if args.command_file:
        if args.command is None:
            raise InvalidInput("--command-file needs the script file as COMMAND")
        try:
            with open(args.command, encoding="utf-8") as handle:
                return handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"script {args.command}: {exc.__class__.__name__}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None
    if args.command is not None:
        return None
    if sys.stdin is None or sys.stdin.isatty():
        raise InvalidInput("no command: give COMMAND [ARGS], a script with -cf FILE, or pipe "
                           "a script to stdin")
    text = sys.stdin.read()
    if not text.strip():
        raise InvalidInput("the script read from stdin is empty")
    return text


def default_name(args: argparse.Namespace) -> str:
    """ParallelCluster's default: the command's base name with non-word runs as '_'."""
    if args.command is None:
        return STDIN_NAME
    name = re.sub(r"\W+", "_", os.path.basename(args.command)).strip("_") or "job"
    if not name[0].isalnum():
        name = "job" + name
    return name[:128]


def unsupported(args: argparse.Namespace) -> None:
    """ParallelCluster flags with no counterpart here: refused, naming what to do instead."""
    if args.input_file:
        raise InvalidInput(f"--input-file {args.input_file[0]}: awsbsub does not upload files; "
                           "copy them under the EFS mount and read them from there")
    if args.array_size is not None:
        raise InvalidInput(f"--array-size {args.array_size}: Batch does not run arrays of "
                           "multi-node jobs; submit one job per input instead")
    if args.working_dir and args.parent_working_dir:
        raise InvalidInput("--parent-working-dir and --working-dir cannot be used together")
    if args.command_file is False and args.command is not None and not args.command.strip():
        raise InvalidInput("COMMAND is empty")


def definition_resources(ctx: Context, definition: str) -> dict[str, int]:
    """VCPU and MEMORY of the job definition's first node range (for -p/-m left out)."""
    found = ctx.api.latest_definition(definition)
    ranges = (found.get("nodeProperties") or {}).get("nodeRangeProperties") or [{}]
    container = ranges[0].get("container") or found.get("containerProperties") or {}
    values = {r["type"]: int(r["value"]) for r in container.get("resourceRequirements", [])
              if r.get("type") in ("VCPU", "MEMORY")}
    if len(values) < 2:
        raise InvalidInput(f"job definition {definition} sets no VCPU and MEMORY: pass -p and "
                           "-m")
    return values


def spec_and_request(args: argparse.Namespace, ctx: Context) -> tuple[JobSpec, dict[str, Any]]:
    """Check everything, then build the SubmitJob request (nothing is sent here)."""
    unsupported(args)
    depends_on = dependencies(args.depends_on)
    env = exported(args.env, args.env_blacklist, dict(os.environ))
    script = script_text(args)
    mount = ctx.settings.efs_mount()
    validate.check_under_mount("--working-dir", args.working_dir, mount)
    validate.check_under_mount("--parent-working-dir", args.parent_working_dir, mount)
    if env:  # container variables reach the main node; ranks elsewhere get them forwarded
        env[FORWARD_ENV] = ",".join(sorted({*filter(None, env.get(FORWARD_ENV, "").split(",")),
                                            *env} - {FORWARD_ENV}))
    queue = entry.queue(ctx)
    definition = ctx.settings.resolve(None, "JOB_DEFINITION_NAME", "job_definition_name",
                                      "JOB_DEFINITION_NAME", validate.job_definition)
    vcpus, memory = args.vcpus, args.memory
    if vcpus is None or memory is None:
        defaults = definition_resources(ctx, definition)
        vcpus, memory = vcpus or defaults["VCPU"], memory or defaults["MEMORY"]
    validate.check_capacity(args.nodes, vcpus, ctx.settings.max_vcpus())
    argv = args.arguments if script is not None else [args.command, *args.arguments]
    command = node_command(args.working_dir, args.parent_working_dir or mount, script, argv)
    spec = JobSpec(name=args.job_name or default_name(args), queue=queue, definition=definition,
                   nodes=args.nodes, vcpus=vcpus, memory=memory, command=tuple(command),
                   attempts=args.retry_attempts, timeout=args.timeout, env=env)
    request = submit_request(spec)
    if depends_on:
        request["dependsOn"] = depends_on
    validate.check_request_size(request, f"the SubmitJob request for {spec.name}")
    return spec, request


def execute(args: argparse.Namespace, ctx: Context) -> int:
    """Preflight as `python -m jobs submit` does, then submit and say so as ParallelCluster."""
    spec, request = spec_and_request(args, ctx)
    if args.awscli:
        ctx.err.print("awsbsub: --awscli ignored: nothing is fetched from S3 here")
    preflight(ctx, args, [spec])
    if args.dry_run:
        return dry_run(ctx, [request], None)
    result = ctx.api.submit(request)
    print(f"Job {result['jobId']} ({result['jobName']}) has been submitted.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script entry point."""
    return entry.main(PROG, build_parser, execute, argv)
