/* The vDSO: found through AT_SYSINFO_EHDR, its clocks agree with the
 * system calls, a result written to a demand-paged page works, and a bad
 * pointer raises SIGSEGV as on Linux. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static sigjmp_buf jb;
static void on_segv(int s) { (void)s; siglongjmp(jb, 1); }

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void) {
    const unsigned char *e = (const unsigned char *)getauxval(AT_SYSINFO_EHDR);
    printf("vDSO: %s\n", e && !memcmp(e, "\177ELF", 4) ? "an ELF image" : "missing");
    struct timespec a, b, s;
    int monotonic = 1;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 100000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (ns(b) < ns(a)) monotonic = 0;
        a = b;
    }
    printf("monotonic never goes back: %s\n", monotonic ? "yes" : "no");
    clock_gettime(CLOCK_REALTIME, &a);
    syscall(SYS_clock_gettime, CLOCK_REALTIME, &s);
    clock_gettime(CLOCK_REALTIME, &b);
    printf("vDSO and system call agree: %s\n", ns(a) <= ns(s) && ns(s) <= ns(b) ? "yes" : "no");
    struct timeval tv;
    gettimeofday(&tv, 0);
    long t = time(0);
    printf("gettimeofday and time agree: %s\n", t - tv.tv_sec <= 1 && t >= tv.tv_sec ? "yes" : "no");
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    printf("process CPU time > 0: %s\n", ns(a) > 0 ? "yes" : "no");
    /* A fresh page of a large mapping is populated on first touch. */
    char *big = mmap(0, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    struct timespec *fresh = (struct timespec *)(big + (40 << 20));
    printf("into a fresh page: %d\n", clock_gettime(CLOCK_MONOTONIC, fresh));
    signal(SIGSEGV, on_segv);
    if (sigsetjmp(jb, 1) == 0) {
        clock_gettime(CLOCK_MONOTONIC, (struct timespec *)16);
        printf("bad pointer: no fault\n");
    } else {
        printf("bad pointer: SIGSEGV\n");
    }
    return 0;
}
