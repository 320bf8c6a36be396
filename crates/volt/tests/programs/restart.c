/* A thread signals the main thread while it blocks in read(2) on a pipe:
 * with SA_RESTART the read goes on and returns the data written later;
 * without it the read fails with EINTR. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int fds[2];
static pthread_t main_thread;
static volatile int handled;

static void on_usr1(int sig) { (void)sig; handled++; }

static void *poke(void *arg) {
    (void)arg;
    usleep(20000);
    pthread_kill(main_thread, SIGUSR1);
    usleep(20000);
    write(fds[1], "late data", 9);
    return NULL;
}

static void run(int flags, const char *label) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = flags;
    sigaction(SIGUSR1, &sa, NULL);
    pipe(fds);
    handled = 0;
    pthread_t t;
    pthread_create(&t, NULL, poke, NULL);
    char buf[32] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    int err = errno;
    printf("%s: read %zd %s, handler ran %d time(s)\n", label, n, n < 0 ? strerror(err) : buf, handled);
    pthread_join(t, NULL);
    close(fds[0]);
    close(fds[1]);
}

int main(void) {
    main_thread = pthread_self();
    run(SA_RESTART, "SA_RESTART");
    run(0, "no SA_RESTART");
    return 0;
}
