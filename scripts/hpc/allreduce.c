/* MPI smoke and timing program for the HPC tests and scripts/bench-mpi.
 *
 *   allreduce [ITERATIONS]
 *
 * Every rank contributes rank+1 to an MPI_Allreduce(SUM); the sum must be n(n+1)/2. Then
 * ITERATIONS (default 1000) more allreduces are timed, so that the benchmark can tell the
 * communication cost from the start-up cost. Rank 0 prints one line the tests parse:
 *
 *   allreduce ok: size=2 sum=3 iters=1000 loop_us=1234 uids=1000,1000
 *
 * uids lists each rank's getuid() (gathered), which shows that ranks ran as the real user.
 * Exit status 1 when the sum is wrong. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int rank, size, iters = argc > 1 ? atoi(argv[1]) : 1000;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    long mine = rank + 1, sum = 0;
    MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    long want = (long)size * (size + 1) / 2;

    int uid = (int)getuid();
    int *uids = malloc(sizeof(int) * (size_t)size);
    MPI_Gather(&uid, 1, MPI_INT, uids, 1, MPI_INT, 0, MPI_COMM_WORLD);

    double acc = 0, one = 1, t0 = MPI_Wtime();
    for (int i = 0; i < iters; i++) {
        double r;
        MPI_Allreduce(&one, &r, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        acc += r;
    }
    double loop = MPI_Wtime() - t0;
    int bad = sum != want || acc != (double)iters * size;

    if (rank == 0) {
        char list[1024] = "";
        for (int i = 0; i < size && strlen(list) < sizeof(list) - 16; i++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%d", i ? "," : "", uids[i]);
        printf("allreduce %s: size=%d sum=%ld iters=%d loop_us=%.0f uids=%s\n", bad ? "FAILED" : "ok",
               size, sum, iters, loop * 1e6, list);
        fflush(stdout);
    }
    free(uids);
    MPI_Finalize();
    return bad;
}
