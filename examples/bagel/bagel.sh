#!/bin/sh
# BAGEL with the MPI_Finalize work-around preloaded (finalize_exit.c; see README).
LD_PRELOAD=/usr/local/lib/libmnp_finalize_exit.so exec /usr/bin/BAGEL "$@"
