/* Two threads hand a token back and forth through futexes; prints the mean
 * round trip in ns over N rounds (argv[1]). */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static _Atomic int turn;
static long rounds;

static void wait_for(int v) {
    while (atomic_load(&turn) != v) syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, !v, NULL, NULL, 0);
}
static void give(int v) {
    atomic_store(&turn, v);
    syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
static void *pong(void *arg) {
    (void)arg;
    for (long i = 0; i < rounds; i++) { wait_for(1); give(0); }
    return NULL;
}

int main(int argc, char **argv) {
    rounds = argc > 1 ? atol(argv[1]) : 10000;
    pthread_t t;
    pthread_create(&t, NULL, pong, NULL);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < rounds; i++) { give(1); wait_for(0); }
    clock_gettime(CLOCK_MONOTONIC, &b);
    pthread_join(t, NULL);
    printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / rounds);
    return 0;
}
