/* mmap/munmap/mprotect and a SIGSEGV handler that recovers with siglongjmp
 * (a write to a read-only page, a read of an unmapped one, a jump into a
 * page without PROT_EXEC, then into the same page made executable); also a
 * SIGUSR1 sent to itself and an alternate signal stack. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf env;
static volatile void *fault_addr;
static volatile int usr1;

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    fault_addr = si->si_addr;
    siglongjmp(env, sig);
}

static void on_usr1(int sig) { usr1 = sig; }

int main(void) {
    long pg = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    memset(p, 'x', 4 * pg);
    printf("mapped and written: %c%c\n", p[0], p[4 * pg - 1]);

    static char altstack[16384];
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL);

    if (mprotect(p + pg, pg, PROT_READ) != 0) { perror("mprotect"); return 1; }
    int sig = sigsetjmp(env, 1);
    if (sig == 0) {
        p[pg] = 'y'; /* write to a read-only page */
        printf("write to read-only page did not fault\n");
    } else {
        printf("caught signal %d at offset %ld, page still reads %c\n", sig, (long)((char *)fault_addr - p), p[pg]);
    }
    if (munmap(p + 2 * pg, pg) != 0) { perror("munmap"); return 1; }
    sig = sigsetjmp(env, 1);
    if (sig == 0) {
        volatile char c = p[2 * pg];
        (void)c;
        printf("read of unmapped page did not fault\n");
    } else {
        printf("caught signal %d reading the unmapped page at offset %ld\n", sig, (long)((char *)fault_addr - p));
    }
    printf("neighbours intact: %c %c\n", p[pg - 1], p[3 * pg]);

    p[0] = (char)0xc3; /* ret */
    sig = sigsetjmp(env, 1);
    if (sig == 0) {
        ((void (*)(void))p)();
        printf("a jump into a page without PROT_EXEC did not fault\n");
    } else {
        printf("caught signal %d jumping into a page without PROT_EXEC\n", sig);
    }
    if (mprotect(p, pg, PROT_READ | PROT_EXEC) != 0) { perror("mprotect"); return 1; }
    sig = sigsetjmp(env, 1);
    if (sig == 0) {
        ((void (*)(void))p)();
        printf("the page made executable runs\n");
    } else {
        printf("caught signal %d in the page made executable\n", sig);
    }

    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    printf("SIGUSR1 handled: %d\n", usr1 == SIGUSR1);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    usr1 = 0;
    raise(SIGUSR1);
    printf("while blocked: %d\n", usr1);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("after unblocking: %d\n", usr1 == SIGUSR1);
    return 0;
}
