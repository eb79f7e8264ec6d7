// Open MPI's C API for Swift. MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE … are macros (Open
// MPI: addresses of library globals), which Swift cannot import; these functions return them.
#include <mpi.h>

static inline MPI_Comm unroll_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype unroll_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Op unroll_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op unroll_mpi_min(void) { return MPI_MIN; }
static inline MPI_Op unroll_mpi_max(void) { return MPI_MAX; }
static inline MPI_Datatype unroll_mpi_double(void) { return MPI_DOUBLE; }
static inline void *unroll_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline int unroll_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
