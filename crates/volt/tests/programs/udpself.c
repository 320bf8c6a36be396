/* UDP to itself over 127.0.0.1: a bound socket, a client, both ways. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(a, (struct sockaddr *)&sa, sizeof sa)) perror("bind");
    socklen_t len = sizeof sa;
    getsockname(a, (struct sockaddr *)&sa, &len);
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    printf("second bind: %s\n", bind(c, (struct sockaddr *)&sa, sizeof sa) ? strerror(errno) : "ok");
    sendto(b, "ping", 4, 0, (struct sockaddr *)&sa, sizeof sa);
    char buf[64];
    struct sockaddr_in from;
    len = sizeof from;
    ssize_t n = recvfrom(a, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    printf("server got %.*s from %s\n", (int)n, buf, inet_ntoa(from.sin_addr));
    sendto(a, "pong", 4, 0, (struct sockaddr *)&from, len);
    n = recv(b, buf, sizeof buf, 0);
    printf("client got %.*s\n", (int)n, buf);
    return 0;
}
