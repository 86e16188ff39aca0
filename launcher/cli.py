"""`mnp-launch [--rendezvous-timeout S] CMD...`: the image's ENTRYPOINT on every node."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from launcher import __version__, account, contract, jobkeys, procs, settings
from launcher.flavours import FlavourError, resolve
from launcher.inputs import mpi_starter_refusal
from launcher.node import BatchNode, Settings
from launcher.rendezvous import INSECURE_ENV, SECRET_ENV, log
from launcher.roles import TermSignal, mpiexec, run_child, run_local, run_main


def _timeout(text: str) -> float:
    """The flag takes what MNP_RENDEZVOUS_TIMEOUT takes."""
    kind = settings.BY_NAME[contract.RENDEZVOUS_TIMEOUT_ENV].kind
    try:
        return float(kind.parse(text))  # type: ignore[arg-type]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: {e}; allowed: {kind.allowed}") from None


def _logging(prefix: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        f"[{prefix}] %(asctime)s.%(msecs)03d %(levelname)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


def _isolate(knobs: Settings) -> int | None:
    """Become MNP_RUN_AS before anything starts; the exit code if that cannot be done."""
    run_as, root = knobs.run_as, account.is_root()
    if run_as is not None and root:
        try:
            account.become(run_as)
        except (account.AccountError, OSError) as e:
            log.error("cannot become %s=%s: %s", account.RUN_AS_ENV, run_as, e)
            return contract.USAGE
        log.info("running as uid %d gid %d from here on, without capabilities; the stack's "
                 "secret stays in this non-dumpable process", run_as.uid, run_as.gid)
        return None
    if run_as is not None and (os.getuid(), os.getgid()) != (run_as.uid, run_as.gid):
        log.error("%s=%s: the launcher runs as uid %d gid %d, not root, so it cannot become "
                  "that account (start the container as root: the job definition's user "
                  "0:0)", account.RUN_AS_ENV, run_as, os.getuid(), os.getgid())
        return contract.USAGE
    if knobs.secret is not None:
        log.warning("the job's programs run as the launcher's own user (uid %d): they can "
                    "read %s (/proc/1/environ, this process) and with it join, or reach a "
                    "shell on, any job of the stack and forge its checkpoints; start the "
                    "container as root with %s=UID:GID to keep it from them",
                    os.getuid(), SECRET_ENV, account.RUN_AS_ENV)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """`mnp-launch [--rendezvous-timeout S] CMD...` on every node of the job."""
    # allow_abbrev=False: a misspelt option is an error, never another option's prefix.
    p = argparse.ArgumentParser(
        prog="mnp-launch", epilog=settings.epilog(), allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run CMD under MPI across the nodes of an AWS Batch multi-node job.")
    p.add_argument("--rendezvous-timeout", type=_timeout, metavar="S",
                   help="seconds to wait for all nodes (default: MNP_RENDEZVOUS_TIMEOUT or 600)")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="the command every rank runs")
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    refusal = mpi_starter_refusal(cmd)
    if refusal:
        print(f"mnp-launch: error: {refusal}", file=sys.stderr)
        return contract.USAGE
    try:
        node = BatchNode.from_env(os.environ)
        knobs = Settings.from_env(os.environ, args.rendezvous_timeout, node.num_nodes)
    except ValueError as e:
        print(f"mnp-launch: error: {e}", file=sys.stderr)
        return contract.USAGE
    if node.gang:
        # The ranks' job is the gang (the array's parent id), as an MNP node's is its parent's:
        # the solver writes under it and the checkpoint key is derived from it.
        os.environ["AWS_BATCH_JOB_ID"] = node.job
    # Read once: nothing the launcher starts (ssh-keygen, sshd, mpiexec, ssh, ranks) gets it.
    os.environ.pop(SECRET_ENV, None)
    if knobs.secret is not None:
        # This job's own key only: the ranks seal with it, no other job's ranks can.
        os.environ[contract.CHECKPOINT_KEY_ENV] = jobkeys.checkpoint_env(node.job, knobs.secret,
                                                                         cmd)
    _logging(f"node {node.index} job {node.job_id} attempt {node.attempt}")
    failed = _isolate(knobs)
    if failed is not None:
        return failed
    if node.num_nodes > 1 and knobs.secret is None:
        log.warning("%s=1: the rendezvous has no secret: anyone who can reach port %d can "
                    "join this job and run commands on its nodes", INSECURE_ENV, knobs.port)
    if not cmd and (node.is_main or node.num_nodes == 1):
        log.error("no command to run (give it after the options, e.g. python -m solver heat)")
        return contract.USAGE
    launches = node.is_main or node.num_nodes == 1
    if launches:
        # Children run no mpiexec: only the node that launches must know the flavour.
        path = mpiexec()
        try:
            flavour = resolve(knobs.mpi, path)
        except FlavourError as e:
            log.error("%s", e)
            return contract.USAGE
    procs.become_subreaper()
    term = TermSignal(knobs.term_grace)
    log.info("node %d of %d (main is %d), %d slots%s", node.index, node.num_nodes,
             node.main_index, knobs.slots, f", {flavour.name} ({path})" if launches else "")
    try:
        if node.num_nodes == 1:
            code = run_local(node, knobs, cmd, term, flavour, path)
        elif node.is_main:
            code = run_main(node, knobs, cmd, term, flavour, path)
        else:
            code = run_child(node, knobs, term)
    finally:
        # Nothing outlives the launcher: ranks, daemons and sshd sessions it adopted.
        procs.kill_tree(os.getpid(), include_root=False)
        procs.reap()
    log.info("exit %d", code)
    return code


if __name__ == "__main__":
    sys.exit(main())
