/* File-system costs in directory argv[1]: nanoseconds per stat(2), MB/s of a
 * 16 MiB sequential read in 1 MiB pieces, microseconds per
 * create-write-close-unlink of a small file. Prints the three numbers. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    char path[512], small[512];
    snprintf(path, sizeof path, "%s/fsbench.data", argv[1]);
    snprintf(small, sizeof small, "%s/fsbench.small", argv[1]);
    size_t piece = 1 << 20, total = 16 << 20;
    char *buf = malloc(piece);
    memset(buf, 7, piece);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (size_t d = 0; d < total; d += piece)
        if (write(fd, buf, piece) != (ssize_t)piece)
            return 1;
    close(fd);

    struct stat st;
    int n = 2000;
    double t0 = now();
    for (int i = 0; i < n; i++)
        stat(path, &st);
    double stat_ns = (now() - t0) / n * 1e9;

    t0 = now();
    fd = open(path, O_RDONLY);
    size_t got = 0;
    ssize_t r;
    while ((r = read(fd, buf, piece)) > 0)
        got += r;
    close(fd);
    double mbps = got / (now() - t0) / 1e6;

    int m = 200;
    t0 = now();
    for (int i = 0; i < m; i++) {
        fd = open(small, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        write(fd, "hello\n", 6);
        close(fd);
        unlink(small);
    }
    double create_us = (now() - t0) / m * 1e6;
    unlink(path);
    printf("%.0f %.1f %.1f\n", stat_ns, mbps, create_us);
    return got == total ? 0 : 1;
}
