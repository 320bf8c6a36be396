/* Sleeps for the seconds given as its first argument. */
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    sleep(argc > 1 ? atoi(argv[1]) : 1);
    return 0;
}
