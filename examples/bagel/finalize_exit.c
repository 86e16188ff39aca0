/* Preloaded into BAGEL's ranks (see README): Debian bookworm's MPICH 4.0.2 with UCX 1.13.1
 * can hang in MPI_Finalize, one rank spinning in UCX's endpoint disconnect while the others
 * wait in the PMI barrier and no longer progress UCX. Once every rank has reached
 * MPI_Finalize (the barrier) no message is in flight, so each ends here instead. */
#include <mpi.h>
#include <stdio.h>
#include <unistd.h>

int MPI_Finalize(void)
{
    MPI_Barrier(MPI_COMM_WORLD);
    fflush(NULL);
    _exit(0);
}
