/* Exits with the status given as its first argument, after some output. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int status = argc > 1 ? atoi(argv[1]) : 0;
    printf("exiting with %d\n", status);
    if (status == 42)
        exit(status); /* through exit(3) rather than a return from main */
    return status;
}
