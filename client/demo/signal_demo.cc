// Placeholder replaced by the libsignal demonstration.
#include <cstdio>
int main() { std::puts("coffre demo"); return 0; }
