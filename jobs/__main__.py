"""Entry point for `python -m jobs` (the same CLI as the console script `mnp`)."""

import sys

from jobs.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m jobs"))
