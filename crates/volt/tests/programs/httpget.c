/* A client that finds its server by name: resolves argv[1] (through
 * /etc/hosts), GETs argv[3] from port argv[2], retrying for up to 20 s while
 * the server starts, and prints the response body. */
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

int main(int argc, char **argv) {
    if (argc < 4)
        return 2;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    int e = getaddrinfo(argv[1], argv[2], &hints, &res);
    if (e) {
        printf("resolve %s: %s\n", argv[1], gai_strerror(e));
        return 1;
    }
    char addr[32];
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, addr, sizeof addr);
    fprintf(stderr, "%s is %s\n", argv[1], addr);
    for (int tries = 0; tries < 200; tries++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, res->ai_addr, res->ai_addrlen) == 0) {
            char req[256];
            int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", argv[3], argv[1]);
            write(s, req, n);
            static char buf[65536];
            size_t got = 0;
            ssize_t r;
            while (got < sizeof buf - 1 && (r = read(s, buf + got, sizeof buf - 1 - got)) > 0)
                got += r;
            buf[got] = 0;
            char *body = strstr(buf, "\r\n\r\n");
            printf("%s\n", body ? body + 4 : buf);
            return 0;
        }
        close(s);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    printf("connect %s: gave up\n", argv[1]);
    return 1;
}
