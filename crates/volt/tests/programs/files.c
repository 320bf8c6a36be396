/* File-system calls on a rootfs, with relative paths so that the same binary
 * run natively (cwd = the rootfs directory) and as a unikernel (cwd = /) sees
 * the same tree. Prints what it finds; errors are printed as errno names. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void check(const char *what, int r) {
    if (r < 0) printf("%s: errno %d (%s)\n", what, errno, strerror(errno));
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { printf("opendir %s: %s\n", dir, strerror(errno)); return; }
    char *names[64]; int n = 0; struct dirent *e;
    while ((e = readdir(d)) && n < 64) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("%s:", dir);
    for (int i = 0; i < n; i++) { printf(" %s", names[i]); free(names[i]); }
    printf("\n");
}

int main(void) {
    char buf[256];
    /* Read a file from the image. */
    int fd = open("etc/config.txt", O_RDONLY);
    check("open config", fd);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("config (%zd bytes): %s", n, buf);
    struct stat st;
    check("fstat", fstat(fd, &st));
    printf("size %lld regular %d mode %o\n", (long long)st.st_size, S_ISREG(st.st_mode), st.st_mode & 0777);
    check("lseek", (int)lseek(fd, 5, SEEK_SET));
    n = read(fd, buf, 4); buf[n] = 0;
    printf("at 5: %s\n", buf);
    n = pread(fd, buf, 3, 0); buf[n] = 0;
    printf("pread 0: %s\n", buf);
    close(fd);

    /* Write, append, rename, truncate in the scratch directory. */
    fd = open("scratch/out.txt", O_CREAT | O_WRONLY | O_TRUNC, 0640);
    check("create", fd);
    check("write", (int)write(fd, "first line\n", 11));
    close(fd);
    fd = open("scratch/out.txt", O_WRONLY | O_APPEND);
    check("write append", (int)write(fd, "second\n", 7));
    close(fd);
    check("rename", rename("scratch/out.txt", "scratch/renamed.txt"));
    printf("old name: %s\n", access("scratch/out.txt", F_OK) == 0 ? "exists" : strerror(errno));
    fd = open("scratch/renamed.txt", O_RDWR);
    n = read(fd, buf, sizeof buf - 1); buf[n] = 0;
    printf("renamed has: %s", buf);
    check("ftruncate", ftruncate(fd, 5));
    check("fstat2", fstat(fd, &st));
    printf("truncated size %lld\n", (long long)st.st_size);
    check("pwrite", (int)pwrite(fd, "XY", 2, 8));
    check("fstat3", fstat(fd, &st));
    printf("after pwrite size %lld\n", (long long)st.st_size);

    /* Descriptors. */
    int d2 = dup(fd);
    check("lseek dup", (int)lseek(d2, 0, SEEK_SET));
    n = read(fd, buf, 5); buf[n] = 0;
    printf("shared offset read: %s\n", buf);
    printf("cloexec before %d\n", fcntl(d2, F_GETFD));
    check("setfd", fcntl(d2, F_SETFD, FD_CLOEXEC));
    printf("cloexec after %d\n", fcntl(d2, F_GETFD));
    int d3 = fcntl(fd, F_DUPFD, 20);
    printf("F_DUPFD >= 20: %d\n", d3 >= 20);
    check("dup2", dup2(fd, 30));
    printf("flags rdwr %d\n", (fcntl(30, F_GETFL) & O_ACCMODE) == O_RDWR);
    close(fd); close(d2); close(d3); close(30);
    printf("closed fd read: %s\n", read(30, buf, 1) < 0 ? strerror(errno) : "ok");

    /* Directories, symlinks, errors. */
    check("mkdir", mkdir("scratch/sub", 0755));
    printf("mkdir again: %s\n", mkdir("scratch/sub", 0755) < 0 ? strerror(errno) : "ok");
    fd = open("scratch/sub/f", O_CREAT | O_WRONLY, 0600); close(fd);
    printf("rmdir non-empty: %s\n", rmdir("scratch/sub") < 0 ? strerror(errno) : "ok");
    check("unlink", unlink("scratch/sub/f"));
    check("rmdir", rmdir("scratch/sub"));
    check("symlink", symlink("renamed.txt", "scratch/link"));
    n = readlink("scratch/link", buf, sizeof buf - 1); buf[n > 0 ? n : 0] = 0;
    printf("link -> %s\n", buf);
    check("lstat", lstat("scratch/link", &st));
    printf("lstat is link %d, ", S_ISLNK(st.st_mode));
    check("stat", stat("scratch/link", &st));
    printf("stat is reg %d size %lld\n", S_ISREG(st.st_mode), (long long)st.st_size);
    printf("open missing: %s\n", open("nope/missing", O_RDONLY) < 0 ? strerror(errno) : "ok");
    printf("open file as dir: %s\n", open("etc/config.txt/x", O_RDONLY) < 0 ? strerror(errno) : "ok");
    printf("excl existing: %s\n", open("etc/config.txt", O_CREAT | O_EXCL | O_WRONLY, 0600) < 0 ? strerror(errno) : "ok");
    printf("write to dir: %s\n", open("etc", O_WRONLY) < 0 ? strerror(errno) : "ok");
    list("etc");
    list("scratch");
    check("unlink link", unlink("scratch/link"));
    check("unlink renamed", unlink("scratch/renamed.txt"));
    list("scratch");

    /* chdir/getcwd relative to the starting directory. */
    check("chdir", chdir("etc"));
    fd = open("config.txt", O_RDONLY);
    printf("relative after chdir: %s\n", fd >= 0 ? "ok" : strerror(errno));
    close(fd);
    check("chdir ..", chdir(".."));

    /* A private file mapping. */
    fd = open("etc/config.txt", O_RDONLY);
    char *m = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) printf("mmap: %s\n", strerror(errno));
    else { printf("mmap: %.4s\n", m); munmap(m, 4096); }
    close(fd);

    /* Devices. */
    fd = open("/dev/null", O_RDWR);
    printf("devnull write %zd read %zd\n", write(fd, "abc", 3), read(fd, buf, 3));
    close(fd);
    fd = open("/dev/zero", O_RDONLY);
    memset(buf, 7, 8); n = read(fd, buf, 8);
    printf("devzero %zd bytes, sum %d\n", n, buf[0] + buf[3] + buf[7]);
    close(fd);
    fd = open("/dev/urandom", O_RDONLY);
    printf("urandom %zd bytes\n", read(fd, buf, 16));
    close(fd);
    return 0;
}
