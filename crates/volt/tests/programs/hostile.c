/* A hostile guest: issues hypercalls directly (the ports are open to CPL 3)
 * with garbage arguments. The monitor must end the VM cleanly. */
#include <stdio.h>
#include <stdlib.h>

static void out32(unsigned short port, unsigned int value) {
    __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

int main(int argc, char **argv) {
    int which = argc > 1 ? atoi(argv[1]) : 0;
    printf("attack %d\n", which);
    fflush(stdout);
    switch (which) {
    case 0: out32(0xe0, 0xfffff000u); break;      /* console write, arguments beyond RAM */
    case 1: out32(0xe0, 0x3ffffffcu); break;      /* arguments straddling the end of RAM */
    case 2: out32(0xe2, 0xfffffff0u); break;      /* abort, arguments beyond RAM */
    case 3: out32(0xe3, 0xffffff00u); break;      /* fault report beyond RAM */
    case 4: out32(0xeb, 0); break;                /* an unknown hypercall */
    case 5: out32(0xe4, 0xfffffff8u); break;      /* read CR2 into memory beyond RAM */
    case 6: out32(0xe9, 0xfffffff0u); break;      /* stdin read, arguments beyond RAM */
    case 7: out32(0xea, 0xfffffff0u); break;      /* volume call, arguments beyond RAM */
    }
    printf("survived\n");
    return 0;
}
