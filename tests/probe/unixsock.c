/* AF_UNIX addresses through the tracer: every call that takes or returns a socket path, with
 * paths given as argv[1] (a directory) so that the test can pick one whose host path is longer
 * than sun_path. One line per call: what the guest sees. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un addr(const char *dir, const char *name, socklen_t *len)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s/%s", dir, name);
    *len = offsetof(struct sockaddr_un, sun_path) + strlen(a.sun_path) + 1;
    return a;
}

static const char *name_of(struct sockaddr_un *a, socklen_t len)
{
    static char buf[256];
    if (len <= offsetof(struct sockaddr_un, sun_path))
        return "(unnamed)";
    snprintf(buf, sizeof buf, "%.*s (len %u)", (int)(len - offsetof(struct sockaddr_un, sun_path)),
             a->sun_path, (unsigned)len);
    return buf;
}

#define CHECK(what, call)                                                      \
    do {                                                                       \
        if ((call) < 0) {                                                      \
            printf("%s: %s\n", what, strerror(errno));                         \
            return 1;                                                          \
        }                                                                      \
    } while (0)

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    struct sockaddr_un a, peer;
    socklen_t len, plen;
    char buf[64];
    ssize_t n;

    /* Datagrams: server and client both bound, so that the receiver learns the sender. */
    int srv = socket(AF_UNIX, SOCK_DGRAM, 0), cli = socket(AF_UNIX, SOCK_DGRAM, 0);
    a = addr(dir, "dgram", &len);
    CHECK("bind dgram", bind(srv, (struct sockaddr *)&a, len));
    a = addr(dir, "client", &len);
    CHECK("bind client", bind(cli, (struct sockaddr *)&a, len));
    plen = sizeof peer;
    CHECK("getsockname", getsockname(cli, (struct sockaddr *)&peer, &plen));
    printf("getsockname %s\n", name_of(&peer, plen));

    a = addr(dir, "dgram", &len);
    struct iovec iov = {.iov_base = "hello", .iov_len = 5};
    struct msghdr m = {.msg_name = &a, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1};
    CHECK("sendmsg", sendmsg(cli, &m, 0));
    plen = sizeof peer;
    n = recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen);
    CHECK("recvfrom", n);
    printf("recvfrom %.*s from %s\n", (int)n, buf, name_of(&peer, plen));

    CHECK("sendto", sendto(cli, "again", 5, 0, (struct sockaddr *)&a, len));
    memset(&peer, 0, sizeof peer);
    struct iovec riov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr rm = {.msg_name = &peer, .msg_namelen = sizeof peer, .msg_iov = &riov, .msg_iovlen = 1};
    n = recvmsg(srv, &rm, 0);
    CHECK("recvmsg", n);
    printf("recvmsg %.*s from %s\n", (int)n, buf, name_of(&peer, rm.msg_namelen));

    /* A buffer too small for the address: cut, and the length tells the whole size. */
    CHECK("sendto", sendto(cli, "cut", 3, 0, (struct sockaddr *)&a, len));
    char small[8];
    plen = sizeof small;
    n = recvfrom(srv, buf, sizeof buf, 0, (struct sockaddr *)small, &plen);
    CHECK("recvfrom small", n);
    printf("recvfrom small %.*s len %u\n", (int)n, buf, (unsigned)plen);

    /* Streams: accept names the (bound) client, getpeername the server. */
    int ls = socket(AF_UNIX, SOCK_STREAM, 0), c = socket(AF_UNIX, SOCK_STREAM, 0);
    a = addr(dir, "stream", &len);
    CHECK("bind stream", bind(ls, (struct sockaddr *)&a, len));
    CHECK("listen", listen(ls, 1));
    a = addr(dir, "cli2", &len);
    CHECK("bind cli2", bind(c, (struct sockaddr *)&a, len));
    a = addr(dir, "stream", &len);
    CHECK("connect", connect(c, (struct sockaddr *)&a, len));
    plen = sizeof peer;
    int s = accept(ls, (struct sockaddr *)&peer, &plen);
    CHECK("accept", s);
    printf("accept %s\n", name_of(&peer, plen));
    plen = sizeof peer;
    CHECK("getpeername", getpeername(c, (struct sockaddr *)&peer, &plen));
    printf("getpeername %s\n", name_of(&peer, plen));
    /* Binding a name that exists fails as it would anywhere. */
    int d = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("bind again: %s\n", bind(d, (struct sockaddr *)&a, len) < 0 ? strerror(errno) : "ok");
    return 0;
}
