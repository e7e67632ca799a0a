/* Demo payload for the firmware_sim tests only; the GRU kernels are generated elsewhere. */
#ifndef EDGEGRU_DEMO_DOT_INT8_H
#define EDGEGRU_DEMO_DOT_INT8_H

#include <stddef.h>
#include <stdint.h>

/* sum(a[i] * b[i]) over n int8 pairs, exact in int32 for n < 2^17. */
int32_t dot_int8(const int8_t *a, const int8_t *b, size_t n);

#endif
