/* Waiting primitives across threads: a pipe between two threads, eventfd,
 * a periodic timerfd through epoll, poll with a timeout, and mremap growing a
 * mapping (moving it) while keeping its contents. Deterministic output. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int fds[2];
static int efd;

static void *writer(void *arg) {
    (void)arg;
    usleep(5000);
    write(fds[1], "through the pipe", 16);
    uint64_t one = 1;
    write(efd, &one, 8);
    close(fds[1]);
    return NULL;
}

static volatile int alarmed;
static void on_alarm(int sig) { (void)sig; alarmed++; }

/* setitimer, getitimer, alarm and pause. */
static void interval_timer(void) {
    signal(SIGALRM, on_alarm);
    struct itimerval it = {.it_interval = {0, 0}, .it_value = {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    struct itimerval cur;
    getitimer(ITIMER_REAL, &cur);
    int armed = cur.it_value.tv_sec == 0 && cur.it_value.tv_usec > 0 && cur.it_value.tv_usec <= 20000;
    int r = pause();
    printf("pause: %d %s, alarms %d, armed before %d\n", r, strerror(errno), alarmed, armed);
    alarm(5);
    printf("alarm left: %u\n", alarm(0));
    getitimer(ITIMER_REAL, &cur);
    printf("disarmed: %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0);
}

int main(void) {
    pipe(fds);
    efd = eventfd(0, 0);
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    char buf[64] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1); /* blocks until the writer writes */
    printf("pipe: %zd bytes: %s\n", n, buf);
    uint64_t v;
    read(efd, &v, 8);
    printf("eventfd: %llu\n", (unsigned long long)v);
    n = read(fds[0], buf, sizeof buf);
    printf("pipe after close: %zd\n", n);
    pthread_join(t, NULL);

    interval_timer();

    int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {.it_interval = {0, 3000000}, .it_value = {0, 3000000}};
    timerfd_settime(tfd, 0, &its, NULL);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    uint64_t total = 0;
    for (int i = 0; i < 3; i++) {
        struct epoll_event got;
        int r = epoll_wait(ep, &got, 1, 1000);
        uint64_t exp = 0;
        read(tfd, &exp, 8);
        total += exp;
        printf("epoll %d: %d event(s), data %llu, expirations >= 1: %d\n", i, r, (unsigned long long)got.data.u64, exp >= 1);
    }
    struct itimerspec cur;
    timerfd_gettime(tfd, &cur);
    printf("timer still armed: %d\n", cur.it_interval.tv_nsec == 3000000);

    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    int pr = poll(&p, 1, 0);
    printf("poll closed pipe: %d revents has POLLIN|POLLHUP: %d\n", pr, (p.revents & (POLLIN | POLLHUP)) != 0);
    int fds2[2];
    pipe(fds2);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct pollfd q = {.fd = fds2[0], .events = POLLIN};
    pr = poll(&q, 1, 20);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    printf("poll timeout: %d after >= 20 ms: %d\n", pr, ms >= 20);

    size_t pg = 4096;
    char *m = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *blocker = mmap(m + 4 * pg, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    memset(m, 'm', 4 * pg);
    char *g = mremap(m, 4 * pg, 64 * pg, MREMAP_MAYMOVE);
    printf("mremap: %s, contents kept: %d, grown part zero: %d\n", g == MAP_FAILED ? strerror(errno) : "ok",
           g != MAP_FAILED && g[0] == 'm' && g[4 * pg - 1] == 'm', g != MAP_FAILED && g[40 * pg] == 0);
    (void)blocker;
    return 0;
}
