/* Prints "tick N" on stdout every 50 ms, COUNT times (first argument;
 * 0 = forever), and "half-way" on stderr in the middle; then exits with
 * the status given as its second argument. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    long count = argc > 1 ? atol(argv[1]) : 10;
    int status = argc > 2 ? atoi(argv[2]) : 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct timespec ts = { 0, 50 * 1000 * 1000 };
    for (long i = 1; count == 0 || i <= count; i++) {
        printf("tick %ld\n", i);
        if (i == count / 2)
            fprintf(stderr, "half-way\n");
        nanosleep(&ts, NULL);
    }
    return status;
}
