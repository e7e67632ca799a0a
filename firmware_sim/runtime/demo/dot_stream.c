/* Demo program: a stream of int8 dot products, one marker window per step.
 *
 * stdin:  steps (1 byte), then per step: n (1 byte), a (n x int8), b (n x int8)
 * stdout: one line per step, the int32 dot product in decimal
 * exit:   0, or 1 if stdin ends early
 */
#include <stdio.h>

#include "dot_int8.h"
#include "edgegru_rt.h"

static int read_bytes(void *buffer, size_t n) { return fread(buffer, 1, n, stdin) == n; }

int main(void)
{
    unsigned char steps, n;
    static int8_t a[255], b[255];

    if (!read_bytes(&steps, 1)) {
        return 1;
    }
    for (unsigned step = 0; step < steps; step++) {
        int32_t dot;
        if (!read_bytes(&n, 1) || !read_bytes(a, n) || !read_bytes(b, n)) {
            return 1;
        }
        edgegru_mark_begin();
        dot = dot_int8(a, b, n);
        edgegru_mark_end();
        printf("%ld\n", (long)dot);
    }
    return 0;
}
