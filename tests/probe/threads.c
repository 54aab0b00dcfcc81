/* threads: a multi-threaded guest program for tests/tests/tracer.rs.
 *
 *   threads W [NTHREADS] [ITERATIONS]
 *
 * NTHREADS workers (default 8) each do ITERATIONS rounds (default 100) of file I/O in the
 * guest directory W: create W/t<i>-<j>, write, stat, rename, re-open and read back, unlink.
 * Another thread (not the leader) waits for them, prints one summary line and then calls
 * execve("/probe", ["probe", "--helper", "from-thread"]): the kernel ends every other thread,
 * the exec'ing thread takes over the leader's pid, and /probe prints its helper line.
 * Exit status: 0 when /probe ran; 1 when execve returned; 2 on usage errors.
 * Built with gcc -static -O2 -pthread. Written for udocker-rs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *W;
static int nthreads = 8, iters = 100;
static pthread_t workers[64];
static int ok[64], bad[64];

static void *work(void *arg) {
    int id = (int)(long)arg;
    char a[4096], b[4096], data[64], back[64];
    for (int j = 0; j < iters; j++) {
        snprintf(a, sizeof a, "%s/t%d-%d", W, id, j);
        snprintf(b, sizeof b, "%s/t%d-%d.renamed", W, id, j);
        int n = snprintf(data, sizeof data, "thread %d iteration %d\n", id, j);
        int fd = open(a, O_WRONLY | O_CREAT | O_EXCL, 0644);
        struct stat st;
        int good = fd >= 0 && write(fd, data, n) == n && close(fd) == 0 &&
                   stat(a, &st) == 0 && st.st_size == n && rename(a, b) == 0 &&
                   access(a, F_OK) < 0 && errno == ENOENT;
        if (good) {
            fd = open(b, O_RDONLY);
            good = fd >= 0 && read(fd, back, sizeof back) == n && memcmp(back, data, n) == 0 &&
                   close(fd) == 0 && unlink(b) == 0;
        }
        if (good)
            ok[id]++;
        else
            bad[id]++;
    }
    return NULL;
}

static void *execer(void *arg) {
    (void)arg;
    int total = 0, errors = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(workers[i], NULL);
        total += ok[i];
        errors += bad[i];
    }
    printf("workers=%d ok=%d errors=%d leader=%d\n", nthreads, total, errors,
           getpid() == (pid_t)syscall(SYS_gettid));
    fflush(stdout);
    char *argv[] = {"probe", "--helper", "from-thread", NULL};
    char *envp[] = {"PROBE=thread", NULL};
    execve("/probe", argv, envp);
    printf("execve from thread: %s\n", strerror(errno));
    fflush(stdout);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] != '/') {
        fprintf(stderr, "usage: threads /ABSOLUTE/WORKDIR [NTHREADS] [ITERATIONS]\n");
        return 2;
    }
    W = argv[1];
    if (argc > 2)
        nthreads = atoi(argv[2]);
    if (argc > 3)
        iters = atoi(argv[3]);
    if (nthreads < 1 || nthreads > 64 || iters < 1)
        return 2;
    for (int i = 0; i < nthreads; i++)
        pthread_create(&workers[i], NULL, work, (void *)(long)i);
    pthread_t e;
    pthread_create(&e, NULL, execer, NULL);
    pthread_join(e, NULL); /* never returns: execve ends this thread */
    return 1;
}
