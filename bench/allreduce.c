/* MPI_Allreduce (float32, sum, in place) time against message size: the communication of one
 * data-parallel step, for docs/distributed.md. mpicc -O2 bench/allreduce.c -o allreduce &&
 * mpirun -np 2 ./allreduce */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (rank == 0) printf("ranks %d\nfloats,bytes,seconds_median\n", size);
    for (long n = 1024; n <= (1L << 23); n *= 4) {
        float *buffer = calloc(n, sizeof(float));
        double times[21];
        for (int r = 0; r < 21; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, buffer, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            times[r] = MPI_Wtime() - t;
        }
        for (int i = 1; i < 21; i++)   /* insertion sort for the median */
            for (int j = i; j > 0 && times[j] < times[j - 1]; j--) { double x = times[j]; times[j] = times[j - 1]; times[j - 1] = x; }
        if (rank == 0) printf("%ld,%ld,%.3g\n", n, n * 4, times[10]);
        free(buffer);
    }
    MPI_Finalize();
    return 0;
}
