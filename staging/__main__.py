"""`python -m staging in SRC DEST` | `python -m staging out --job ID --status S --from DIR
--to s3://BUCKET/PREFIX/` (docs/CONTRACTS.md, "Data in and out")."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from launcher.contract import APPLICATION_ERROR, OK, STOPPED, USAGE
from staging import commands, uri
from staging.errors import BadData, StagingError
from staging.stagein import stage_in
from staging.stageout import check_job_id, stage_out


class Terminated(Exception):
    """SIGTERM (Batch stopping the staging job): clean up, exit 143."""


def _location(text: str) -> uri.S3Location:
    try:
        return uri.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _absolute(text: str) -> Path:
    if not text.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r} is not an absolute path")
    return Path(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m staging", allow_abbrev=False,
                                description="Copy a job's data between S3 and the shared file "
                                "system (exit 0 done, 2 bad location or missing/denied data, "
                                "1 other errors).")
    sub = p.add_subparsers(dest="what", required=True)
    p_in = sub.add_parser("in", help="every object below SRC into the new directory DEST",
                          allow_abbrev=False)
    p_in.add_argument("source", type=_location, metavar="SRC", help="s3://BUCKET/PREFIX")
    p_in.add_argument("dest", type=_absolute, metavar="DEST",
                      help="directory to create (atomically, with .mnp-manifest.json)")
    p_out = sub.add_parser("out", help="OUTPUT_DIR/<job id>/ to s3://BUCKET/PREFIX/<job id>/",
                           allow_abbrev=False)
    p_out.add_argument("--job", required=True, metavar="ID", help="the finished job's id")
    p_out.add_argument("--status", required=True, choices=commands.TERMINAL,
                       help="how it ended")
    p_out.add_argument("--from", dest="output_dir", required=True, type=_absolute,
                       metavar="OUTPUT_DIR", help="the parent of the job's output directory")
    p_out.add_argument("--to", required=True, type=_location, metavar="s3://BUCKET/PREFIX/")
    return p


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def run(argv: Sequence[str] | None = None) -> int:
    """Parse, stage, map errors to the contract's exit codes (the message on stderr)."""
    args = parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.what == "in":
            # the staging job's own id, recorded in the manifest
            stage_in(args.source, args.dest, os.environ.get("AWS_BATCH_JOB_ID", ""))
            return OK
        if "#" in args.job:
            print(f"staging: {args.job} is one node of a multi-node job: its outputs are "
                  "staged out with its parent's; nothing to do", file=sys.stderr)
            return OK
        stage_out(check_job_id(args.job), args.status, args.output_dir, args.to)
        return OK
    except BadData as err:
        print(f"staging: error: {err}", file=sys.stderr)
        return USAGE
    except StagingError as err:
        print(f"staging: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # the shared file system: retried by the staging job's strategy
        print(f"staging: error: {err}", file=sys.stderr)
        return APPLICATION_ERROR
    except Terminated:
        print("staging: stopped by SIGTERM: nothing half-copied is left (a rerun starts "
              "again)", file=sys.stderr)
        return STOPPED
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
