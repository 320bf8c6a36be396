/* The library dlopen.c loads. */
int plugin_square(int x) { return x * x; }
const char *plugin_name(void) { return "optivolt plugin"; }
