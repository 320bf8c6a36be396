/* File operations in a directory given as argv[1]: run natively on a host
 * directory and as a unikernel on the same files mounted with -v, the output
 * must be the same. Paths are printed relative to the directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static const char *at(const char *name) {
    static char buf[2][512];
    static int i;
    i ^= 1;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir, name);
    return buf[i];
}

static void check(const char *what, int r) {
    if (r < 0)
        printf("%s: %s\n", what, strerror(errno));
    else
        printf("%s: ok\n", what);
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list(const char *name) {
    DIR *d = opendir(at(name));
    if (!d) {
        printf("opendir %s: %s\n", name, strerror(errno));
        return;
    }
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512)
        names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    printf("%s:", name);
    for (int i = 0; i < n; i++) {
        printf(" %s", names[i]);
        free(names[i]);
    }
    printf("\n");
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    snprintf(dir, sizeof dir, "%s", argv[1]);
    setvbuf(stdout, NULL, _IONBF, 0);

    char buf[256];
    int fd = open(at("in.txt"), O_RDONLY);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("in.txt (%zd bytes): %s", n, buf);
    close(fd);

    fd = open(at("out.txt"), O_WRONLY | O_CREAT | O_TRUNC, 0640);
    check("create out.txt", fd);
    printf("write: %zd\n", write(fd, "first line\n", 11));
    close(fd);
    fd = open(at("out.txt"), O_WRONLY | O_APPEND);
    printf("append: %zd\n", write(fd, "second\n", 7));
    printf("offset after append: %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    close(fd);
    struct stat st;
    check("stat out.txt", stat(at("out.txt"), &st));
    printf("size %ld mode %o\n", (long)st.st_size, st.st_mode & 07777);
    check("O_EXCL on an existing file", open(at("out.txt"), O_WRONLY | O_CREAT | O_EXCL, 0600));
    check("open a missing file", open(at("missing"), O_RDONLY));

    fd = open(at("out.txt"), O_RDWR);
    printf("seek end: %ld\n", (long)lseek(fd, 0, SEEK_END));
    printf("pread: %zd\n", pread(fd, buf, 5, 6));
    buf[5] = 0;
    printf("pread text: %s\n", buf);
    check("ftruncate", ftruncate(fd, 4));
    fstat(fd, &st);
    printf("size after ftruncate: %ld\n", (long)st.st_size);
    close(fd);

    check("mkdir sub", mkdir(at("sub"), 0755));
    check("mkdir sub again", mkdir(at("sub"), 0755));
    check("rename out.txt", rename(at("out.txt"), at("sub/moved.txt")));
    check("symlink", symlink("moved.txt", at("sub/link")));
    n = readlink(at("sub/link"), buf, sizeof buf);
    printf("readlink: %.*s\n", (int)n, buf);
    fd = open(at("sub/link"), O_RDONLY);
    n = read(fd, buf, sizeof buf);
    printf("through the link: %.*s\n", (int)n, buf);
    close(fd);
    check("lstat link", lstat(at("sub/link"), &st));
    printf("is a link: %d\n", S_ISLNK(st.st_mode));
    check("chmod", chmod(at("sub/moved.txt"), 0600));
    stat(at("sub/moved.txt"), &st);
    printf("mode now %o\n", st.st_mode & 07777);
    check("link", link(at("sub/moved.txt"), at("sub/hard.txt")));
    stat(at("sub/moved.txt"), &st);
    printf("links now %ld\n", (long)st.st_nlink);
    list("sub");
    list(".");

    check("chdir sub", chdir(at("sub")));
    char cwd[512];
    if (getcwd(cwd, sizeof cwd)) {
        size_t l = strlen(dir);
        printf("cwd ends in: %s\n", strncmp(cwd, dir, l) == 0 ? cwd + l : cwd);
    }
    fd = open("moved.txt", O_RDONLY);
    printf("relative read: %zd\n", read(fd, buf, sizeof buf));
    close(fd);
    check("rmdir a full directory", rmdir(at("sub")));
    check("unlink link", unlink("link"));
    check("unlink hard.txt", unlink("hard.txt"));
    check("unlink moved.txt", unlink("moved.txt"));
    check("unlink a directory", unlink(at("sub")));
    check("chdir ..", chdir(".."));
    check("rmdir sub", rmdir(at("sub")));
    list(".");

    /* A bigger file, in pieces larger than one transfer. */
    fd = open(at("big"), O_RDWR | O_CREAT | O_TRUNC, 0644);
    size_t big = 3 << 20;
    char *data = malloc(big), *back = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (char)(i * 7 + 3);
    printf("big write: %zd\n", write(fd, data, big));
    printf("big read: %zd\n", pread(fd, back, big, 0));
    printf("big same: %d\n", memcmp(data, back, big) == 0);
    close(fd);
    return 0;
}
