/* Dereferences NULL after printing a line. */
#include <stdio.h>

int main(void) {
    volatile int *p = NULL;
    printf("about to fault\n");
    fflush(stdout);
    return *p;
}
