/* floor: the least any out-of-process system-call interceptor can cost on this machine, for
 * scripts/bench-engines. Written for udocker-rs.
 *
 *   floor ROOT GUESTPATH N
 *
 * ROOT/GUESTPATH must exist. Prints, in microseconds per call, the median of 5 runs of N calls:
 *   native   newfstatat(ROOT/GUESTPATH) in a loop
 *   filter   getppid() without and with an allow-everything seccomp filter (the toll every
 *            system call pays once any filter is installed: the kernel's slow entry path)
 *   ptrace   newfstatat(GUESTPATH) stopped by SECCOMP_RET_TRACE; the tracer does the least a
 *            translator can: GETREGS, read the path (process_vm_readv), fstatat ROOT+path,
 *            write the answer (process_vm_writev), SETREGS to skip the call, CONT
 *   notify   the same through SECCOMP_RET_USER_NOTIF (Linux 5.0; RECV, read, fstatat, write,
 *            SEND), with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP where the kernel has it (6.6)
 * Tracer and tracee share one CPU (as our tracer pins them): the round trip is two context
 * switches, which no translation work can remove. */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#define SYNC_WAKE_UP 1UL

static const char *root, *gpath;
static long n;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median5(double *v) {
    qsort(v, 5, sizeof *v, cmp);
    return v[2];
}

static double stat_loop(const char *p) {
    struct stat st;
    double t = now();
    for (long i = 0; i < n; i++)
        if (syscall(SYS_newfstatat, AT_FDCWD, p, &st, 0) != 0) {
            perror("floor: stat");
            exit(1);
        }
    return (now() - t) / n * 1e6;
}

static double getppid_loop(void) {
    double t = now();
    for (long i = 0; i < n; i++)
        syscall(SYS_getppid);
    return (now() - t) / n * 1e6;
}

static int install(unsigned int action, unsigned int flags) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_newfstatat, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog p = {4, f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &p);
}

/* Answer one newfstatat of pid: read the guest path, stat ROOT+path, write the struct. */
static long answer(pid_t pid, unsigned long pathp, unsigned long bufp) {
    char path[4096], host[8192];
    struct iovec l = {path, sizeof path - 1}, r = {(void *)pathp, sizeof path - 1};
    ssize_t k = process_vm_readv(pid, &l, 1, &r, 1, 0);
    if (k <= 0)
        return -EFAULT;
    path[k] = 0;
    snprintf(host, sizeof host, "%s%s", root, path);
    struct stat st;
    long rv = fstatat(AT_FDCWD, host, &st, 0) == 0 ? 0 : -ENOENT;
    struct iovec l2 = {&st, sizeof st}, r2 = {(void *)bufp, sizeof st};
    process_vm_writev(pid, &l2, 1, &r2, 1, 0);
    return rv;
}

static double run_ptrace(void) {
    int p2c[2];
    if (pipe(p2c) != 0)
        return -1;
    pid_t c = fork();
    if (c == 0) {
        raise(SIGSTOP);
        if (install(SECCOMP_RET_TRACE, 0) != 0)
            _exit(1);
        double us = stat_loop(gpath);
        (void)!write(p2c[1], &us, sizeof us);
        _exit(0);
    }
    int st;
    if (ptrace(PTRACE_SEIZE, c, 0, PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL) != 0)
        return -1;
    waitpid(c, &st, 0);
    ptrace(PTRACE_CONT, c, 0, 0);
    for (;;) {
        if (waitpid(c, &st, __WALL) < 0 || WIFEXITED(st) || WIFSIGNALED(st))
            break;
        if ((st >> 8) == (SIGTRAP | (PTRACE_EVENT_SECCOMP << 8))) {
            struct user_regs_struct r;
            ptrace(PTRACE_GETREGS, c, 0, &r);
            long rv = answer(c, r.rsi, r.rdx);
            r.orig_rax = -1;
            r.rax = rv;
            ptrace(PTRACE_SETREGS, c, 0, &r);
            ptrace(PTRACE_CONT, c, 0, 0);
        } else {
            int sig = WIFSTOPPED(st) && WSTOPSIG(st) != SIGTRAP && WSTOPSIG(st) != SIGSTOP ? WSTOPSIG(st) : 0;
            ptrace(PTRACE_CONT, c, 0, sig);
        }
    }
    double us = -1;
    if (read(p2c[0], &us, sizeof us) != sizeof us)
        us = -1;
    close(p2c[0]);
    close(p2c[1]);
    return us;
}

static double run_notify(int *synced) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return -1;
    pid_t c = fork();
    if (c == 0) {
        int fd = install(SECCOMP_RET_USER_NOTIF, SECCOMP_FILTER_FLAG_NEW_LISTENER);
        if (fd < 0)
            _exit(1);
        char go;
        (void)!write(sv[1], &fd, sizeof fd);
        (void)!read(sv[1], &go, 1);
        double us = stat_loop(gpath);
        (void)!write(sv[1], &us, sizeof us);
        _exit(0);
    }
    int cfd, fd = -1;
    if (read(sv[0], &cfd, sizeof cfd) == sizeof cfd) {
        int pfd = syscall(SYS_pidfd_open, c, 0);
        fd = pfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pfd, cfd, 0);
    }
    if (fd < 0) {
        kill(c, SIGKILL);
        waitpid(c, NULL, 0);
        return -1;
    }
    *synced = ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SYNC_WAKE_UP, 0) == 0;
    (void)!write(sv[0], "g", 1);
    struct seccomp_notif_sizes sz;
    syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz);
    struct seccomp_notif *req = calloc(1, sz.seccomp_notif);
    struct seccomp_notif_resp *resp = calloc(1, sz.seccomp_notif_resp);
    for (;;) {
        memset(req, 0, sz.seccomp_notif);
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, req) != 0)
            break;
        long rv = answer(req->pid, req->data.args[1], req->data.args[2]);
        memset(resp, 0, sz.seccomp_notif_resp);
        resp->id = req->id;
        resp->val = rv < 0 ? 0 : rv;
        resp->error = rv < 0 ? -ENOENT : 0;
        ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, resp);
    }
    double us = -1;
    if (read(sv[0], &us, sizeof us) != sizeof us)
        us = -1;
    waitpid(c, NULL, 0);
    free(req);
    free(resp);
    close(fd);
    return us;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: floor ROOT GUESTPATH N\n");
        return 2;
    }
    root = argv[1];
    gpath = argv[2];
    n = atol(argv[3]);
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(sched_getcpu(), &s);
    sched_setaffinity(0, sizeof s, &s);
    char host[8192];
    snprintf(host, sizeof host, "%s%s", root, gpath);
    double v[5], nat, pp, ppf, pt, nt;
    int synced = 0;
    for (int i = 0; i < 5; i++) v[i] = stat_loop(host);
    nat = median5(v);
    for (int i = 0; i < 5; i++) v[i] = getppid_loop();
    pp = median5(v);
    for (int i = 0; i < 5; i++) v[i] = run_ptrace();
    pt = median5(v);
    for (int i = 0; i < 5; i++) v[i] = run_notify(&synced);
    nt = median5(v);
    /* last: the filter stays installed in this process */
    if (install(SECCOMP_RET_ALLOW, 0) != 0)
        return 1;
    for (int i = 0; i < 5; i++) v[i] = getppid_loop();
    ppf = median5(v);
    printf("native stat        %.3f us/call\n", nat);
    printf("getppid            %.3f us/call, %.3f with an allow-all filter (%.2fx)\n", pp, ppf, ppf / pp);
    printf("stat via ptrace    %.3f us/call (%.1fx native stat)\n", pt, pt / nat);
    if (nt > 0)
        printf("stat via notify    %.3f us/call (%.1fx native stat)%s\n", nt, nt / nat,
               synced ? ", sync wake-up" : "");
    else
        printf("stat via notify    unavailable\n");
    return 0;
}
