/* UDP client: connects to argv[1]:argv[2], writes "hello" until a reply
 * arrives (at most 20 tries, 500 ms apart, waiting with poll), reads it
 * with read(2) and prints it with the peer getpeername reports. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) { perror("socket"); return 1; }
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(atoi(argv[2]));
    inet_pton(AF_INET, argv[1], &a.sin_addr);
    if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    struct sockaddr_in p;
    socklen_t pl = sizeof p;
    if (getpeername(s, (struct sockaddr *)&p, &pl) < 0) { perror("getpeername"); return 1; }
    for (int i = 0; i < 20; i++) {
        if (write(s, "hello", 5) != 5) { perror("write"); return 1; }
        struct pollfd pfd = {.fd = s, .events = POLLIN};
        int r = poll(&pfd, 1, 500);
        if (r < 0) { perror("poll"); return 1; }
        if (r == 0) continue;
        char buf[256];
        ssize_t n = read(s, buf, sizeof buf - 1);
        if (n < 0) { perror("read"); return 1; }
        buf[n] = 0;
        printf("reply from %s:%d: %s\n", inet_ntoa(p.sin_addr), ntohs(p.sin_port), buf);
        return 0;
    }
    fprintf(stderr, "no reply\n");
    return 1;
}
