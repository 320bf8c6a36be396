/* AF_UNIX stream socket pairs between threads: echo, EOF after shutdown,
 * MSG_DONTWAIT, poll, fstat. Deterministic output. */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int sv[2];

static void *echo(void *arg) {
    (void)arg;
    char buf[64];
    ssize_t n;
    while ((n = read(sv[1], buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) buf[i] = toupper((unsigned char)buf[i]);
        write(sv[1], buf, n);
    }
    printf("echo thread saw EOF (%zd)\n", n);
    return NULL;
}

int main(void) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) { perror("socketpair"); return 1; }
    struct stat st;
    fstat(sv[0], &st);
    printf("is a socket: %d\n", S_ISSOCK(st.st_mode));
    char buf[64];
    printf("empty, MSG_DONTWAIT: %zd %s\n", recv(sv[0], buf, sizeof buf, MSG_DONTWAIT), strerror(errno));
    pthread_t t;
    pthread_create(&t, NULL, echo, NULL);
    const char *words[] = {"hello", "unikernel", "sockets"};
    for (int i = 0; i < 3; i++) {
        send(sv[0], words[i], strlen(words[i]), 0);
        ssize_t n = recv(sv[0], buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = 0;
        printf("echoed: %s\n", buf);
    }
    struct pollfd p = {.fd = sv[0], .events = POLLIN | POLLOUT};
    printf("poll: %d, writable %d, readable %d\n", poll(&p, 1, 0), (p.revents & POLLOUT) != 0, (p.revents & POLLIN) != 0);
    shutdown(sv[0], SHUT_WR);
    pthread_join(t, NULL);
    close(sv[1]);
    printf("after the peer closes: read %zd\n", read(sv[0], buf, sizeof buf));
    printf("write to a closed peer fails: %d\n", send(sv[0], "x", 1, MSG_NOSIGNAL) < 0);
    return 0;
}
