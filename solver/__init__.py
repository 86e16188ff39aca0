"""Distributed explicit finite-difference heat-equation solver (mpi4py + numpy + numba)."""

import os

# Numba's coloured errors run colorama.init(), whose exit hook writes an ANSI reset to stdout
# when it is a terminal (mpiexec gives ranks a pty), corrupting the one-line JSON summary.
os.environ.setdefault("NUMBA_DISABLE_ERROR_MESSAGE_HIGHLIGHTING", "1")
