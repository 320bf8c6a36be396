/* Loads the library named by argv[1] with dlopen(3) and calls into it. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        printf("dlopen failed: %s\n", dlerror());
        return 1;
    }
    int (*square)(int) = (int (*)(int))dlsym(h, "plugin_square");
    const char *(*name)(void) = (const char *(*)(void))dlsym(h, "plugin_name");
    if (!square || !name) {
        printf("dlsym failed: %s\n", dlerror());
        return 1;
    }
    printf("%s: square(12) = %d\n", name(), square(12));
    /* /proc/self/maps names the library's executable mapping. */
    FILE *m = fopen("/proc/self/maps", "r");
    char line[1024];
    int seen = 0;
    while (m && fgets(line, sizeof line, m))
        if (strstr(line, "libplugin.so") && strstr(line, " r-xp ")) seen = 1;
    if (m) fclose(m);
    printf("maps names the library: %d\n", seen);
    printf("dlclose: %d\n", dlclose(h));
    return 0;
}
