/* EdgeGRU fused int8 kernels: see edgegru_gru_int8.h for the arithmetic, layouts and ranges. */
#include "edgegru_gru_int8.h"

#include <string.h>

#include "edgegru_target.h"
#if defined(EDGEGRU_USE_MVE)
#include <arm_mve.h>
#endif
#if defined(EDGEGRU_USE_MVE)
#include <arm_acle.h>
#endif
#if defined(EDGEGRU_USE_DSP)
#include <arm_acle.h>
#endif

/* The elementwise passes are written with these small functions; they must be inlined to be fast. */
#if defined(__GNUC__)
#define INLINE __attribute__((always_inline)) inline
#else
#define INLINE inline
#endif

/* --- scalar arithmetic (every path's reference; the DSP path uses it as is) ---------------------- */

/* floor(x / 2^n), n in [0, 31]; one ASR with gcc and clang. */
static INLINE int32_t floor_shift(int32_t x, int32_t n)
{
    return x >= 0 ? x >> n : -1 - ((-1 - x) >> n);
}

/* floor(x / 2^32): the high word of an int64. */
static INLINE int32_t high_word(int64_t x)
{
    return (int32_t)(x >= 0 ? x / 4294967296 : -1 - (-1 - x) / 4294967296);
}

/* The spec's MultiplyByQuantizedMultiplier(v, m, -e) for e >= 1, |v| < 2^30, m in [2^30, 2^31):
 * floor((2 v m + 2^31 + 2^32 (2^(e-1) - [v < 0])) / 2^(32 + e)); |2 v m| < 2^62.  One SMLAL on Arm. */
static INLINE int32_t requantize(int32_t v, int32_t multiplier, int32_t exponent)
{
    const int64_t nudge = (int64_t)(((int32_t)1 << (exponent - 1)) + floor_shift(v, 31)) * 4294967296 + 0x80000000u;
    return floor_shift(high_word(nudge + (int64_t)(v * 2) * multiplier), exponent);
}

static INLINE int32_t saturate_int8(int32_t v)
{
#if defined(EDGEGRU_USE_MVE) || defined(EDGEGRU_USE_DSP)
    return __ssat(v, 8);
#else
    return v < -128 ? -128 : v > 127 ? 127 : v;
#endif
}

static INLINE int32_t requant_int8(int32_t v, const edgegru_requant_t *q)
{
    return saturate_int8(requantize(v, q->multiplier, q->exponent) + q->offset);
}

static INLINE int32_t channel_int8(int32_t acc, const edgegru_channel_requant_t *q, int32_t c)
{
    return saturate_int8(requantize(acc, q->multiplier[c], q->exponent[c]) + q->offset);
}

/* --- mat-vec ------------------------------------------------------------------------------------ */

#if defined(EDGEGRU_USE_DSP)

static uint32_t load_u32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v); /* one LDR; unaligned access is allowed on these cores */
    return v;
}

/* x int8 [cols] -> words of int16 pairs: (x[c], x[c+2]), (x[c+1], x[c+3]) per group of 4, then
 * (x[c], x[c+1]) for the tail, zero-padded. */
static void widen(const int8_t *x, int32_t cols, uint32_t *wide)
{
    int32_t c = 0;
    for (; c + 4 <= cols; c += 4) {
        const uint32_t v = load_u32(x + c);
        *wide++ = __sxtb16(v);
        *wide++ = __sxtb16(v >> 8);
    }
    for (; c < cols; c += 2) {
        const uint32_t high = c + 1 < cols ? (uint32_t)x[c + 1] << 16 : 0u;
        *wide++ = ((uint32_t)x[c] & 0xFFFFu) | high;
    }
}

/* dot_odd from a = 256 dot_odd + dot_even (mod 2^32) and dot_even; |256 dot_odd| < 2^31. */
static int32_t odd_dot(int32_t a, int32_t even)
{
    return (int32_t)((uint32_t)a - (uint32_t)even) >> 8;
}

void edgegru_matvec_int8(const void *weights, const int32_t *bias, const int8_t *x, int32_t *acc,
                         int32_t rows, int32_t cols, int32_t *wide_scratch)
{
    const uint32_t *w = (const uint32_t *)weights;
    uint32_t *wide = (uint32_t *)wide_scratch;
    const int32_t words = (cols + 1) / 2;
    const uint32_t *wide_end = wide + (words & ~1);
    int32_t r = 0, k;
    widen(x, cols, wide);
    for (; r + 4 <= rows; r += 4) { /* a quad: pairs (r, r+1) and (r+2, r+3), two weight words per x word */
        int32_t a0 = 0, e0 = 0, a1 = 0, e1 = 0;
        const uint32_t *xp = wide;
        while (xp < wide_end) {
            const uint32_t x0 = xp[0], x1 = xp[1];
            const uint32_t w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
            xp += 2;
            w += 4;
            a0 = __smlad(w0, x0, a0);
            e0 = __smlad(__sxtb16(w0), x0, e0);
            a1 = __smlad(w1, x0, a1);
            e1 = __smlad(__sxtb16(w1), x0, e1);
            a0 = __smlad(w2, x1, a0);
            e0 = __smlad(__sxtb16(w2), x1, e0);
            a1 = __smlad(w3, x1, a1);
            e1 = __smlad(__sxtb16(w3), x1, e1);
        }
        if (words & 1) {
            const uint32_t x0 = *xp, w0 = w[0], w1 = w[1];
            a0 = __smlad(w0, x0, a0);
            e0 = __smlad(__sxtb16(w0), x0, e0);
            a1 = __smlad(w1, x0, a1);
            e1 = __smlad(__sxtb16(w1), x0, e1);
            w += 2;
        }
        acc[r] = bias[r] + e0;
        acc[r + 1] = bias[r + 1] + odd_dot(a0, e0);
        acc[r + 2] = bias[r + 2] + e1;
        acc[r + 3] = bias[r + 3] + odd_dot(a1, e1);
    }
    for (; r < rows; r += 2) { /* a pair; an odd last row is paired with zeros */
        int32_t a0 = 0, e0 = 0;
        for (k = 0; k < words; ++k, ++w) {
            a0 = __smlad(*w, wide[k], a0);
            e0 = __smlad(__sxtb16(*w), wide[k], e0);
        }
        acc[r] = bias[r] + e0;
        if (r + 1 < rows) {
            acc[r + 1] = bias[r + 1] + odd_dot(a0, e0);
        }
    }
}

#elif defined(EDGEGRU_USE_MVE)

void edgegru_matvec_int8(const void *weights, const int32_t *bias, const int8_t *x, int32_t *acc,
                         int32_t rows, int32_t cols, int32_t *wide_scratch)
{
    /* Four rows share each 16-lane load of x; the cols % 16 tail uses predicated loads (zeros past
     * cols, nothing read beyond the rows). */
    const int8_t *w = (const int8_t *)weights;
    const int32_t tail = cols % 16;
    const mve_pred16_t p = vctp8q((uint32_t)tail);
    int32_t r = 0, c;
    (void)wide_scratch;
    for (; r + 4 <= rows; r += 4) {
        const int8_t *w0 = w, *w1 = w + cols, *w2 = w + 2 * cols, *w3 = w + 3 * cols, *xp = x;
        int32_t a0 = bias[r], a1 = bias[r + 1], a2 = bias[r + 2], a3 = bias[r + 3];
        for (c = tail; c < cols; c += 16, xp += 16, w0 += 16, w1 += 16, w2 += 16, w3 += 16) {
            const int8x16_t xv = vldrbq_s8(xp);
            a0 = vmladavaq_s8(a0, xv, vldrbq_s8(w0));
            a1 = vmladavaq_s8(a1, xv, vldrbq_s8(w1));
            a2 = vmladavaq_s8(a2, xv, vldrbq_s8(w2));
            a3 = vmladavaq_s8(a3, xv, vldrbq_s8(w3));
        }
        if (tail) {
            const int8x16_t xv = vldrbq_z_s8(xp, p);
            a0 = vmladavaq_s8(a0, xv, vldrbq_z_s8(w0, p));
            a1 = vmladavaq_s8(a1, xv, vldrbq_z_s8(w1, p));
            a2 = vmladavaq_s8(a2, xv, vldrbq_z_s8(w2, p));
            a3 = vmladavaq_s8(a3, xv, vldrbq_z_s8(w3, p));
        }
        acc[r] = a0;
        acc[r + 1] = a1;
        acc[r + 2] = a2;
        acc[r + 3] = a3;
        w += 4 * cols;
    }
    for (; r < rows; ++r, w += cols) {
        const int8_t *w0 = w, *xp = x;
        int32_t a0 = bias[r];
        for (c = tail; c < cols; c += 16, xp += 16, w0 += 16) {
            a0 = vmladavaq_s8(a0, vldrbq_s8(xp), vldrbq_s8(w0));
        }
        if (tail) {
            a0 = vmladavaq_s8(a0, vldrbq_z_s8(xp, p), vldrbq_z_s8(w0, p));
        }
        acc[r] = a0;
    }
}

#else

void edgegru_matvec_int8(const void *weights, const int32_t *bias, const int8_t *x, int32_t *acc,
                         int32_t rows, int32_t cols, int32_t *wide_scratch)
{
    /* |W x| <= 127 * 128 * cols; every partial sum is bounded by the accumulator bound. */
    const int8_t *w = (const int8_t *)weights;
    int32_t r, c;
    (void)wide_scratch;
    for (r = 0; r < rows; ++r, w += cols) {
        int32_t a = bias[r];
        for (c = 0; c < cols; ++c) {
            a += w[c] * x[c];
        }
        acc[r] = a;
    }
}

#endif

/* --- elementwise passes ------------------------------------------------------------------------- */

void edgegru_requantize_int8(const edgegru_channel_requant_t *p, const int32_t *acc, int8_t *y, int32_t n)
{
    const edgegru_channel_requant_t rq = *p;
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = (int8_t)channel_int8(acc[i], &rq, i);
    }
}

void edgegru_gate_int8(const edgegru_gate_int8_t *p, const int32_t *acc_a, const int32_t *acc_b,
                       int8_t *out, int32_t n)
{
    const edgegru_channel_requant_t a_rq = p->a, b_rq = p->b;
    const edgegru_requant_t add_rq = p->add.output;
    const int32_t *const table1 = p->add.table1 + 128, *const table2 = p->add.table2 + 128;
    const int8_t *const activation = p->activation + 128;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t a = channel_int8(acc_a[i], &a_rq, i), b = channel_int8(acc_b[i], &b_rq, i);
        out[i] = activation[requant_int8(table1[a] + table2[b], &add_rq)];
    }
}

void edgegru_candidate_int8(const edgegru_candidate_int8_t *p, const int32_t *acc_xn, const int32_t *acc_hn,
                            const int8_t *r, int8_t *n_out, int32_t n)
{
    const edgegru_channel_requant_t xn_rq = p->xn, hn_rq = p->hn;
    const edgegru_mul_int8_t reset = p->reset;
    const edgegru_requant_t add_rq = p->add.output;
    const int32_t *const table1 = p->add.table1 + 128, *const table2 = p->add.table2 + 128;
    const int8_t *const activation = p->activation + 128;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t xn = channel_int8(acc_xn[i], &xn_rq, i), hn = channel_int8(acc_hn[i], &hn_rq, i);
        const int32_t r_hn = requant_int8((r[i] + reset.offset1) * (hn + reset.offset2), &reset.output);
        n_out[i] = activation[requant_int8(table1[xn] + table2[r_hn], &add_rq)];
    }
}

void edgegru_update_int8(const edgegru_update_int8_t *p, const int8_t *z, const int8_t *n_gate, int8_t *h,
                         int32_t n)
{
    const edgegru_requant_t sub_rq = p->sub.output, add_rq = p->add.output;
    const edgegru_mul_int8_t mul = p->mul;
    const int32_t *const sub1 = p->sub.table1 + 128, *const sub2 = p->sub.table2 + 128;
    const int32_t *const add1 = p->add.table1 + 128, *const add2 = p->add.table2 + 128;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t n_i = n_gate[i];
        const int32_t h_minus_n = requant_int8(sub1[h[i]] + sub2[n_i], &sub_rq);
        const int32_t z_h_minus_n = requant_int8((z[i] + mul.offset1) * (h_minus_n + mul.offset2), &mul.output);
        h[i] = (int8_t)requant_int8(add1[n_i] + add2[z_h_minus_n], &add_rq);
    }
}

void edgegru_mul_vector_int8(const edgegru_mul_int8_t *p, const int8_t *a, const int8_t *b, int8_t *out,
                             int32_t n)
{
    const edgegru_mul_int8_t mul = *p;
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = (int8_t)requant_int8((a[i] + mul.offset1) * (b[i] + mul.offset2), &mul.output);
    }
}
