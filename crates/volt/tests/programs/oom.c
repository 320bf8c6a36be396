/* Allocates until the system says no: mmap must fail with ENOMEM, not hang
 * or crash. A large malloc is only address space (overcommitted, as on
 * Linux); touching it all with "touch" as argument runs out of memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
    size_t total = 0;
    for (;;) {
        char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (p == MAP_FAILED) {
            printf("mmap failed after %zu MiB: %s\n", total >> 20, strerror(errno));
            break;
        }
        memset(p, 1, 1 << 20);
        total += 1 << 20;
        if (total > ((size_t)64 << 30)) break;
    }
    char *q = malloc(64 << 20);
    printf("malloc of 64 MiB: %s\n", q ? "succeeded" : "NULL");
    fflush(stdout);
    if (q && argc > 1 && strcmp(argv[1], "touch") == 0)
        memset(q, 1, 64 << 20);
    return 0;
}
