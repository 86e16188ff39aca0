# PYTHON_ARGCOMPLETE_OK (argcomplete completes `mnp` only when its entry module says so)
"""Argument parsing, dispatch, and the mapping of errors to exit codes."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from jobs import __version__
from jobs.client import BatchJobs
from jobs.commands import (
    cancel,
    fetch,
    listing,
    logs,
    preflight,
    run_local,
    scale,
    status,
    submit,
    watch,
)
from jobs.context import Context
from jobs.errors import EXIT_BAD_INPUT, EXIT_FAILURE, JobsError
from jobs.outputs import OUTPUTS_FILE_ENV, STACK_ENV, Settings
from jobs.render import printable
from jobs.validate import job_command

COMMANDS = (submit, preflight, status, watch, logs, fetch, cancel, listing, scale, run_local)
# The console script's name; `python -m jobs` passes its own spelling.
PROG = "mnp"


def build_parser(prog: str = PROG) -> tuple[argparse.ArgumentParser,
                                            dict[str, argparse.ArgumentParser]]:
    """The top-level parser, and the parser of each command by name."""
    # allow_abbrev=False everywhere: `--attempt` must not silently mean `--attempts`.
    parser = argparse.ArgumentParser(
        prog=prog, allow_abbrev=False,
        description="Submit and follow multi-node MPI jobs on the stack's AWS Batch queue. "
        "Region and credentials come from the usual AWS_REGION / AWS_PROFILE / "
        "AWS_ENDPOINT_URL.",
        epilog="Exit codes: 0 ok (for --wait/watch: the job SUCCEEDED), 1 AWS error or job "
        "not successful, 2 bad input (nothing was sent).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument(
        "--outputs-file", metavar="FILE",
        help=f"stack outputs JSON from `cdktf deploy --outputs-file` (env {OUTPUTS_FILE_ENV}; "
        "default: `terraform output -json` in the synthesized stack)",
    )
    parser.add_argument("--stack", help=f"stack name when there are several (env {STACK_ENV})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    by_name = {}
    for command in COMMANDS:
        command_parser = sub.add_parser(
            command.NAME, help=command.HELP, description=command.HELP, allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        by_name[command.NAME] = command_parser
        command.add_arguments(command_parser)
        # Also accepted after the command (where people add it when a run goes wrong).
        command_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                    help="show tracebacks")
        takes_command = getattr(command, "TAKES_COMMAND", False)
        if takes_command:
            usage = command_parser.format_usage().removeprefix("usage: ").rstrip()
            command_parser.usage = f"{usage} [-- COMMAND ...]"
        command_parser.set_defaults(execute=command.execute, takes_command=takes_command)
    return parser, by_name


def unrecognized(extras: list[str], command_parser: argparse.ArgumentParser,
                 takes_command: bool) -> str:
    """argparse's 'unrecognized arguments' with what was probably meant."""
    problem = f"unrecognized arguments: {' '.join(extras)}"
    if takes_command and not extras[0].startswith("-"):
        return (f"{problem} (the job's command goes after '--', which ends the options: "
                f"... -- {' '.join(extras)})")
    options = [o for a in command_parser._actions for o in a.option_strings
               if a.help != argparse.SUPPRESS]
    for word in extras:
        flag = word.partition("=")[0]
        near = difflib.get_close_matches(flag, options, n=2, cutoff=0.6)
        if flag.startswith("--") and near:
            return f"{problem} (did you mean {' or '.join(near)}?)"
    return problem


def _split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Everything after the first `--` is the job's command, not ours to parse."""
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1 :]
    return argv, None


def _complete(parser: argparse.ArgumentParser) -> None:
    """Answer a shell's completion request (argcomplete, when installed) and exit."""
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        import argcomplete
    except ImportError:  # completion is optional; the CLI works without it
        return
    argcomplete.autocomplete(parser)


def run(argv: Sequence[str], api_factory: Callable[[], BatchJobs] | None = None,
        prog: str = PROG) -> int:
    """Parse and execute; raises JobsError for reportable failures."""
    ours, command = _split_command(list(argv))
    parser, by_name = build_parser(prog)
    _complete(parser)
    try:
        args, extras = parser.parse_known_args(ours)
        if extras:
            by_name[args.command].error(
                unrecognized(extras, by_name[args.command], args.takes_command))
    except SystemExit as exc:  # argparse: --help/--version (0) or bad usage (2)
        return int(exc.code or 0)
    problem = ""
    if command is not None and not args.takes_command:
        takers = ", ".join(c.NAME for c in COMMANDS if getattr(c, "TAKES_COMMAND", False))
        problem = f"'-- COMMAND' is only accepted by {takers}"
    elif command is not None:
        try:
            job_command(command)
        except argparse.ArgumentTypeError as exc:
            problem = str(exc)
    if problem:
        print(f"{prog} {args.command}: error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    args.job_command = command or []
    context = Context(Settings(args.outputs_file, args.stack), api_factory=api_factory)
    return int(args.execute(args, context))


def main(argv: Sequence[str] | None = None,
         api_factory: Callable[[], BatchJobs] | None = None, prog: str = PROG) -> int:
    """Run, turning errors into one stderr line and the CONTRACTS.md exit codes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in _split_command(argv)[0]
    try:
        return run(argv, api_factory, prog)
    except JobsError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {printable(exc.line())}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `python -m jobs list | head`: the reader left; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted (the job, if submitted, keeps running)", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last resort: one line unless --debug
        if debug:
            traceback.print_exc()
        print(f"error: unexpected {type(exc).__name__}: {printable(exc)} (rerun with --debug)",
              file=sys.stderr)
        return EXIT_FAILURE
