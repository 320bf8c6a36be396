/* A hostile guest tries to read a host file outside its volume (argv[1],
 * mounted at /data) and to write where it may not. Prints what each try
 * got; the test checks the secret never shows. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void try_read(const char *p) {
    char buf[128];
    int fd = open(p, O_RDONLY);
    if (fd < 0) {
        printf("read %s: %s\n", p, strerror(errno));
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("read %s: got \"%s\"\n", p, buf);
    close(fd);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *secret = argc > 1 ? argv[1] : "/secret";
    try_read(secret);
    try_read("/data/abs");
    try_read("/data/rel");
    try_read("/data/up/secret");
    try_read("/data/../secret");
    try_read("/data/sub/../../secret");
    if (chdir("/data/sub") == 0)
        try_read("../../secret");
    /* A link the guest makes, to the host's absolute path. */
    printf("symlink: %d\n", symlink(secret, "/data/mine"));
    try_read("/data/mine");
    /* The read-only volume. */
    printf("ro create: %s\n", open("/ro/new", O_WRONLY | O_CREAT, 0644) < 0 ? strerror(errno) : "opened");
    printf("ro write: %s\n", open("/ro/file", O_WRONLY) < 0 ? strerror(errno) : "opened");
    printf("ro mkdir: %s\n", mkdir("/ro/d", 0755) < 0 ? strerror(errno) : "made");
    printf("ro unlink: %s\n", unlink("/ro/file") < 0 ? strerror(errno) : "removed");
    try_read("/ro/file");
    return 0;
}
