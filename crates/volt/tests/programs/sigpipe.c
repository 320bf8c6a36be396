/* pread/pwrite on pipes fail with ESPIPE and consume nothing; SIGPIPE:
 * writes to a pipe or socket whose reader is gone raise it, unless send()
 * says MSG_NOSIGNAL. With "default" as argv[1], the default action ends
 * the process. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile int got;
static void on_pipe(int s) { (void)s; got++; }

int main(int argc, char **argv) {
    int p[2];
    pipe(p);
    close(p[0]);
    if (argc > 1 && !strcmp(argv[1], "default")) {
        write(p[1], "x", 1);
        return 0; /* not reached */
    }
    signal(SIGPIPE, on_pipe);
    /* pread/pwrite on a pipe fail with ESPIPE and consume nothing. */
    int q[2];
    char b[8];
    pipe(q);
    write(q[1], "abc", 3);
    ssize_t r = pread(q[0], b, sizeof b, 0);
    printf("pread of a pipe: %zd %s\n", r, strerror(errno));
    r = pwrite(q[1], "x", 1, 0);
    printf("pwrite of a pipe: %zd %s\n", r, strerror(errno));
    printf("then read: %zd\n", read(q[0], b, sizeof b));
    r = write(p[1], "x", 1);
    printf("pipe write: %zd %s, SIGPIPE %d\n", r, strerror(errno), got);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    close(sv[1]);
    r = send(sv[0], "x", 1, MSG_NOSIGNAL);
    printf("send MSG_NOSIGNAL: %zd %s, SIGPIPE %d\n", r, strerror(errno), got);
    r = send(sv[0], "x", 1, 0);
    printf("send: %zd %s, SIGPIPE %d\n", r, strerror(errno), got);
    return 0;
}
