/* pthreads: 8 threads, a mutex and a condition variable, a barrier, join,
 * thread-local storage, a CPU-bound thread that must not starve the others,
 * and sleeping. Output is deterministic. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define N 8
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t barrier;
static long counter;
static int turn;
static __thread int tls_value;
static volatile int stop_spinner;

static void *worker(void *arg) {
    int id = (int)(long)arg;
    tls_value = id * 100;
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    pthread_barrier_wait(&barrier);
    /* Take turns in id order through the condition variable. */
    pthread_mutex_lock(&lock);
    while (turn != id) pthread_cond_wait(&cond, &lock);
    printf("worker %d: tls %d, counter after barrier %ld\n", id, tls_value, counter);
    turn++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    return (void *)(long)(id * 2);
}

static void *spinner(void *arg) {
    (void)arg;
    unsigned long n = 0;
    while (!stop_spinner) n++;
    return (void *)n;
}

int main(void) {
    pthread_t t[N], s;
    pthread_barrier_init(&barrier, NULL, N);
    /* A thread that never blocks: the others must still make progress. */
    pthread_create(&s, NULL, spinner, NULL);
    for (long i = 0; i < N; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    long sum = 0;
    for (int i = 0; i < N; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (long)r;
    }
    struct timespec ts = {0, 20 * 1000 * 1000};
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    nanosleep(&ts, NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    stop_spinner = 1;
    void *spins;
    pthread_join(s, &spins);
    printf("joined: sum of results %ld, counter %ld, slept >= 20 ms: %d, spinner ran: %d\n",
           sum, counter, ms >= 20, spins != NULL);
    return 0;
}
