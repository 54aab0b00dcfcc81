/* msh: a small shell for the musl fixture image (scripts/fixtures.sh, image test/musl), built
 * dynamically with Debian's musl-gcc so that every command a test runs in that image goes through
 * musl's loader and libc (and, in the F modes, through the LD_PRELOAD shim). Debian ships no musl
 * build of a real shell, and a static busybox would bypass LD_PRELOAD.
 *
 *   msh -c 'CMD; CMD && CMD || CMD'   or   msh SCRIPT [ARGS]   or commands on stdin
 *
 * A command is words separated by blanks; '...' and "..." quote, $VAR, $? and $0..$9 expand
 * (outside single quotes), `> FILE` and `>> FILE` redirect stdout. Builtins: cd, pwd, echo,
 * exit, cat, ls [-a], true, false, test -e/-f/-d, readlink, export K=V, exec. Anything else is
 * run with fork + execvp (the guest PATH search). A line starting with '#' is a comment.
 * Called by another name (a link named echo, cat, ls, pwd, true, false, test, readlink) it is
 * that builtin, busybox-style, so the image has real programs to exec.
 * Written for udocker-rs. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXW 128
static int status;
static int sargc;
static char **sargv;

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

static int b_cat(int n, char **w) {
    char buf[4096];
    int rc = 0;
    for (int i = 1; i < n || (n == 1 && i == 1); i++) {
        int fd = n == 1 ? 0 : open(w[i], O_RDONLY);
        if (fd < 0) { fprintf(stderr, "cat: %s: %s\n", w[i], strerror(errno)); rc = 1; continue; }
        ssize_t k;
        fflush(stdout);
        while ((k = read(fd, buf, sizeof buf)) > 0)
            if (write(1, buf, k) != k) return 1;
        if (fd) close(fd);
        if (n == 1) break;
    }
    return rc;
}

static int b_ls(int n, char **w) {
    int all = 0, rc = 0, i = 1;
    if (i < n && !strcmp(w[i], "-a")) { all = 1; i++; }
    const char *dflt[] = {"."};
    char **dirs = i < n ? w + i : (char **)dflt;
    int nd = i < n ? n - i : 1;
    for (int k = 0; k < nd; k++) {
        DIR *d = opendir(dirs[k]);
        if (!d) { fprintf(stderr, "ls: %s: %s\n", dirs[k], strerror(errno)); rc = 1; continue; }
        char *names[4096];
        int m = 0;
        struct dirent *e;
        while ((e = readdir(d)) && m < 4096)
            if (all || e->d_name[0] != '.') names[m++] = strdup(e->d_name);
        closedir(d);
        qsort(names, m, sizeof *names, cmp);
        for (int j = 0; j < m; j++) { puts(names[j]); free(names[j]); }
    }
    return rc;
}

static int b_test(int n, char **w) {
    struct stat st;
    if (n != 3) return 2;
    if (stat(w[2], &st)) return 1;
    if (!strcmp(w[1], "-f")) return !S_ISREG(st.st_mode);
    if (!strcmp(w[1], "-d")) return !S_ISDIR(st.st_mode);
    return 0;
}

/* Run one simple command (w[0..n-1], NULL-terminated). */
static int simple(int n, char **w) {
    if (n == 0) return status;
    const char *c = w[0];
    if (!strcmp(c, "cd")) {
        const char *d = n > 1 ? w[1] : getenv("HOME");
        if (chdir(d ? d : "/")) { fprintf(stderr, "cd: %s: %s\n", d, strerror(errno)); return 1; }
        char b[4096];
        if (getcwd(b, sizeof b)) setenv("PWD", b, 1);
        return 0;
    }
    if (!strcmp(c, "pwd")) {
        char b[4096];
        if (!getcwd(b, sizeof b)) { perror("pwd"); return 1; }
        puts(b);
        return 0;
    }
    if (!strcmp(c, "echo")) {
        for (int i = 1; i < n; i++) printf("%s%s", w[i], i + 1 < n ? " " : "");
        putchar('\n');
        return 0;
    }
    if (!strcmp(c, "exit")) { fflush(stdout); exit(n > 1 ? atoi(w[1]) : status); }
    if (!strcmp(c, "true")) return 0;
    if (!strcmp(c, "false")) return 1;
    if (!strcmp(c, "cat")) return b_cat(n, w);
    if (!strcmp(c, "ls")) return b_ls(n, w);
    if (!strcmp(c, "test")) return b_test(n, w);
    if (!strcmp(c, "readlink")) {
        char b[4096];
        ssize_t k = n > 1 ? readlink(w[1], b, sizeof b - 1) : -1;
        if (k < 0) return 1;
        b[k] = 0;
        puts(b);
        return 0;
    }
    if (!strcmp(c, "export")) {
        for (int i = 1; i < n; i++) {
            char *eq = strchr(w[i], '=');
            if (eq) { *eq = 0; setenv(w[i], eq + 1, 1); }
        }
        return 0;
    }
    fflush(stdout);
    if (!strcmp(c, "exec")) {
        if (n < 2) return 0;
        execvp(w[1], w + 1);
        fprintf(stderr, "msh: %s: %s\n", w[1], strerror(errno));
        exit(127);
    }
    pid_t p = fork();
    if (p < 0) { perror("fork"); return 1; }
    if (p == 0) {
        execvp(c, w);
        fprintf(stderr, "msh: %s: %s\n", c, strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    int st;
    while (waitpid(p, &st, 0) < 0)
        if (errno != EINTR) return 1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Append the value of the variable at *s (after '$') to out; advances *s. */
static void expand(const char **s, char *out, size_t *o, size_t cap) {
    const char *p = *s;
    char name[64];
    size_t k = 0;
    const char *v = "";
    char num[16];
    if (*p == '?') {
        snprintf(num, sizeof num, "%d", status);
        v = num;
        p++;
    } else if (*p >= '0' && *p <= '9') {
        int i = *p++ - '0';
        v = i < sargc ? sargv[i] : "";
    } else {
        while ((*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                (*p >= '0' && *p <= '9')) && k < sizeof name - 1)
            name[k++] = *p++;
        name[k] = 0;
        if (!k) { v = "$"; } else { v = getenv(name); if (!v) v = ""; }
    }
    while (*v && *o < cap - 1) out[(*o)++] = *v++;
    *s = p;
}

/* Run a line: simple commands joined by ';', '&&', '||', each with optional > / >> FILE. */
static void line(const char *s) {
    char buf[8192];
    char *w[MAXW];
    int n = 0, skip = 0;
    size_t o = 0;
    char *redir = 0;
    int append = 0, want_redir = 0;
    while (*s == ' ' || *s == '\t') s++;
    if (*s == '#') return;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        char op = 0;
        if (!*s || *s == '\n' || *s == ';') op = ';';
        else if (s[0] == '&' && s[1] == '&') op = '&';
        else if (s[0] == '|' && s[1] == '|') op = '|';
        if (op) {
            w[n] = 0;
            if (!skip) {
                int saved = -1;
                if (redir) {
                    fflush(stdout);
                    int fd = open(redir, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0666);
                    if (fd < 0) { fprintf(stderr, "msh: %s: %s\n", redir, strerror(errno)); status = 1; goto next; }
                    saved = dup(1);
                    dup2(fd, 1);
                    close(fd);
                }
                status = simple(n, w);
                if (saved >= 0) { fflush(stdout); dup2(saved, 1); close(saved); }
            }
        next:
            skip = (op == '&' && status) || (op == '|' && !status);
            n = 0; o = 0; redir = 0; append = 0; want_redir = 0;
            if (!*s || *s == '\n') {
                if (*s == '\n' && s[1]) { line(s + 1); }
                return;
            }
            s += op == ';' ? 1 : 2;
            continue;
        }
        if (*s == '>') {
            append = s[1] == '>';
            s += append ? 2 : 1;
            want_redir = 1;
            continue;
        }
        /* one word */
        char *start = buf + o;
        while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != ';' && *s != '>' &&
               !(s[0] == '&' && s[1] == '&') && !(s[0] == '|' && s[1] == '|') && o < sizeof buf - 2) {
            if (*s == '\'') {
                s++;
                while (*s && *s != '\'' && o < sizeof buf - 2) buf[o++] = *s++;
                if (*s) s++;
            } else if (*s == '"') {
                s++;
                while (*s && *s != '"' && o < sizeof buf - 2) {
                    if (*s == '$') { s++; expand(&s, buf, &o, sizeof buf); }
                    else buf[o++] = *s++;
                }
                if (*s) s++;
            } else if (*s == '$') {
                s++;
                expand(&s, buf, &o, sizeof buf);
            } else {
                buf[o++] = *s++;
            }
        }
        buf[o++] = 0;
        if (want_redir) { redir = start; want_redir = 0; }
        else if (n < MAXW - 1) w[n++] = start;
    }
}

static const char *const APPLETS[] = {"echo", "cat", "ls", "pwd", "true", "false", "test", "readlink", 0};

int main(int argc, char **argv) {
    char l[8192];
    const char *me = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    for (int i = 0; APPLETS[i]; i++)
        if (!strcmp(me, APPLETS[i])) {
            argv[0] = (char *)me;
            int rc = simple(argc, argv);
            fflush(stdout);
            return rc;
        }
    if (argc > 2 && !strcmp(argv[1], "-c")) {
        /* sh -c CMD [NAME [ARGS]]: $0 is NAME, else the shell's own name. */
        sargv = argc > 3 ? argv + 3 : argv;
        sargc = argc > 3 ? argc - 3 : 1;
        line(argv[2]);
        fflush(stdout);
        return status;
    }
    FILE *in = stdin;
    sargc = argc;
    sargv = argv;
    if (argc > 1) {
        in = fopen(argv[1], "r");
        if (!in) { fprintf(stderr, "msh: %s: %s\n", argv[1], strerror(errno)); return 127; }
        sargc = argc - 1;
        sargv = argv + 1;
    }
    while (fgets(l, sizeof l, in)) line(l);
    fflush(stdout);
    return status;
}
