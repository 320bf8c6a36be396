/* Calls system calls the library OS does not implement: each must fail with
 * ENOSYS (or its documented error) and the program goes on. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    long r = syscall(SYS_io_setup, 1, NULL);
    printf("io_setup: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    r = syscall(SYS_fork);
    printf("fork: %ld %s\n", r, r < 0 ? strerror(errno) : "");
    printf("still running\n");
    return 0;
}
