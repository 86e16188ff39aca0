"""The job command awsbsub sends: cd into the working directory on the shared file system, then
run the user's script (carried in the command itself) or command on every MPI rank."""

from __future__ import annotations

import posixpath

# ParallelCluster's awsbsub ran `job-${AWS_BATCH_JOB_ID}` under the user's home when no -w was
# given (aws-parallelcluster awsbatch-cli/src/awsbatch/awsbsub.py, _compose_bash_command).
JOB_DIR_PREFIX = "job-"
# $1 working directory ("" = PARENT/job-<id>), $2 parent. A node's AWS_BATCH_JOB_ID is
# `<id>#<node>` (the launcher forwards the main node's to every rank): the directory takes the
# parent id, so all nodes share it.
_CD = ('d=$1; [ -n "$d" ] || d=$2/' + JOB_DIR_PREFIX + '${AWS_BATCH_JOB_ID%%#*}; shift 2; '
       'mkdir -p -- "$d" && cd -- "$d" || exit 1; ')
# $1 the script's text: written to a file of this rank's own (ranks of one node would race on a
# shared name) and executed, so its #! line chooses the interpreter as in ParallelCluster.
_RUN_SCRIPT = ('f=$(mktemp) && printf %s "$1" > "$f" && chmod +x "$f" || exit 1; shift; '
               'exec "$f" "$@"')
_RUN_COMMAND = 'exec "$@"'
SHELL = ("/bin/bash", "-c")
ARGV0 = "awsbsub"


def node_command(workdir: str | None, parent: str, script: str | None,
                 argv: list[str]) -> list[str]:
    """The SubmitJob command: `script` (its text) with `argv` as its arguments, else `argv`."""
    directory = posixpath.normpath(workdir) if workdir else ""
    if script is not None:
        return [*SHELL, _CD + _RUN_SCRIPT, ARGV0, directory, parent, script, *argv]
    return [*SHELL, _CD + _RUN_COMMAND, ARGV0, directory, parent, *argv]
