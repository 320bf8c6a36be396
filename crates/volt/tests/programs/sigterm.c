/* Waits for SIGTERM, asleep ("sleep") or computing without system calls
 * ("spin"), then says so and exits 3; with "default", SIGTERM's default
 * action ends it. Prints "ready" once the handler is in place. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static void on_term(int s) { got = s; }

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "sleep";
    if (strcmp(mode, "default") != 0)
        signal(SIGTERM, on_term);
    printf("ready\n");
    fflush(stdout);
    if (strcmp(mode, "spin") == 0) {
        volatile unsigned long n = 0;
        while (!got)
            n++;
    } else {
        while (!got)
            sleep(1);
    }
    printf("got signal %d, cleaning up\n", (int)got);
    return 3;
}
