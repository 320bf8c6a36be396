/* cat(1) of stdin, after telling on stderr what fds 0-2 are (fstat, isatty). */
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
int main(void) {
    struct stat st[3];
    for (int i = 0; i < 3; i++) {
        fstat(i, &st[i]);
        fprintf(stderr, "fd %d: %s tty=%d\n", i, S_ISFIFO(st[i].st_mode) ? "fifo" : S_ISREG(st[i].st_mode) ? "file" : S_ISCHR(st[i].st_mode) ? "chr" : "other", isatty(i));
    }
    char buf[4096]; ssize_t n; long total = 0;
    while ((n = read(0, buf, sizeof buf)) > 0) { write(1, buf, n); total += n; }
    fprintf(stderr, "read %ld bytes, last %zd\n", total, n);
    return 0;
}
