/* UDP echo server: binds the port given as argv[1], answers argv[2]
 * datagrams by sending each back to its sender, prefixed with "echo: ",
 * then exits. Run natively or as a unikernel with --net. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 7777;
    int count = argc > 2 ? atoi(argv[2]) : 3;
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0) { perror("socket"); return 1; }
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    if (getsockname(s, (struct sockaddr *)&me, &ml) < 0) { perror("getsockname"); return 1; }
    printf("listening on %d\n", ntohs(me.sin_port));
    fflush(stdout);
    for (int i = 0; i < count; i++) {
        char buf[2048], out[2100];
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(s, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl);
        if (n < 0) { perror("recvfrom"); return 1; }
        buf[n] = 0;
        int m = snprintf(out, sizeof out, "echo: %s", buf);
        if (sendto(s, out, m, 0, (struct sockaddr *)&from, fl) != m) { perror("sendto"); return 1; }
        printf("echoed %zd bytes from %s\n", n, inet_ntoa(from.sin_addr));
        fflush(stdout);
    }
    close(s);
    return 0;
}
