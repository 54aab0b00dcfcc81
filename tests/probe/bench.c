/* bench: micro-workloads for scripts/bench-engines (static, so every engine runs the same code).
 *
 *   bench stat PATH N     N x stat(PATH)            (path translation cost)
 *   bench getppid N       N x getppid() raw syscall (a call the P1 filter lets through)
 *   bench cpu N           N iterations of an LCG    (no system calls at all)
 *
 * Prints one line with a checksum so the work cannot be optimised away. Built with -DBENCH_LIBC
 * the path calls go through the C library (what an LD_PRELOAD shim sees: the F modes) instead of
 * raw system calls. Written for udocker-rs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "stat")) {
        long n = atol(argv[3]), okc = 0;
        struct stat st;
        for (long i = 0; i < n; i++)
#ifdef BENCH_LIBC
            okc += stat(argv[2], &st) == 0;
#else
            okc += syscall(SYS_newfstatat, -100, argv[2], &st, 0) == 0;
#endif
        printf("stat ok=%ld\n", okc);
        return okc == n ? 0 : 1;
    }
    if (argc == 3 && !strcmp(argv[1], "getppid")) {
        long n = atol(argv[2]), sum = 0;
        for (long i = 0; i < n; i++)
            sum += syscall(SYS_getppid);
        printf("getppid sum=%ld\n", sum);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "cpu")) {
        long n = atol(argv[2]);
        volatile unsigned long x = 1;
        for (long i = 0; i < n; i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
        printf("cpu x=%lu\n", (unsigned long)x);
        return 0;
    }
    fprintf(stderr, "usage: bench stat PATH N | getppid N | cpu N\n");
    return 2;
}
