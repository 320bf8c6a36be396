/* Reads its own executable (through /proc/self/exe) and prints its size and
 * an FNV-1a checksum: the rootfs copy of the program must be byte-exact,
 * however the monitor put it into guest memory (volt maps a lone binary
 * from the host's page cache). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    int fd = open("/proc/self/exe", O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    unsigned char buf[4096];
    uint64_t h = 1469598103934665603ULL, n = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < r; i++) { h ^= buf[i]; h *= 1099511628211ULL; }
        n += (uint64_t)r;
    }
    printf("%llu bytes, fnv1a %016llx\n", (unsigned long long)n, (unsigned long long)h);
    return r < 0;
}
