/* EdgeGRU scalar helpers shared by the generic kernels (edgegru_kernels.c) and the fused int8 kernels
 * (edgegru_gru_int8_kernels.h): the inline attribute, the flooring shift and the unaligned word load.
 * Only <stdint.h> and <string.h>. */
#ifndef EDGEGRU_ARITH_H
#define EDGEGRU_ARITH_H

#include <stdint.h>
#include <string.h>

/* The kernels are written with small functions; they must be inlined to be fast. */
#if defined(__GNUC__)
#define EDGEGRU_INLINE __attribute__((always_inline)) inline
#else
#define EDGEGRU_INLINE inline
#endif

/* floor(x / 2^n), n in [0, 31]: an arithmetic right shift without implementation-defined behaviour;
 * one ASR with gcc and clang. */
static EDGEGRU_INLINE int32_t edgegru_floor_shift(int32_t x, int32_t n)
{
    return x >= 0 ? x >> n : -1 - ((-1 - x) >> n);
}

/* The 32-bit word at p, aligned or not: one LDR on the cores whose paths use it (Cortex-M4/M7/M33
 * allow unaligned word access). */
static EDGEGRU_INLINE uint32_t edgegru_load_u32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

#endif
