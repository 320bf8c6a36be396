/* Prints argv, the environment and some process facts, to stdout and stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/auxv.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 1; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++)
        printf("env %s\n", *e);
    printf("pagesz=%ld\n", (long)getauxval(AT_PAGESZ));
    printf("random=%s\n", getauxval(AT_RANDOM) ? "present" : "missing");
    const char *greeting = getenv("GREETING");
    fprintf(stderr, "stderr: greeting=%s\n", greeting ? greeting : "(unset)");
    /* Heap growth through brk/mmap and formatting of floats. */
    char *big = NULL;
    for (int i = 0; i < 64; i++) {
        big = realloc(big, (size_t)(i + 1) * 65536);
        memset(big, i, (size_t)(i + 1) * 65536);
    }
    printf("heap ok %d %.3f\n", big[65536 * 64 - 1], 3.14159);
    free(big);
    return 0;
}
