/* probe: exercise every path-carrying system-call family the tracer translates and print one
 * deterministic line per call, so a run under chroot(2) and a run under the tracer can be
 * compared byte for byte (tests/tests/tracer.rs).
 *
 *   probe W                 the whole table, in the existing, empty, writable guest directory W
 *                           (absolute); the probe itself must be /probe in the guest
 *   probe --helper ARGS...  print argv, /proc/self/exe and getcwd (the execve target)
 *   probe --exit N          exit with status N
 *
 * Printed: return values or errno names, and only fields that do not depend on where the
 * rootfs lives or when the run happened (type/mode/size/nlink, link text, names, cwd; never
 * inode numbers, fd numbers, devices or current times). Built with gcc -static -O2.
 *
 * Built with -DPROBE_LIBC (dynamic, for a glibc container) every call goes through the C
 * library instead, which is what an LD_PRELOAD shim sees (modes F1-F4, tests/tests/fakechroot.rs):
 * the same table, except the calls libc has no wrapper for (openat2) and chroot, which the shim
 * emulates on purpose (its own test covers it); those lines say "skipped".
 * Written for udocker-rs; no code from PRoot's test suite. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/stat.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef AT_EACCESS
#define AT_EACCESS 0x200
#endif

static const char *W; /* guest work directory */

/* SC(name, args): the call `name` as a raw system call, or through libc with PROBE_LIBC. The
 * libc names that differ from the system call's get a same-named shim here. */
#ifdef PROBE_LIBC
#define SC(name, ...) ((long)name(__VA_ARGS__))
static int newfstatat(int d, const char *p, struct stat *st, int fl) { return fstatat(d, p, st, fl); }
static int faccessat2(int d, const char *p, int m, int fl) { return faccessat(d, p, m, fl); }
/* getcwd(2) returns the length with its NUL; libc returns the buffer. */
static long getcwd_(char *b, size_t n) { return getcwd(b, n) ? (long)strlen(b) + 1 : -1; }
static long execveat_(int d, const char *p, char *const a[], char *const e[], int fl) {
    return execveat(d, p, a, e, fl);
}
#else
#define SC(name, ...) syscall(SYS_##name, __VA_ARGS__)
static long getcwd_(char *b, size_t n) { return syscall(SYS_getcwd, b, n); }
static long execveat_(int d, const char *p, char *const a[], char *const e[], int fl) {
    return syscall(SYS_execveat, d, p, a, e, fl);
}
#endif

static const char *en(int e) {
    static char buf[16];
    switch (e) {
#define E(x) case x: return #x;
        E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF)
        E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV)
        E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY)
        E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(ERANGE) E(ENAMETOOLONG)
        E(ENOSYS) E(ENOTEMPTY) E(ELOOP) E(ENODATA) E(EOPNOTSUPP) E(EADDRINUSE)
        E(EADDRNOTAVAIL) E(ECONNREFUSED) E(EPROTOTYPE) E(ENOTSOCK) E(EAFNOSUPPORT)
#undef E
    }
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
}

/* "= 0", "= 5" or "= ENOENT" for a raw return value r (errno read when r < 0). */
static const char *rv(long r) {
    static char buf[64];
    if (r < 0)
        snprintf(buf, sizeof buf, "%s", en(errno));
    else
        snprintf(buf, sizeof buf, "%ld", r);
    return buf;
}

static void out(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static char *P(const char *rel) { /* W/rel, in a ring of buffers */
    static char ring[16][8192];
    static int i;
    char *b = ring[i++ & 15];
    snprintf(b, 8192, "%s/%s", W, rel);
    return b;
}

static const char *ftype(mode_t m) {
    switch (m & S_IFMT) {
    case S_IFREG: return "reg";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "lnk";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "sock";
    case S_IFCHR: return "chr";
    case S_IFBLK: return "blk";
    }
    return "?";
}

static void show_stat(const char *what, long r, struct stat *st) {
    if (r < 0)
        out("%s = %s", what, en(errno));
    else if (S_ISDIR(st->st_mode))
        out("%s = 0 type=dir mode=%04o", what, st->st_mode & 07777);
    else
        /* Times the probe set are printed; "now" (any time after 2020) is not deterministic. */
        out("%s = 0 type=%s mode=%04o size=%lld nlink=%ld mtime=%lld", what, ftype(st->st_mode),
            st->st_mode & 07777, (long long)st->st_size, (long)st->st_nlink,
            st->st_mtime > 1600000000 ? 1LL : (long long)st->st_mtime);
}

/* The legacy and *at stat calls, raw (glibc would pick one for us). */
static void t_stat(const char *tag, const char *p) {
    struct stat st;
    char w[512];
    long r = SC(stat, p, &st);
    snprintf(w, sizeof w, "stat(%s)", tag);
    show_stat(w, r, &st);
    r = SC(lstat, p, &st);
    snprintf(w, sizeof w, "lstat(%s)", tag);
    show_stat(w, r, &st);
    r = SC(newfstatat, AT_FDCWD, p, &st, 0);
    snprintf(w, sizeof w, "newfstatat(%s)", tag);
    show_stat(w, r, &st);
    struct statx sx;
    r = SC(statx, AT_FDCWD, p, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx);
    if (r < 0)
        out("statx-nofollow(%s) = %s", tag, en(errno));
    else
        out("statx-nofollow(%s) = 0 type=%s size=%lld", tag, ftype(sx.stx_mode),
            S_ISDIR(sx.stx_mode) ? 0LL : (long long)sx.stx_size);
}

static void t_readlink(const char *tag, const char *p, size_t bufsz) {
    char buf[4200];
    memset(buf, 0, sizeof buf);
    long r = SC(readlink, p, buf, bufsz);
    if (r < 0)
        out("readlink(%s,%zu) = %s", tag, bufsz, en(errno));
    else
        out("readlink(%s,%zu) = %ld \"%.*s\"", tag, bufsz, r, (int)r, buf);
}

static void t_cwd(const char *tag) {
    char buf[4200];
    long r = getcwd_(buf, sizeof buf);
    if (r < 0)
        out("getcwd(%s) = %s", tag, en(errno));
    else
        out("getcwd(%s) = %ld \"%s\"", tag, r, buf);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* getdents64 through opendir, names sorted (the on-disk order is the file system's business). */
static void t_list(const char *tag, const char *p) {
    DIR *d = opendir(p);
    if (!d) {
        out("list(%s) = %s", tag, en(errno));
        return;
    }
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512) {
        char b[300];
        const char *t = e->d_type == DT_DIR ? "d" : e->d_type == DT_LNK ? "l"
                      : e->d_type == DT_REG ? "f" : e->d_type == DT_FIFO ? "p"
                      : e->d_type == DT_SOCK ? "s" : e->d_type == DT_UNKNOWN ? "?" : "o";
        snprintf(b, sizeof b, "%s:%s", e->d_name, t);
        names[n++] = strdup(b);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    printf("list(%s) = %d [", tag, n);
    for (int i = 0; i < n; i++) {
        printf("%s%s", i ? " " : "", names[i]);
        free(names[i]);
    }
    out("]");
}

static void t_read(const char *tag, int fd) {
    char buf[64];
    if (fd < 0) {
        out("read(%s) = %s", tag, en(errno));
        return;
    }
    long r = pread(fd, buf, sizeof buf - 1, 0);
    if (r < 0)
        out("read(%s) = %s", tag, en(errno));
    else {
        buf[r] = 0;
        for (long i = 0; i < r; i++)
            if (buf[i] < 32 || buf[i] > 126)
                buf[i] = '.';
        out("read(%s) = %ld \"%s\"", tag, r, buf);
    }
    close(fd);
}

static void write_file(const char *p, const char *data, int mode) {
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, data, strlen(data)) < 0) {
        out("setup %s failed: %s", p, en(errno));
        exit(3);
    }
    close(fd);
}

static void run_child(const char *tag, const char *path, char *const argv[]) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *envp[] = {"PROBE=1", NULL};
        execve(path, argv, envp);
        out("execve(%s) = %s", tag, en(errno));
        fflush(stdout);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    out("child(%s) status=%d", tag, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

static int helper(int argc, char **argv) {
    char buf[4200];
    printf("helper argc=%d", argc);
    for (int i = 0; i < argc; i++)
        printf(" [%s]", argv[i]);
    long r = readlink("/proc/self/exe", buf, sizeof buf - 1);
    printf(" exe=%s", r < 0 ? en(errno) : (buf[r] = 0, buf));
    printf(" cwd=%s", getcwd(buf, sizeof buf) ? buf : en(errno));
    out(" env=%s", getenv("PROBE") ? getenv("PROBE") : "-");
    fflush(stdout);
    return 0;
}

/* AF_UNIX: bind, connect, accept, getsockname/getpeername on a socket file. */
static void t_unix(const char *tag, const char *path) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(a.sun_path) + 1;
    out("bind(%s) = %s", tag, rv(bind(s, (struct sockaddr *)&a, len)));
    out("listen(%s) = %s", tag, rv(listen(s, 4)));
    struct sockaddr_un g = {0};
    socklen_t gl = sizeof g;
    long r = getsockname(s, (struct sockaddr *)&g, &gl);
    out("getsockname(%s) = %s \"%s\"", tag, rv(r), r == 0 ? g.sun_path : "");
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    out("connect(%s) = %s", tag, rv(connect(c, (struct sockaddr *)&a, len)));
    int acc = accept(s, NULL, NULL);
    out("accept(%s) = %s", tag, acc < 0 ? en(errno) : "fd");
    memset(&g, 0, sizeof g);
    gl = sizeof g;
    r = getpeername(c, (struct sockaddr *)&g, &gl);
    out("getpeername(%s) = %s \"%s\"", tag, rv(r), r == 0 ? g.sun_path : "");
    if (acc >= 0) {
        out("send(%s) = %s", tag, rv(write(c, "ping", 4)));
        char b[8] = {0};
        r = read(acc, b, 4);
        out("recv(%s) = %s \"%s\"", tag, rv(r), b);
        close(acc);
    }
    close(c);
    close(s);
}

#ifndef PROBE_LIBC
static long openat2_(int dirfd, const char *p, uint64_t flags, uint64_t resolve) {
    struct open_how how = {.flags = flags, .mode = 0, .resolve = resolve};
    return syscall(SYS_openat2, dirfd, p, &how, sizeof how);
}
#endif

int main(int argc, char **argv) {
    if (argc >= 2 && !strncmp(argv[1], "--helper", 8))
        return helper(argc, argv);
    if (argc >= 3 && !strcmp(argv[1], "--exit"))
        return atoi(argv[2]);
    if (argc != 2 || argv[1][0] != '/') {
        fprintf(stderr, "usage: probe /ABSOLUTE/WORKDIR | --helper ARGS | --exit N\n");
        return 2;
    }
    W = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    umask(022);
    struct stat st;
    long r;
    int fd, dfd;

    out("== mkdir / create");
    out("mkdir(d) = %s", rv(SC(mkdir, P("d"), 0755)));
    out("mkdir(d again) = %s", rv(SC(mkdir, P("d"), 0755)));
    out("mkdir(missing/x) = %s", rv(SC(mkdir, P("missing/x"), 0755)));
    out("mkdir(d/new/) = %s", rv(SC(mkdir, P("d/new/"), 0700)));
    dfd = open(P("d"), O_RDONLY | O_DIRECTORY);
    out("open(d, O_DIRECTORY) = %s", dfd < 0 ? en(errno) : "fd");
    out("mkdirat(dfd, sub) = %s", rv(SC(mkdirat, dfd, "sub", 0750)));
    fd = SC(creat, P("d/f"), 0644);
    out("creat(d/f) = %s", fd < 0 ? en(errno) : "fd");
    out("write(d/f) = %s", rv(write(fd, "hello world\n", 12)));
    close(fd);
    fd = SC(open, P("d/f"), O_WRONLY | O_CREAT | O_EXCL, 0644);
    out("open(d/f, O_CREAT|O_EXCL) = %s", fd < 0 ? en(errno) : "fd");
    fd = SC(openat, dfd, "g", O_WRONLY | O_CREAT | O_EXCL, 0600);
    out("openat(dfd, g, O_CREAT|O_EXCL) = %s", fd < 0 ? en(errno) : "fd");
    if (fd >= 0)
        close(fd);
    write_file(P("d/sub/deep"), "deep\n", 0644);
    out("mknod(d/fifo) = %s", rv(SC(mknod, P("d/fifo"), S_IFIFO | 0644, 0)));
    out("mknodat(dfd, fifo2) = %s", rv(SC(mknodat, dfd, "fifo2", S_IFIFO | 0600, 0)));

    out("== symlinks");
    out("symlink(f -> d/lrel) = %s", rv(SC(symlink, "f", P("d/lrel"))));
    char abs_target[4200];
    snprintf(abs_target, sizeof abs_target, "%s/d/f", W);
    out("symlink(W/d/f -> d/labs) = %s", rv(SC(symlink, abs_target, P("d/labs"))));
    out("symlink(dangling) = %s", rv(SC(symlink, "nowhere", P("d/dangling"))));
    out("symlinkat(dfd, ldir -> sub) = %s", rv(SC(symlinkat, "sub", dfd, "ldir")));
    out("symlink(f/ -> d/lslash) = %s", rv(SC(symlink, "f/", P("d/lslash"))));
    char up[4200];
    snprintf(up, sizeof up, "../../../../../../../../..%s/d/f", W);
    out("symlink(../../..W/d/f -> d/lup) = %s", rv(SC(symlink, up, P("d/lup"))));
    out("symlink(/ -> d/lroot) = %s", rv(SC(symlink, "/", P("d/lroot"))));
    out("symlink(/proc/self -> d/lself) = %s", rv(SC(symlink, "/proc/self", P("d/lself"))));
    out("symlink(exists) = %s", rv(SC(symlink, "x", P("d/f"))));
    out("symlink(loop a->b) = %s", rv(SC(symlink, "lb", P("d/la"))));
    out("symlink(loop b->a) = %s", rv(SC(symlink, "la", P("d/lb"))));
    /* Chains: c0 -> c1 -> ... -> cN -> f; following c0 takes N+1 links. */
    out("mkdir(chain) = %s", rv(mkdir(P("chain"), 0755)));
    for (int i = 0; i < 41; i++) {
        char name[64], target[64];
        snprintf(name, sizeof name, "chain/c%d", i);
        if (i == 40)
            snprintf(target, sizeof target, "../d/f");
        else
            snprintf(target, sizeof target, "c%d", i + 1);
        if (symlink(target, P(name)) < 0)
            out("setup chain %d: %s", i, en(errno));
    }
    t_stat("chain/c1 (40 links)", P("chain/c1"));
    t_stat("chain/c0 (41 links)", P("chain/c0"));
    t_readlink("d/lrel", P("d/lrel"), 4096);
    t_readlink("d/labs", P("d/labs"), 4096);
    t_readlink("d/labs short", P("d/labs"), 3);
    t_readlink("d/dangling", P("d/dangling"), 4096);
    t_readlink("d/f not a link", P("d/f"), 4096);
    t_readlink("missing", P("d/missing"), 4096);
    t_readlink("d/lroot", P("d/lroot"), 4096);
    r = SC(readlinkat, dfd, "lrel", abs_target, sizeof abs_target);
    out("readlinkat(dfd, lrel) = %s \"%.*s\"", rv(r), r > 0 ? (int)r : 0, abs_target);

    out("== stat family");
    t_stat("d", P("d"));
    t_stat("d/", P("d/"));
    t_stat("d/.", P("d/."));
    t_stat("d/f", P("d/f"));
    t_stat("d/f/", P("d/f/"));
    t_stat("d/f/.", P("d/f/."));
    t_stat("d/f/x", P("d/f/x"));
    t_stat("d/lrel", P("d/lrel"));
    t_stat("d/lrel/", P("d/lrel/"));
    t_stat("d/labs", P("d/labs"));
    t_stat("d/lup", P("d/lup"));
    t_stat("d/lslash", P("d/lslash"));
    t_stat("d/dangling", P("d/dangling"));
    t_stat("d/la", P("d/la"));
    t_stat("d/la/x", P("d/la/x"));
    t_stat("d/ldir/deep", P("d/ldir/deep"));
    t_stat("d/ldir/../f", P("d/ldir/../f"));
    t_stat("d/lroot/probe", P("d/lroot/probe"));
    t_stat("d/fifo", P("d/fifo"));
    t_stat("d/sub/../../d/./f", P("d/sub/../../d/./f"));
    t_stat("/", "/");
    t_stat("/..", "/..");
    t_stat("/../../..", "/../../..");
    t_stat("/../probe", "/../probe");
    t_stat("empty", "");
    r = SC(newfstatat, dfd, "f", &st, 0);
    show_stat("newfstatat(dfd, f)", r, &st);
    r = SC(newfstatat, dfd, "lrel", &st, AT_SYMLINK_NOFOLLOW);
    show_stat("newfstatat(dfd, lrel, NOFOLLOW)", r, &st);
    r = SC(newfstatat, dfd, "", &st, AT_EMPTY_PATH);
    show_stat("newfstatat(dfd, \"\", AT_EMPTY_PATH)", r, &st);
    r = SC(newfstatat, dfd, "", &st, 0);
    show_stat("newfstatat(dfd, \"\", 0)", r, &st);
    r = SC(newfstatat, dfd, "/probe", &st, 0);
    show_stat("newfstatat(dfd, /probe)", r, &st);
    fd = open(P("d/f"), O_RDONLY);
    r = SC(newfstatat, fd, "", &st, AT_EMPTY_PATH);
    show_stat("newfstatat(fd of d/f, \"\", AT_EMPTY_PATH)", r, &st);
    r = SC(newfstatat, fd, "x", &st, 0);
    show_stat("newfstatat(fd of d/f, x)", r, &st);
    r = syscall(SYS_fstat, fd, &st);
    show_stat("fstat(d/f)", r, &st);
    struct statx sx;
    r = SC(statx, fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx);
    out("statx(fd, \"\", AT_EMPTY_PATH) = %s type=%s size=%lld", rv(r), ftype(sx.stx_mode),
        (long long)sx.stx_size);
    close(fd);
    r = SC(statx, dfd, "labs", 0, STATX_BASIC_STATS, &sx);
    out("statx(dfd, labs) = %s type=%s size=%lld", rv(r), ftype(sx.stx_mode), (long long)sx.stx_size);
    r = SC(statx, AT_FDCWD, P("d/missing"), 0, STATX_BASIC_STATS, &sx);
    out("statx(missing) = %s", rv(r));
    struct statfs sf;
    out("statfs(d) = %s", rv(SC(statfs, P("d"), &sf)));
    out("statfs(missing) = %s", rv(SC(statfs, P("missing"), &sf)));

    out("== access");
    chmod(P("d/f"), 0644);
    out("access(d/f, F_OK) = %s", rv(SC(access, P("d/f"), F_OK)));
    out("access(d/f, R_OK|W_OK) = %s", rv(SC(access, P("d/f"), R_OK | W_OK)));
    out("access(d/f, X_OK) = %s", rv(SC(access, P("d/f"), X_OK)));
    out("access(/probe, X_OK) = %s", rv(SC(access, "/probe", X_OK)));
    out("access(missing) = %s", rv(SC(access, P("d/missing"), F_OK)));
    out("access(d/f/x) = %s", rv(SC(access, P("d/f/x"), F_OK)));
    out("access(d/dangling) = %s", rv(SC(access, P("d/dangling"), F_OK)));
    out("faccessat(dfd, f, R_OK) = %s", rv(SC(faccessat, dfd, "f", R_OK, 0)));
    out("faccessat(dfd, labs, W_OK) = %s", rv(SC(faccessat, dfd, "labs", W_OK, 0)));
    out("faccessat2(dfd, dangling, F_OK, NOFOLLOW) = %s",
        rv(SC(faccessat2, dfd, "dangling", F_OK, AT_SYMLINK_NOFOLLOW)));
    out("faccessat2(dfd, dangling, F_OK, 0) = %s", rv(SC(faccessat2, dfd, "dangling", F_OK, 0)));
    out("faccessat2(dfd, f, X_OK, AT_EACCESS) = %s",
        rv(SC(faccessat2, dfd, "f", X_OK, AT_EACCESS)));
    out("faccessat2(AT_FDCWD, /probe, X_OK, AT_EACCESS) = %s",
        rv(SC(faccessat2, AT_FDCWD, "/probe", X_OK, AT_EACCESS)));
    out("faccessat2(dfd, \"\", R_OK, AT_EMPTY_PATH) = %s",
        rv(SC(faccessat2, dfd, "", R_OK, AT_EMPTY_PATH)));

    out("== chmod / utimes / truncate");
    out("chmod(d/f, 0640) = %s", rv(SC(chmod, P("d/f"), 0640)));
    t_stat("d/f after chmod", P("d/f"));
    out("chmod(d/labs, 0600) = %s", rv(SC(chmod, P("d/labs"), 0600)));
    t_stat("d/f after chmod via link", P("d/f"));
    out("fchmodat(dfd, g, 0604) = %s", rv(SC(fchmodat, dfd, "g", 0604, 0)));
    t_stat("d/g after fchmodat", P("d/g"));
    out("chmod(missing) = %s", rv(SC(chmod, P("d/missing"), 0600)));
    struct timespec ts[2] = {{1000000000, 0}, {1200000000, 0}};
    out("utimensat(d/f) = %s", rv(SC(utimensat, AT_FDCWD, P("d/f"), ts, 0)));
    t_stat("d/f after utimensat", P("d/f"));
    struct timespec ts2[2] = {{1100000000, 0}, {1300000000, 0}};
    out("utimensat(dfd, labs) = %s", rv(SC(utimensat, dfd, "labs", ts2, 0)));
    t_stat("d/f after utimensat via link", P("d/f"));
    struct timespec ts3[2] = {{1000000001, 0}, {1400000000, 0}};
    out("utimensat(dfd, lrel, NOFOLLOW) = %s",
        rv(SC(utimensat, dfd, "lrel", ts3, AT_SYMLINK_NOFOLLOW)));
    r = SC(lstat, P("d/lrel"), &st);
    out("lstat(d/lrel).mtime = %s %lld", rv(r), (long long)st.st_mtime);
    struct timeval tv[2] = {{1000000002, 0}, {1500000000, 0}};
    out("utimes(d/g) = %s", rv(SC(utimes, P("d/g"), tv)));
    t_stat("d/g after utimes", P("d/g"));
    out("truncate(d/f, 5) = %s", rv(SC(truncate, P("d/f"), 5)));
    t_stat("d/f after truncate", P("d/f"));
    out("truncate(d, 5) = %s", rv(SC(truncate, P("d"), 5)));
    out("truncate(d/lrel, 4) = %s", rv(SC(truncate, P("d/lrel"), 4)));
    t_read("d/f after truncate via link", open(P("d/f"), O_RDONLY));
    out("chown(d/f, self) = %s", rv(SC(chown, P("d/f"), getuid(), getgid())));
    out("lchown(d/lrel, self) = %s", rv(SC(lchown, P("d/lrel"), -1, -1)));
    out("fchownat(dfd, g, self) = %s", rv(SC(fchownat, dfd, "g", -1, -1, 0)));
    out("chown(missing) = %s", rv(SC(chown, P("d/missing"), -1, -1)));

    out("== xattr");
    r = setxattr(P("d/f"), "user.probe", "v1", 2, 0);
    out("setxattr(d/f) = %s", rv(r));
    if (r == 0) {
        char v[16] = {0};
        r = getxattr(P("d/labs"), "user.probe", v, sizeof v - 1);
        out("getxattr(d/labs) = %s \"%s\"", rv(r), r > 0 ? v : "");
        r = lgetxattr(P("d/labs"), "user.probe", v, sizeof v - 1);
        out("lgetxattr(d/labs) = %s", rv(r));
        char l[256] = {0};
        r = listxattr(P("d/f"), l, sizeof l);
        out("listxattr(d/f) has user.probe = %d", r > 0 && memmem(l, r, "user.probe", 10) != NULL);
        out("removexattr(d/lrel) = %s", rv(removexattr(P("d/lrel"), "user.probe")));
        out("removexattr(d/f again) = %s", rv(removexattr(P("d/f"), "user.probe")));
    }
    out("getxattr(missing) = %s", rv(getxattr(P("d/missing"), "user.probe", NULL, 0)));

    out("== open / openat");
    write_file(P("d/f"), "hello world\n", 0644);
    t_read("open(d/f)", SC(open, P("d/f"), O_RDONLY));
    t_read("open(d/labs)", SC(open, P("d/labs"), O_RDONLY));
    t_read("open(d/lup)", SC(open, P("d/lup"), O_RDONLY));
    t_read("openat(dfd, f)", SC(openat, dfd, "f", O_RDONLY));
    t_read("openat(dfd, ../d/lrel)", SC(openat, dfd, "../d/lrel", O_RDONLY));
    t_read("openat(dfd, sub/deep)", SC(openat, dfd, "sub/deep", O_RDONLY));
    t_read("openat(dfd, abs)", SC(openat, dfd, P("d/f"), O_RDONLY));
    t_read("openat(dfd, ldir/deep)", SC(openat, dfd, "ldir/deep", O_RDONLY));
    fd = open(P("d/f"), O_RDONLY);
    t_read("openat(file fd, x)", SC(openat, fd, "x", O_RDONLY));
    close(fd);
    t_read("openat(bad fd, x)", SC(openat, 9999, "x", O_RDONLY));
    t_read("open(d/lrel, O_NOFOLLOW)", SC(open, P("d/lrel"), O_RDONLY | O_NOFOLLOW));
    t_read("open(d/f, O_DIRECTORY)", SC(open, P("d/f"), O_RDONLY | O_DIRECTORY));
    t_read("open(d/dangling, O_CREAT|O_EXCL)",
           SC(open, P("d/dangling"), O_WRONLY | O_CREAT | O_EXCL, 0644));
    t_read("open(d/missing)", SC(open, P("d/missing"), O_RDONLY));
    t_read("open(d/la)", SC(open, P("d/la"), O_RDONLY));
    fd = SC(open, P("d/dangling"), O_WRONLY | O_CREAT, 0644);
    out("open(d/dangling, O_CREAT) = %s", fd < 0 ? en(errno) : "fd");
    if (fd >= 0)
        close(fd);
    t_stat("d/nowhere (created through dangling)", P("d/nowhere"));
    t_read("open(/proc/self/exe)", SC(open, "/proc/self/exe", O_RDONLY));
#ifdef PROBE_LIBC
    /* A guest symlink to /proc/self is followed by the kernel to the loader F1-F4 run the
     * program with; only the literal /proc/self/exe is the program's (spec §4.3). */
    out("open(d/lself/exe) skipped: the kernel's /proc/self/exe");
#else
    t_read("open(d/lself/exe)", SC(open, P("d/lself/exe"), O_RDONLY));
#endif
    t_read("open(/../../probe)", SC(open, "/../../probe", O_RDONLY));

    out("== openat2");
#ifdef PROBE_LIBC
    out("skipped: no libc wrapper");
#else
    int wfd = open(W, O_RDONLY | O_DIRECTORY);
    t_read("openat2(AT_FDCWD, W/d/f)", openat2_(AT_FDCWD, P("d/f"), O_RDONLY, 0));
    t_read("openat2(dfd, f)", openat2_(dfd, "f", O_RDONLY, 0));
    t_read("openat2(wfd, /d/f, IN_ROOT)", openat2_(wfd, "/d/f", O_RDONLY, RESOLVE_IN_ROOT));
    t_read("openat2(wfd, d/labs, IN_ROOT)", openat2_(wfd, "d/labs", O_RDONLY, RESOLVE_IN_ROOT));
    t_read("openat2(wfd, ../../../d/f, IN_ROOT)", openat2_(wfd, "../../../d/f", O_RDONLY, RESOLVE_IN_ROOT));
    t_read("openat2(dfd, ../d/f, BENEATH)", openat2_(dfd, "../d/f", O_RDONLY, RESOLVE_BENEATH));
    t_read("openat2(dfd, sub/deep, BENEATH)", openat2_(dfd, "sub/deep", O_RDONLY, RESOLVE_BENEATH));
    t_read("openat2(dfd, lrel, NO_SYMLINKS)", openat2_(dfd, "lrel", O_RDONLY, RESOLVE_NO_SYMLINKS));
    t_read("openat2(dfd, f, NO_SYMLINKS)", openat2_(dfd, "f", O_RDONLY, RESOLVE_NO_SYMLINKS));
    t_read("openat2(AT_FDCWD, /proc/self/exe, NO_MAGICLINKS)",
           openat2_(AT_FDCWD, "/proc/self/exe", O_RDONLY, RESOLVE_NO_MAGICLINKS));
    t_read("openat2(AT_FDCWD, /probe)", openat2_(AT_FDCWD, "/probe", O_RDONLY, 0));
    t_read("openat2(AT_FDCWD, /etc/passwd)", openat2_(AT_FDCWD, "/etc/passwd", O_RDONLY, 0));
    close(wfd);
#endif

    out("== rename / link / unlink / rmdir");
    out("rename(d/f, d/f2) = %s", rv(SC(rename, P("d/f"), P("d/f2"))));
    t_stat("d/f after rename", P("d/f"));
    out("renameat(dfd, f2, dfd, f) = %s", rv(SC(renameat, dfd, "f2", dfd, "f")));
    out("renameat2(g -> f, NOREPLACE) = %s", rv(SC(renameat2, dfd, "g", dfd, "f", RENAME_NOREPLACE)));
    out("renameat2(g <-> f, EXCHANGE) = %s", rv(SC(renameat2, dfd, "g", dfd, "f", RENAME_EXCHANGE)));
    t_stat("d/f after exchange", P("d/f"));
    out("renameat2(g <-> f, EXCHANGE) = %s", rv(SC(renameat2, dfd, "g", dfd, "f", RENAME_EXCHANGE)));
    out("rename(d/lrel, d/lrel2) = %s", rv(SC(rename, P("d/lrel"), P("d/lrel2"))));
    t_readlink("d/lrel2", P("d/lrel2"), 4096);
    out("rename(d/lrel2, d/lrel) = %s", rv(SC(rename, P("d/lrel2"), P("d/lrel"))));
    out("rename(missing) = %s", rv(SC(rename, P("d/missing"), P("d/x"))));
    out("rename(d, d/sub/x) = %s", rv(SC(rename, P("d"), P("d/sub/x"))));
    out("link(d/f, d/h) = %s", rv(SC(link, P("d/f"), P("d/h"))));
    t_stat("d/h", P("d/h"));
    out("link(d/lrel, d/hl) = %s", rv(SC(link, P("d/lrel"), P("d/hl"))));
    t_stat("d/hl (link to a symlink)", P("d/hl"));
    out("linkat(dfd, labs, dfd, hf, FOLLOW) = %s", rv(SC(linkat, dfd, "labs", dfd, "hf", AT_SYMLINK_FOLLOW)));
    t_stat("d/hf (link to the target)", P("d/hf"));
    out("linkat(dfd, f, dfd, h) exists = %s", rv(SC(linkat, dfd, "f", dfd, "h", 0)));
    out("unlink(d/h) = %s", rv(SC(unlink, P("d/h"))));
    out("unlink(d/hl) = %s", rv(SC(unlink, P("d/hl"))));
    out("unlinkat(dfd, hf) = %s", rv(SC(unlinkat, dfd, "hf", 0)));
    t_stat("d/f after unlinks", P("d/f"));
    out("unlink(d/sub) = %s", rv(SC(unlink, P("d/sub"))));
    out("unlink(d/labs) = %s", rv(SC(unlink, P("d/labs"))));
    t_stat("d/f after unlinking a link to it", P("d/f"));
    out("unlink(d/missing) = %s", rv(SC(unlink, P("d/missing"))));
    out("rmdir(d/sub) = %s", rv(SC(rmdir, P("d/sub"))));
    out("rmdir(d/new) = %s", rv(SC(rmdir, P("d/new"))));
    out("rmdir(d/ldir) = %s", rv(SC(rmdir, P("d/ldir"))));
    out("rmdir(d/f) = %s", rv(SC(rmdir, P("d/f"))));
    out("rmdir(d/missing) = %s", rv(SC(rmdir, P("d/missing"))));
    out("unlinkat(dfd, sub/deep) = %s", rv(SC(unlinkat, dfd, "sub/deep", 0)));
    out("unlinkat(dfd, sub, AT_REMOVEDIR) = %s", rv(SC(unlinkat, dfd, "sub", AT_REMOVEDIR)));
    /* In their own directory, so that a wrong answer does not change what follows. */
    out("mkdir(m) = %s", rv(mkdir(P("m"), 0755)));
    out("symlink(gone -> m/dl) = %s", rv(symlink("gone", P("m/dl"))));
    out("mkdir(m/dl/) = %s", rv(SC(mkdir, P("m/dl/"), 0755)));
    t_stat("m/gone after mkdir through dangling/", P("m/gone"));
    out("symlink(never -> m/dl2) = %s", rv(symlink("never", P("m/dl2"))));
    t_list("d", P("d"));
    t_list("/", "/");
    t_list("d/f", P("d/f"));

    out("== cwd");
    t_cwd("start");
    out("chdir(d) = %s", rv(SC(chdir, P("d"))));
    t_cwd("d");
    t_read("open(f) relative", SC(open, "f", O_RDONLY));
    t_read("open(../d/./f) relative", SC(open, "../d/./f", O_RDONLY));
    t_stat("relative lrel", "lrel");
    t_list(".", ".");
    char buf[4200];
    r = readlink("/proc/self/cwd", buf, sizeof buf);
    out("readlink(/proc/self/cwd) = %s \"%.*s\"", rv(r), r > 0 ? (int)r : 0, buf);
    out("chdir(f) = %s", rv(SC(chdir, "f")));
    out("chdir(missing) = %s", rv(SC(chdir, "missing")));
    out("chdir(m/dl2 dangling) = %s", rv(SC(chdir, P("m/dl2"))));
    out("chdir(d) = %s", rv(SC(chdir, P("d"))));
    out("mkdir(d/mv) = %s", rv(mkdir("mv", 0755)));
    out("chdir(mv) = %s", rv(SC(chdir, "mv")));
    out("rename(W/d/mv, W/d/moved) = %s", rv(rename(P("d/mv"), P("d/moved"))));
    t_cwd("after rename of cwd");
    out("chdir(..) = %s", rv(SC(chdir, "..")));
    t_cwd("..");
    out("chdir(/..) = %s", rv(SC(chdir, "/..")));
    t_cwd("/..");
    out("chdir(..) at / = %s", rv(SC(chdir, "..")));
    t_cwd("/ then ..");
    t_stat("relative ../../probe at /", "../../probe");
    out("chdir(d/lroot/./) = %s", rv(SC(chdir, P("d/lroot/./"))));
    t_cwd("via symlink to /");
    out("fchdir(dfd) = %s", rv(SC(fchdir, dfd)));
    t_cwd("fchdir");
    fd = open(P("d/f"), O_RDONLY);
    out("fchdir(file) = %s", rv(SC(fchdir, fd)));
    close(fd);
    char small[4];
    r = getcwd_(small, sizeof small);
    out("getcwd(size 4) = %s", rv(r));

    out("== /proc");
    t_readlink("/proc/self/exe", "/proc/self/exe", 4096);
    t_readlink("/proc/self/exe short", "/proc/self/exe", 3);
    t_readlink("/proc/self/cwd", "/proc/self/cwd", 4096);
    t_readlink("/proc/self/root", "/proc/self/root", 4096);
    t_readlink("/proc/thread-self/cwd", "/proc/thread-self/cwd", 4096);
    snprintf(buf, sizeof buf, "/proc/%d/cwd", getpid());
    t_readlink("/proc/PID/cwd", buf, 4096);
    snprintf(buf, sizeof buf, "/proc/self/fd/%d", dfd);
    t_readlink("/proc/self/fd/DFD", buf, 4096);
    r = readlinkat(dfd, "lself", buf, sizeof buf);
    out("readlinkat(dfd, lself) = %s \"%.*s\"", rv(r), r > 0 ? (int)r : 0, buf);
    int pfd[2];
    pipe(pfd);
    char pl[64];
    snprintf(pl, sizeof pl, "/proc/self/fd/%d", pfd[0]);
    r = readlink(pl, buf, sizeof buf);
    out("readlink(/proc/self/fd/PIPE) = %s starts-with-pipe=%d", rv(r), r > 0 && !strncmp(buf, "pipe:[", 6));
    close(pfd[0]);
    close(pfd[1]);
    t_stat("/proc/self/exe", "/proc/self/exe");
    t_stat("/proc/self/root/probe", "/proc/self/root/probe");
    t_stat("/proc/self/cwd/f", "/proc/self/cwd/f");

    out("== AF_UNIX");
    t_unix("abs", P("sock"));
    t_stat("sock", P("sock"));
    t_unix("existing", P("sock"));
    t_unix("relative", "rsock");
    t_stat("d/rsock", P("d/rsock"));
    t_unix("missing dir", P("nodir/sock"));

    out("== long paths");
    /* W/./././.../d/f just under PATH_MAX, and one past it. */
    char lp[8192];
    int n = snprintf(lp, sizeof lp, "%s", W);
    while (n < 4080)
        n += snprintf(lp + n, sizeof lp - n, "/.");
    snprintf(lp + n, sizeof lp - n, "/d/f");
    out("len %zu", strlen(lp));
    t_read("open(long)", SC(open, lp, O_RDONLY));
    while (n < 4100)
        n += snprintf(lp + n, sizeof lp - n, "/.");
    snprintf(lp + n, sizeof lp - n, "/d/f");
    out("len %zu", strlen(lp));
    t_read("open(too long)", SC(open, lp, O_RDONLY));
    char name[300];
    memset(name, 'n', 255);
    name[255] = 0;
    out("mkdirat(255-byte name) = %s", rv(mkdirat(dfd, name, 0755)));
    name[255] = 'n';
    name[256] = 0;
    out("mkdirat(256-byte name) = %s", rv(mkdirat(dfd, name, 0755)));
    /* A tree 16 x 200 bytes deep, walked relatively then named absolutely (about 3.3 KB). */
    name[200] = 0;
    int cur = dup(dfd);
    for (int i = 0; i < 16; i++) {
        mkdirat(cur, name, 0755);
        int nx = openat(cur, name, O_RDONLY | O_DIRECTORY);
        close(cur);
        cur = nx;
    }
    fd = openat(cur, "leaf", O_WRONLY | O_CREAT, 0644);
    out("openat(deep, leaf) = %s", fd < 0 ? en(errno) : "fd");
    if (fd >= 0) {
        write(fd, "leaf\n", 5);
        close(fd);
    }
    n = snprintf(lp, sizeof lp, "%s/d", W);
    for (int i = 0; i < 16; i++)
        n += snprintf(lp + n, sizeof lp - n, "/%s", name);
    snprintf(lp + n, sizeof lp - n, "/leaf");
    out("len %zu", strlen(lp));
    t_read("open(deep absolute)", SC(open, lp, O_RDONLY));
    out("fchdir(deep) = %s", rv(fchdir(cur)));
    t_read("open(leaf) in deep cwd", SC(open, "leaf", O_RDONLY));
    r = getcwd_(buf, sizeof buf);
    out("getcwd(deep) = %s len=%zu", rv(r), r > 0 ? strlen(buf) : 0);
    close(cur);
    chdir("/");

    out("== inotify / chroot");
    int in = inotify_init1(IN_CLOEXEC);
    r = inotify_add_watch(in, P("d"), IN_CREATE);
    out("inotify_add_watch(d) = %s", r < 0 ? en(errno) : "wd");
    r = inotify_add_watch(in, P("d/missing"), IN_CREATE);
    out("inotify_add_watch(missing) = %s", r < 0 ? en(errno) : "wd");
    close(in);
#ifdef PROBE_LIBC
    out("chroot(d) skipped: emulated by the shim");
#else
    out("chroot(d) = %s", rv(syscall(SYS_chroot, P("d"))));
#endif

    out("== execve");
    {
        char *a1[] = {"helper-argv0", "--helper", "one", "two words", NULL};
        run_child("/probe", "/probe", a1);
        char *a2[] = {"rel", "--helper", NULL};
        chdir(W);
        symlink("/probe", P("lprobe"));
        run_child("relative ../W/lprobe", "lprobe", a2);
        chdir("/");
        write_file(P("script"), "#!/probe --helper  from-script \nexit 1\n", 0755);
        char *a3[] = {"script-argv0", "s1", NULL};
        run_child("#! script", P("script"), a3);
        write_file(P("script2"), "#! /lprobe-missing\n", 0755);
        run_child("#! missing interpreter", P("script2"), a3);
        write_file(P("noexec"), "#!/probe --helper\n", 0644);
        run_child("not executable", P("noexec"), a3);
        run_child("directory", P("d"), a3);
        run_child("missing", P("d/missing"), a3);
        write_file(P("garbage"), "garbage\n", 0755);
        run_child("no format", P("garbage"), a3);
        char *a4[] = {"self", "--helper", "via-proc-self-exe", NULL};
        run_child("/proc/self/exe", "/proc/self/exe", a4);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            char *envp[] = {"PROBE=2", NULL};
            int pdir = open("/", O_RDONLY | O_DIRECTORY);
            execveat_(pdir, "probe", a1, envp, 0);
            out("execveat(/, probe) = %s", en(errno));
            fflush(stdout);
            _exit(127);
        }
        int ws;
        waitpid(pid, &ws, 0);
        out("child(execveat) status=%d", WEXITSTATUS(ws));
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
            char *envp[] = {"PROBE=3", NULL};
            int pf = open("/probe", O_RDONLY);
            execveat_(pf, "", a1, envp, AT_EMPTY_PATH);
            out("execveat(fd, \"\", AT_EMPTY_PATH) = %s", en(errno));
            fflush(stdout);
            _exit(127);
        }
        waitpid(pid, &ws, 0);
        out("child(fexecve) status=%d", WEXITSTATUS(ws));
        char *a5[] = {"exit", "--exit", "42", NULL};
        run_child("exit 42", "/probe", a5);
    }
    close(dfd);
    out("== done");
    return 0;
}
