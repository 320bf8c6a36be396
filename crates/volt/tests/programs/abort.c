/* Prints a line, then abort(3): SIGABRT by its default action. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    printf("before abort\n");
    fflush(stdout);
    abort();
}
