/* Writes to stdout and stderr in turn through stdio: the order they come out
 * in, when both go to one pipe, shows how stdio buffered each. */
#include <stdio.h>

int main(void) {
    for (int i = 0; i < 3; i++) {
        printf("out %d\n", i);
        fprintf(stderr, "err %d\n", i);
    }
    puts("done");
    return 0;
}
