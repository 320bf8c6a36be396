/* The hazards of rewriting `syscall` sites into jumps, each through a site
 * of the patchable shape (`mov eax, imm32; syscall`, written out in asm so
 * that every compiler emits it): live data in a leaf function's red zone,
 * vector registers, flags, signals arriving while threads run through
 * patched sites (tgkill, a timer, SIGSEGV), SA_RESTART of a read at a
 * patched site, and code the program writes itself. Prints the same
 * natively and as a unikernel. argv[1]: calls per thread in the timer
 * test (default 300000). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

static inline long getppid_site(void) {
    long r;
    __asm__ volatile("mov $110, %%eax\n\tsyscall" : "=a"(r) : : "rcx", "r11", "memory");
    return r;
}

/* A leaf function (no calls): the compiler keeps `buf` in the red zone
 * below RSP; a system-call path that pushed on the user stack would
 * overwrite it. */
static long __attribute__((noinline)) leaf(long x) {
    volatile long buf[12];
    for (int i = 0; i < 12; i++) buf[i] = x * 31 + i;
    long r = getppid_site();
    long s = 0;
    for (int i = 0; i < 12; i++) s += buf[i] - (x * 31 + i);
    return s == 0 && r >= 0;
}

static int red_zone(void) {
    for (long i = 0; i < 20000; i++)
        if (!leaf(i)) return 0;
    return 1;
}

/* xmm0..xmm15 keep their values across a patched call; so do the flags
 * (CF set before, still set after). */
static int vectors_and_flags(void) {
    uint64_t in[16], out[16];
    for (int i = 0; i < 16; i++) in[i] = 0x0123456789abcdefULL * (i + 1);
    unsigned char cf = 0;
    __asm__ volatile(
        "movq 0(%[i]), %%xmm0\n\tmovq 8(%[i]), %%xmm1\n\tmovq 16(%[i]), %%xmm2\n\t"
        "movq 24(%[i]), %%xmm3\n\tmovq 32(%[i]), %%xmm4\n\tmovq 40(%[i]), %%xmm5\n\t"
        "movq 48(%[i]), %%xmm6\n\tmovq 56(%[i]), %%xmm7\n\tmovq 64(%[i]), %%xmm8\n\t"
        "movq 72(%[i]), %%xmm9\n\tmovq 80(%[i]), %%xmm10\n\tmovq 88(%[i]), %%xmm11\n\t"
        "movq 96(%[i]), %%xmm12\n\tmovq 104(%[i]), %%xmm13\n\tmovq 112(%[i]), %%xmm14\n\t"
        "movq 120(%[i]), %%xmm15\n\t"
        "stc\n\t"
        "mov $39, %%eax\n\tsyscall\n\t"
        "setc %[cf]\n\t"
        "movq %%xmm0, 0(%[o])\n\tmovq %%xmm1, 8(%[o])\n\tmovq %%xmm2, 16(%[o])\n\t"
        "movq %%xmm3, 24(%[o])\n\tmovq %%xmm4, 32(%[o])\n\tmovq %%xmm5, 40(%[o])\n\t"
        "movq %%xmm6, 48(%[o])\n\tmovq %%xmm7, 56(%[o])\n\tmovq %%xmm8, 64(%[o])\n\t"
        "movq %%xmm9, 72(%[o])\n\tmovq %%xmm10, 80(%[o])\n\tmovq %%xmm11, 88(%[o])\n\t"
        "movq %%xmm12, 96(%[o])\n\tmovq %%xmm13, 104(%[o])\n\tmovq %%xmm14, 112(%[o])\n\t"
        "movq %%xmm15, 120(%[o])\n\t"
        : [cf] "=r"(cf)
        : [i] "r"(in), [o] "r"(out)
        : "rax", "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
          "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    return memcmp(in, out, sizeof in) == 0 && cf == 1;
}

/* The upper halves of ymm registers too, where the CPU has AVX (the
 * unikernel's virtual CPU does not offer it: then xmm alone is checked). */
__attribute__((target("avx"))) static int ymm_kept(void) {
    uint64_t in[8], out[8];
    for (int i = 0; i < 8; i++) in[i] = 0xfedcba9876543210ULL * (i + 3);
    __asm__ volatile("vmovdqu (%[i]), %%ymm0\n\tvmovdqu 32(%[i]), %%ymm15\n\t"
                     "mov $110, %%eax\n\tsyscall\n\t"
                     "vmovdqu %%ymm0, (%[o])\n\tvmovdqu %%ymm15, 32(%[o])\n\tvzeroupper"
                     :
                     : [i] "r"(in), [o] "r"(out)
                     : "rax", "rcx", "r11", "memory", "xmm0", "xmm15");
    return memcmp(in, out, sizeof in) == 0;
}

static int wide_vectors(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx") ? ymm_kept() : 1;
}

/* Signals from another thread while this one loops through a patched site. */
static pthread_t main_thread;
static volatile long hits;
static volatile int stop;
static void on_usr1(int sig) { (void)sig; hits++; }

static void *pester(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000 && !stop; i++) {
        pthread_kill(main_thread, SIGUSR1);
        usleep(50);
    }
    return NULL;
}

static int signals_at_sites(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    main_thread = pthread_self();
    pthread_t t;
    pthread_create(&t, NULL, pester, NULL);
    int ok = 1;
    for (long i = 0; i < 300000; i++)
        if (!leaf(i)) ok = 0;
    stop = 1;
    pthread_join(t, NULL);
    return ok && hits > 0;
}

/* A signal raised from a patched site and returned from through the
 * restorer's (patched) rt_sigreturn, many times: every one is handled and
 * the interrupted context comes back intact. */
static int raised_at_sites(void) {
    hits = 0;
    int ok = 1;
    for (long i = 0; i < 100000; i++) {
        if (!leaf(i)) ok = 0;
        raise(SIGUSR1);
    }
    return ok && hits == 100000;
}

/* Timer signals (SIGALRM every 200 us) while two threads make `n` calls
 * each through a patched site. */
static volatile long alarms;
static void on_alrm(int sig) { (void)sig; alarms++; }

static void *looper(void *arg) {
    long n = (long)arg, ok = 1;
    for (long i = 0; i < n; i++)
        if (!leaf(i)) ok = 0;
    return (void *)ok;
}

static int timers_at_sites(long n) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alrm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 200}, {0, 200}};
    setitimer(ITIMER_REAL, &it, NULL);
    pthread_t t;
    void *other;
    pthread_create(&t, NULL, looper, (void *)n);
    long ok = (long)looper((void *)n);
    pthread_join(t, &other);
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, NULL);
    return ok && (long)other && alarms > 0;
}

/* SIGSEGV taken and recovered from (siglongjmp) a thousand times in one
 * thread while another runs through a patched site. */
static int *volatile nowhere;
static sigjmp_buf segv_back;
static volatile long segvs;
static void on_segv(int sig) {
    (void)sig;
    segvs++;
    siglongjmp(segv_back, 1);
}

static int faults_at_sites(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, NULL);
    pthread_t t;
    void *ok;
    pthread_create(&t, NULL, looper, (void *)20000);
    for (int i = 0; i < 1000; i++)
        if (!sigsetjmp(segv_back, 1)) (void)*(volatile int *)nowhere;
    pthread_join(t, &ok);
    return (long)ok && segvs == 1000;
}

/* read(2) through a patched site, interrupted by a signal with SA_RESTART:
 * the read goes on and returns the data written later. */
static int pipefd[2];
static inline long read_site(int fd, void *buf, long n) {
    long r;
    register long a0 __asm__("rdi") = fd;
    register void *a1 __asm__("rsi") = buf;
    register long a2 __asm__("rdx") = n;
    __asm__ volatile("mov $0, %%eax\n\tsyscall"
                     : "=a"(r)
                     : "r"(a0), "r"(a1), "r"(a2)
                     : "rcx", "r11", "memory");
    return r;
}

static void *late_writer(void *arg) {
    (void)arg;
    usleep(20000);
    pthread_kill(main_thread, SIGUSR1);
    usleep(20000);
    write(pipefd[1], "late", 4);
    return NULL;
}

static int restart_at_site(void) {
    char buf[8] = {0};
    pipe(pipefd);
    /* Patch the site first (a call that returns at once: empty write end
     * closed? no: a zero-length read returns 0 without blocking). */
    read_site(pipefd[0], buf, 0);
    hits = 0;
    pthread_t t;
    pthread_create(&t, NULL, late_writer, NULL);
    long n = read_site(pipefd[0], buf, sizeof buf);
    pthread_join(t, NULL);
    return n == 4 && memcmp(buf, "late", 4) == 0 && hits == 1;
}

/* Code the program writes itself: `mov eax, 39; syscall; ret`. */
static int written_code(void) {
    unsigned char code[] = {0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xc3};
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 0;
    memcpy(p, code, sizeof code);
    if (mprotect(p, 4096, PROT_READ | PROT_EXEC) != 0) return 0;
    long (*f)(void) = (long (*)(void))p;
    long pid = getpid();
    for (int i = 0; i < 1000; i++)
        if (f() != pid) return 0;
    return 1;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 300000;
    printf("red zone kept: %s\n", red_zone() ? "yes" : "NO");
    printf("vector registers and flags kept: %s\n", vectors_and_flags() ? "yes" : "NO");
    printf("ymm registers kept (where the CPU has AVX): %s\n", wide_vectors() ? "yes" : "NO");
    printf("signals at patched sites: %s\n", signals_at_sites() ? "handled" : "LOST");
    printf("timer signals at patched sites: %s\n", timers_at_sites(n) ? "handled" : "LOST");
    printf("SIGSEGV while threads call the kernel: %s\n", faults_at_sites() ? "handled" : "LOST");
    printf("signals raised at patched sites: %s\n", raised_at_sites() ? "handled" : "LOST");
    printf("read restarted at a patched site: %s\n", restart_at_site() ? "yes" : "NO");
    printf("written code calls the kernel: %s\n", written_code() ? "yes" : "NO");
    return 0;
}
