/* TCP over the loopback inside one process: a server thread and clients.
 * Prints only what must match between Linux and the unikernel. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int TOTAL = 4 << 20;
#define CLIENTS 8
static int clients = CLIENTS;

static int port;

static void die(const char *what) {
    printf("FAIL %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint32_t step(uint32_t x) { return x * 1103515245u + 12345u; }

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) return -1;
        p += w;
        n -= w;
    }
    return 0;
}

/* Echo server: accepts CLIENTS + 1 connections, one thread each. */
static void *echo(void *arg) {
    int c = (int)(intptr_t)arg;
    char buf[16384];
    for (;;) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n < 0) die("server read");
        if (n == 0) break;
        if (write_all(c, buf, n)) die("server write");
    }
    close(c);
    return 0;
}

static void *server(void *arg) {
    int l = (int)(intptr_t)arg;
    for (int i = 0; i < clients + 1; i++) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        int c = accept4(l, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
        if (c < 0) die("accept");
        if (peer.sin_addr.s_addr != htonl(INADDR_LOOPBACK)) printf("FAIL peer address\n");
        pthread_t t;
        pthread_create(&t, 0, echo, (void *)(intptr_t)c);
        pthread_detach(t);
    }
    return 0;
}

static int dial(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) die("socket");
    int one = 1;
    if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one)) die("nodelay");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof a)) die("connect");
    return s;
}

/* Sends TOTAL pseudo-random bytes from a thread, checks the echo. */
static void *sender(void *arg) {
    int s = (int)(intptr_t)arg;
    char *buf = malloc(TOTAL);
    uint32_t x = (uint32_t)s;
    for (int i = 0; i < TOTAL; i++) buf[i] = (char)((x = step(x)) >> 24);
    if (write_all(s, buf, TOTAL)) die("client write");
    shutdown(s, SHUT_WR);
    free(buf);
    return 0;
}

static void *client(void *arg) {
    (void)arg;
    int s = dial();
    pthread_t t;
    pthread_create(&t, 0, sender, (void *)(intptr_t)s);
    uint32_t x = (uint32_t)s;
    long got = 0, bad = 0;
    char buf[8192];
    for (;;) {
        ssize_t n = read(s, buf, sizeof buf);
        if (n < 0) die("client read");
        if (n == 0) break;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != (char)((x = step(x)) >> 24)) bad++;
        got += n;
    }
    pthread_join(t, 0);
    close(s);
    return (void *)(intptr_t)(got == TOTAL && bad == 0);
}

int main(int argc, char **argv) {
    if (argc > 1) TOTAL = atoi(argv[1]) << 10;
    if (argc > 2) clients = atoi(argv[2]);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0) die("socket");
    int one = 1;
    if (setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one)) die("reuseaddr");
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&a, sizeof a)) die("bind");
    socklen_t len = sizeof a;
    if (getsockname(l, (struct sockaddr *)&a, &len)) die("getsockname");
    port = ntohs(a.sin_port);
    printf("ephemeral port: %s\n", port >= 32768 && port <= 60999 ? "yes" : "no");
    if (listen(l, 16)) die("listen");
    int acc = 0;
    len = sizeof acc;
    getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len);
    printf("SO_ACCEPTCONN %d\n", acc);

    /* A second bind to the same port fails. */
    int l2 = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in b = a;
    printf("second bind: %s\n", bind(l2, (struct sockaddr *)&b, sizeof b) ? strerror(errno) : "ok");
    close(l2);

    /* Refused: a port nobody listens on. */
    int r = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in closed = a;
    closed.sin_port = htons(port == 60999 ? 60998 : port + 1);
    printf("connect to closed port: %s\n",
           connect(r, (struct sockaddr *)&closed, sizeof closed) ? strerror(errno) : "ok");
    close(r);
    /* The same without blocking: in progress, then POLLERR and SO_ERROR once. */
    r = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int rc0 = connect(r, (struct sockaddr *)&closed, sizeof closed);
    printf("non-blocking connect to closed port: %s\n", rc0 ? strerror(errno) : "ok");
    struct pollfd pr = {.fd = r, .events = POLLOUT};
    poll(&pr, 1, 5000);
    printf("POLLOUT|POLLERR: %d\n", (pr.revents & (POLLOUT | POLLERR)) == (POLLOUT | POLLERR));
    int so = -1;
    socklen_t solen = sizeof so;
    getsockopt(r, SOL_SOCKET, SO_ERROR, &so, &solen);
    printf("SO_ERROR: %s\n", strerror(so));
    getsockopt(r, SOL_SOCKET, SO_ERROR, &so, &solen);
    printf("SO_ERROR again: %d\n", so);
    close(r);

    pthread_t srv;
    pthread_create(&srv, 0, server, (void *)(intptr_t)l);

    /* Non-blocking connect: EINPROGRESS or immediate, then writable, SO_ERROR 0. */
    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int rc = connect(nb, (struct sockaddr *)&a, sizeof a);
    printf("non-blocking connect: %s\n", rc == 0 || errno == EINPROGRESS ? "started" : strerror(errno));
    struct pollfd p = {.fd = nb, .events = POLLOUT};
    printf("poll: %d\n", poll(&p, 1, 5000));
    int err = -1;
    len = sizeof err;
    getsockopt(nb, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("SO_ERROR %d\n", err);
    struct sockaddr_in peer;
    len = sizeof peer;
    getpeername(nb, (struct sockaddr *)&peer, &len);
    printf("peer is the listener: %s\n", peer.sin_port == a.sin_port ? "yes" : "no");
    /* epoll: nothing to read yet; write, the echo makes it readable. */
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = nb};
    epoll_ctl(ep, EPOLL_CTL_ADD, nb, &ev);
    printf("epoll before: %d\n", epoll_wait(ep, &ev, 1, 0));
    struct iovec iov[2] = {{"hello ", 6}, {"world", 5}};
    printf("writev: %zd\n", writev(nb, iov, 2));
    printf("epoll after: %d\n", epoll_wait(ep, &ev, 1, 5000));
    char buf[64];
    struct msghdr m = {0};
    struct iovec riov = {buf, sizeof buf};
    m.msg_iov = &riov;
    m.msg_iovlen = 1;
    ssize_t n = recvmsg(nb, &m, MSG_PEEK);
    n = recv(nb, buf, sizeof buf, 0);
    printf("echo: %.*s\n", (int)n, buf);
    n = read(nb, buf, sizeof buf);
    printf("read again: %zd %s\n", n, n < 0 ? strerror(errno) : "");
    shutdown(nb, SHUT_WR);
    struct pollfd p2 = {.fd = nb, .events = POLLIN};
    poll(&p2, 1, 5000);
    printf("after shutdown: read %zd\n", read(nb, buf, sizeof buf));
    close(nb);
    close(ep);

    /* Time limits: accept and a UDP receive give up with EAGAIN. */
    {
        struct timeval tv = {0, 200000};
        struct timespec t0, t1;
        int quiet = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in q = {.sin_family = AF_INET};
        q.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(quiet, (struct sockaddr *)&q, sizeof q);
        listen(quiet, 1);
        setsockopt(quiet, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        struct timeval back = {0, 0};
        len = sizeof back;
        getsockopt(quiet, SOL_SOCKET, SO_RCVTIMEO, &back, &len);
        printf("SO_RCVTIMEO reads back %ld us\n", (long)back.tv_usec);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc2 = accept(quiet, 0, 0);
        int err2 = errno;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        printf("accept with a time limit: %d %s after %s\n", rc2, strerror(err2), ms >= 150 && ms < 2000 ? "~200 ms" : "the wrong time");
        close(quiet);
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        bind(u, (struct sockaddr *)&q, sizeof q);
        setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ssize_t r2 = recv(u, buf, sizeof buf, 0);
        err2 = errno;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        printf("UDP recv with a time limit: %zd %s after %s\n", r2, strerror(err2), ms >= 150 && ms < 2000 ? "~200 ms" : "the wrong time");
        close(u);
    }

    /* Bulk: CLIENTS connections at once, TOTAL bytes each way. */
    pthread_t t[CLIENTS];
    for (int i = 0; i < clients; i++) pthread_create(&t[i], 0, client, 0);
    int ok = 0;
    for (int i = 0; i < clients; i++) {
        void *res;
        pthread_join(t[i], &res);
        ok += (int)(intptr_t)res;
    }
    printf("bulk: %d of %d connections echoed %d KiB intact\n", ok, clients, TOTAL >> 10);
    pthread_join(srv, 0);
    close(l);
    return 0;
}
