"""Entry point for `python -m jobs` (the same CLI as the console script `mnp`)."""

import sys

# The CLI's own dependencies (Pipfile): a Python without them gets a way out, not a traceback.
DEPENDENCIES = ("boto3", "botocore", "rich")

try:
    from jobs.cli import main
except ModuleNotFoundError as exc:
    if exc.name not in DEPENDENCIES:
        raise
    print(f"python -m jobs: {sys.executable} has no {exc.name!r}: run the project's environment "
          "instead (`make install`, then .venv/bin/mnp or .venv/bin/python -m jobs)",
          file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main(prog="python -m jobs"))
