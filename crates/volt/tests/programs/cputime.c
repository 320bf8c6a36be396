/* CPU-time clocks: sleeping costs none, computing costs some but never more
 * than its wall time (a loaded host may steal some of it). */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void) {
    double p0 = now(CLOCK_PROCESS_CPUTIME_ID);
    usleep(200000);
    double p1 = now(CLOCK_PROCESS_CPUTIME_ID), w1 = now(CLOCK_MONOTONIC), t1 = now(CLOCK_THREAD_CPUTIME_ID);
    volatile unsigned long x = 0;
    for (unsigned long i = 0; i < 100000000UL; i++) x += i;
    double p2 = now(CLOCK_PROCESS_CPUTIME_ID), w2 = now(CLOCK_MONOTONIC), t2 = now(CLOCK_THREAD_CPUTIME_ID);
    printf("sleep cost under 20 ms of CPU: %d\n", p1 - p0 < 0.02);
    printf("loop CPU counted and at most its wall time: %d\n", (p2 - p1) > 0.01 && (p2 - p1) <= 1.05 * (w2 - w1) + 0.002);
    printf("thread clock follows: %d\n", (t2 - t1) > 0.01 && (t2 - t1) <= (p2 - p0) + 0.002);
    return 0;
}
