"""What each MPI rank runs: ``python -m solver heat|commcheck [options]``.

The only module that touches ``MPI.COMM_WORLD``; everything else takes a communicator.
"""

from __future__ import annotations

import os
import sys
import traceback

USAGE = "usage: python -m solver {heat,commcheck,netcheck} [options]  (--help after the command)"


def main(argv: list[str]) -> int:
    """Dispatch to a command; unexpected errors abort the whole MPI job."""
    if not argv or argv[0] not in ("heat", "commcheck", "netcheck"):
        if argv and argv[0] in ("-h", "--help"):
            print(USAGE)
            return 0
        from mpi4py import MPI

        if MPI.COMM_WORLD.Get_rank() == 0:
            print(f"solver: error: unknown command {argv[0] if argv else '(none)'}; {USAGE}",
                  file=sys.stderr)
        return 2
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        if argv[0] == "heat":
            from solver.heat import run
        elif argv[0] == "commcheck":
            from solver.commcheck import run
        else:
            from solver.netcheck import run
        return run(comm, argv[1:], dict(os.environ))
    except Exception:  # noqa: BLE001 - any other failure must not leave peers blocked
        print(f"[solver rank {comm.Get_rank()}] unexpected error:\n{traceback.format_exc()}",
              file=sys.stderr, flush=True)
        comm.Abort(1)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
