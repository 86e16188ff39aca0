"""`python -m jobs ARGS` run by jobs.cli.main in this process, answered as subprocess.run would.

A fresh interpreter costs ~1 s a call (Python, boto3 and rich imports), over a hundred calls in
tests/jobs. The tests that are about the process itself (exit status, `mnp` on PATH, a Python
without our packages) start a real one: Aws.process, test_cli_surface, test_help.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

# As `python -m jobs` names itself in its messages (jobs/__main__.py).
PROG = "python -m jobs"


@contextlib.contextmanager
def _environment(env: Mapping[str, str], cwd: Path) -> Iterator[None]:
    """os.environ replaced by ENV and the working directory set to CWD, both restored after."""
    saved, here = dict(os.environ), os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(here)
        os.environ.clear()
        os.environ.update(saved)


def run_jobs(args: Sequence[str], env: Mapping[str, str],
             cwd: Path) -> subprocess.CompletedProcess[str]:
    """jobs.cli.main(ARGS) with ENV as its whole environment in CWD; stdout and stderr captured
    as text (not a terminal, as through subprocess pipes)."""
    from jobs.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _environment(env, cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args), prog=PROG)
    return subprocess.CompletedProcess(["python", "-m", "jobs", *args], code, out.getvalue(),
                                       err.getvalue())
