/* EdgeGRU fused int8 kernels, included by edgegru_gru_int8.h (see there for the arithmetic, layouts
 * and ranges): every function is static inline. */
#ifndef EDGEGRU_GRU_INT8_KERNELS_H
#define EDGEGRU_GRU_INT8_KERNELS_H

#include "edgegru_arith.h"
#include "edgegru_target.h"
#if defined(EDGEGRU_USE_MVE)
#include <arm_mve.h>
#endif
#if defined(EDGEGRU_USE_MVE) || defined(EDGEGRU_USE_DSP)
#include <arm_acle.h>
#endif

/* --- scalar arithmetic (the reference of every path; the vector code must agree with it) ---------- */

/* floor(x / 2^32): the high word of an int64. */
static EDGEGRU_INLINE int32_t high_word(int64_t x)
{
    return (int32_t)(x >= 0 ? x / 4294967296 : -1 - (-1 - x) / 4294967296);
}

/* clamp(v, -128, 127): one SSAT on the DSP and MVE paths. */
static EDGEGRU_INLINE int32_t saturate_int8(int32_t v)
{
#if defined(EDGEGRU_USE_MVE) || defined(EDGEGRU_USE_DSP)
    return __ssat(v, 8);
#else
    return v < -128 ? -128 : v > 127 ? 127 : v;
#endif
}

/* floor((2^32 high + 2^31 + a b) / 2^32) when it fits int32: SMMLAR on the DSP path (no ACLE intrinsic
 * exists for it; GCC and clang compile a 64-bit SMLAL and a move instead). */
static EDGEGRU_INLINE int32_t rounded_high_mla(int32_t a, int32_t b, int32_t high)
{
#if defined(EDGEGRU_USE_DSP)
    int32_t result;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(result) : "r"(a), "r"(b), "r"(high));
    return result;
#else
    return high_word((int64_t)high * 4294967296 + 0x80000000u + (int64_t)a * b);
#endif
}

/* saturate(floor((2 v m + 2^31 + 2^32 (nudge - [v < 0])) / 2^(32 + e))): the header's requantization to
 * int8, from twice_v = 2 v, |v| < 2^30, and sign_v = v (any value of v's sign: only [v < 0] is used).
 * One SMMLAR (or SMLAL) and one ASR on Arm. */
static EDGEGRU_INLINE int32_t requantize_doubled(int32_t twice_v, int32_t sign_v, int32_t multiplier, int32_t nudge,
                                         int32_t exponent)
{
    return saturate_int8(edgegru_floor_shift(rounded_high_mla(twice_v, multiplier, nudge + edgegru_floor_shift(sign_v, 31)), exponent));
}

static EDGEGRU_INLINE int32_t requantize(int32_t v, int32_t multiplier, int32_t nudge, int32_t exponent)
{
    return requantize_doubled(v * 2, v, multiplier, nudge, exponent);
}

static EDGEGRU_INLINE int32_t requant_int8(int32_t v, const edgegru_requant_t *q)
{
    return requantize(v, q->multiplier, q->nudge, q->exponent);
}

/* --- vector arithmetic (MVE: four int32 lanes) ---------------------------------------------------- */

#if defined(EDGEGRU_USE_MVE)

static EDGEGRU_INLINE int32x4_t saturate_int8_lanes(int32x4_t v)
{
    return vmaxq_s32(vminq_s32(v, vdupq_n_s32(127)), vdupq_n_s32(-128));
}

/* The requantization from t = VQRDMULH(v, m): saturate((t - [t < 0] + nudge) >> e) (header). */
static EDGEGRU_INLINE int32x4_t requantize_high(int32x4_t t, int32x4_t nudge, int32x4_t minus_exponent)
{
    return saturate_int8_lanes(vshlq_s32(vaddq_s32(vaddq_s32(t, vshrq_n_s32(t, 31)), nudge), minus_exponent));
}

static EDGEGRU_INLINE int32x4_t requant_int8_lanes(int32x4_t v, const edgegru_requant_t *q)
{
    return requantize_high(vqrdmulhq_n_s32(v, q->multiplier), vdupq_n_s32(q->nudge), vdupq_n_s32(-q->exponent));
}

/* Four int8 at p, sign-extended. */
static EDGEGRU_INLINE int32x4_t load_int8_lanes(const int8_t *p)
{
    return vldrbq_s32(p);
}

/* table[q] per lane, q in [-128, 127], table pointing at entry 0 (header): gathers take unsigned
 * offsets, so they start at table - 128. */
static EDGEGRU_INLINE int32x4_t lookup_int32(const int32_t *table, int32x4_t q)
{
    return vldrwq_gather_shifted_offset_s32(table - 128, vreinterpretq_u32_s32(vaddq_n_s32(q, 128)));
}

static EDGEGRU_INLINE int32x4_t lookup_int8(const int8_t *table, int32x4_t q)
{
    return vldrbq_gather_offset_s32(table - 128, vreinterpretq_u32_s32(vaddq_n_s32(q, 128)));
}

#endif

/* --- mat-vec ------------------------------------------------------------------------------------ */

/* edgegru_matvec_int8: acc[r] = bias[r] + sum_c W[r][c] x[c], r < rows; weights in the path's layout
 * (edgegru_gru_int8.h).  wide_scratch: (cols + 1) / 2 words, where the DSP path widens x to int16
 * pairs once per call. */

#if defined(EDGEGRU_USE_DSP)

/* x int8 [cols] -> words of int16 pairs of 2 x (so that the sums come out doubled, as the requantization
 * takes them): (2x[c], 2x[c+2]), (2x[c+1], 2x[c+3]) per group of 4, then (2x[c], 2x[c+1]) for the
 * tail, zero-padded.  |2 x| <= 256. */
static EDGEGRU_INLINE void widen(const int8_t *x, int32_t cols, uint32_t *wide)
{
    int32_t c = 0;
    for (; c + 4 <= cols; c += 4) {
        const uint32_t v = edgegru_load_u32(x + c);
        const uint32_t even = __sxtb16(v), odd = __sxtb16(v >> 8);
        *wide++ = __sadd16(even, even);
        *wide++ = __sadd16(odd, odd);
    }
    for (; c < cols; c += 2) {
        const uint32_t high = c + 1 < cols ? (uint32_t)(2 * x[c + 1]) << 16 : 0u;
        *wide++ = ((uint32_t)(2 * x[c]) & 0xFFFFu) | high;
    }
}

/* 2 dot_odd from a = 2 (256 dot_odd + dot_even) (mod 2^32) and 2 dot_even; |512 dot_odd| < 2^31. */
static EDGEGRU_INLINE int32_t odd_dot(int32_t a, int32_t even)
{
    return (int32_t)((uint32_t)a - (uint32_t)even) >> 8;
}

/* One x word against a quad's two weight words: sums[0, 1] = (256 dot_odd + dot_even, dot_even) of the
 * first pair, sums[2, 3] of the second. */
static EDGEGRU_INLINE void quad_mac(uint32_t first, uint32_t second, uint32_t x, int32_t *sums)
{
    sums[0] = __smlad(first, x, sums[0]);
    sums[1] = __smlad(__sxtb16(first), x, sums[1]);
    sums[2] = __smlad(second, x, sums[2]);
    sums[3] = __smlad(__sxtb16(second), x, sums[3]);
}

/* Where a row's doubled sum goes: acc[r] (halved), or, when `requantizes` (a constant at each call, so
 * that the compiler keeps one branch), y[r] = its requantization. */
typedef struct {
    int32_t requantizes;
    int32_t *acc;
    int8_t *y;
    const int32_t *requant; /* [rows][3] */
} row_sink_t;

static EDGEGRU_INLINE void put_row(int32_t r, int32_t bias, int32_t twice_dot, row_sink_t out)
{
    const int32_t twice_v = twice_dot + bias * 2;
    if (out.requantizes) {
        const int32_t *const q = out.requant + 3 * r;
        out.y[r] = (int8_t)requantize_doubled(twice_v, twice_v, q[0], q[1], q[2]);
    } else {
        out.acc[r] = twice_v / 2;
    }
}

/* The DSP mat-vec; with out.requantizes each row is requantized as soon as it is summed. */
static EDGEGRU_INLINE void pair_matvec(const uint32_t *w, const int32_t *bias, const int8_t *x, int32_t rows, int32_t cols,
                               uint32_t *wide, row_sink_t out)
{
    const int32_t words = (cols + 1) / 2;
    const uint32_t *const wide_end8 = wide + (words & ~7);
    const int32_t quad_rows = rows - rows % 4;
    int32_t r = 0, k;
    widen(x, cols, wide);
    for (; r < quad_rows; r += 4) {
        int32_t sums[4] = {0, 0, 0, 0};
        const uint32_t *xp = wide;
        /* Written out on purpose: with a loop helper over a constant count, GCC 12 -O2 does not unroll
         * it and the Cortex-M4 step costs 2.3 to 2.5 instructions per MAC instead of 1.88. */
        while (xp < wide_end8) { /* eight x words, sixteen weight words */
            quad_mac(w[0], w[1], xp[0], sums);
            quad_mac(w[2], w[3], xp[1], sums);
            quad_mac(w[4], w[5], xp[2], sums);
            quad_mac(w[6], w[7], xp[3], sums);
            quad_mac(w[8], w[9], xp[4], sums);
            quad_mac(w[10], w[11], xp[5], sums);
            quad_mac(w[12], w[13], xp[6], sums);
            quad_mac(w[14], w[15], xp[7], sums);
            xp += 8;
            w += 16;
        }
        if (words & 4) {
            quad_mac(w[0], w[1], xp[0], sums);
            quad_mac(w[2], w[3], xp[1], sums);
            quad_mac(w[4], w[5], xp[2], sums);
            quad_mac(w[6], w[7], xp[3], sums);
            xp += 4;
            w += 8;
        }
        if (words & 2) {
            quad_mac(w[0], w[1], xp[0], sums);
            quad_mac(w[2], w[3], xp[1], sums);
            xp += 2;
            w += 4;
        }
        if (words & 1) {
            quad_mac(w[0], w[1], xp[0], sums);
            w += 2;
        }
        put_row(r, bias[r], sums[1], out);
        put_row(r + 1, bias[r + 1], odd_dot(sums[0], sums[1]), out);
        put_row(r + 2, bias[r + 2], sums[3], out);
        put_row(r + 3, bias[r + 3], odd_dot(sums[2], sums[3]), out);
    }
    for (r = quad_rows; r < rows; r += 2) { /* a pair; an odd last row is paired with zeros */
        int32_t a = 0, even = 0;
        for (k = 0; k < words; ++k, ++w) {
            a = __smlad(*w, wide[k], a);
            even = __smlad(__sxtb16(*w), wide[k], even);
        }
        put_row(r, bias[r], even, out);
        if (r + 1 < rows) {
            put_row(r + 1, bias[r + 1], odd_dot(a, even), out);
        }
    }
}

static EDGEGRU_INLINE void edgegru_matvec_int8(const void *weights, const int32_t *bias, const int8_t *x, int32_t *acc,
                         int32_t rows, int32_t cols, int32_t *wide_scratch)
{
    const row_sink_t out = {0, acc, NULL, NULL};
    pair_matvec((const uint32_t *)weights, bias, x, rows, cols, (uint32_t *)wide_scratch, out);
}

#elif defined(EDGEGRU_USE_MVE)

static EDGEGRU_INLINE void edgegru_matvec_int8(const void *weights, const int32_t *bias, const int8_t *x, int32_t *acc,
                         int32_t rows, int32_t cols, int32_t *wide_scratch)
{
    /* Four rows share each 16-lane load of x; the weights are read in order (the header's MVE layout).
     * The cols % 16 tail uses predicated loads: zeros past cols, nothing read beyond them. */
    const int8_t *w = (const int8_t *)weights;
    const int32_t tail = cols % 16, full = cols - tail;
    const mve_pred16_t p = vctp8q((uint32_t)tail);
    const int8x16_t x_tail = vldrbq_z_s8(x + full, p);
    const int32_t quad_rows = rows - rows % 4;
    int32_t r = 0, c;
    (void)wide_scratch;
    for (; r < quad_rows; r += 4) {
        int32_t a0 = bias[r], a1 = bias[r + 1], a2 = bias[r + 2], a3 = bias[r + 3];
        const int8_t *xp = x;
        for (c = 0; c < full; c += 16, xp += 16, w += 64) {
            const int8x16_t xv = vldrbq_s8(xp);
            a0 = vmladavaq_s8(a0, xv, vldrbq_s8(w));
            a1 = vmladavaq_s8(a1, xv, vldrbq_s8(w + 16));
            a2 = vmladavaq_s8(a2, xv, vldrbq_s8(w + 32));
            a3 = vmladavaq_s8(a3, xv, vldrbq_s8(w + 48));
        }
        if (tail) {
            a0 = vmladavaq_s8(a0, x_tail, vldrbq_z_s8(w, p));
            a1 = vmladavaq_s8(a1, x_tail, vldrbq_z_s8(w + tail, p));
            a2 = vmladavaq_s8(a2, x_tail, vldrbq_z_s8(w + 2 * tail, p));
            a3 = vmladavaq_s8(a3, x_tail, vldrbq_z_s8(w + 3 * tail, p));
            w += 4 * tail;
        }
        acc[r] = a0;
        acc[r + 1] = a1;
        acc[r + 2] = a2;
        acc[r + 3] = a3;
    }
    for (r = quad_rows; r < rows; ++r) {
        int32_t a0 = bias[r];
        const int8_t *xp = x;
        for (c = 0; c < full; c += 16, xp += 16, w += 16) {
            a0 = vmladavaq_s8(a0, vldrbq_s8(xp), vldrbq_s8(w));
        }
        if (tail) {
            a0 = vmladavaq_s8(a0, x_tail, vldrbq_z_s8(w, p));
            w += tail;
        }
        acc[r] = a0;
    }
}

#else

static EDGEGRU_INLINE void edgegru_matvec_int8(const void *weights, const int32_t *bias, const int8_t *x, int32_t *acc,
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

/* --- FULLY_CONNECTED ---------------------------------------------------------------------------- */

/* y = the FULLY_CONNECTED `fc` of x, int8 [fc->rows].  acc_scratch: fc->rows int32 (unused by the DSP
 * path, which requantizes each quad of rows as it finishes); wide_scratch as for edgegru_matvec_int8. */
static EDGEGRU_INLINE void edgegru_fc_int8(const edgegru_fc_int8_t *fc, const int8_t *x, int8_t *y, int32_t *acc_scratch,
                     int32_t *wide_scratch)
{
#if defined(EDGEGRU_USE_DSP)
    const row_sink_t out = {1, NULL, y, fc->requant};
    (void)acc_scratch;
    pair_matvec((const uint32_t *)fc->weights, fc->bias, x, fc->rows, fc->cols, (uint32_t *)wide_scratch, out);
#else
    const int32_t *const requant = fc->requant;
    const int32_t rows = fc->rows;
    int32_t r = 0;
    edgegru_matvec_int8(fc->weights, fc->bias, x, acc_scratch, rows, fc->cols, wide_scratch);
#if defined(EDGEGRU_USE_MVE)
    const int32_t lanes_end = rows - rows % 4;
    const uint32x4_t records = vmulq_n_u32(vidupq_n_u32(0, 1), 3); /* word offsets of 4 rows' records */
    for (; r < lanes_end; r += 4) {
        const int32_t *const q = requant + 3 * r;
        const int32x4_t minus_exponent = vnegq_s32(vldrwq_gather_shifted_offset_s32(q + 2, records));
        const int32x4_t t = vqrdmulhq_s32(vldrwq_s32(acc_scratch + r), vldrwq_gather_shifted_offset_s32(q, records));
        vstrbq_s32(y + r, requantize_high(t, vldrwq_gather_shifted_offset_s32(q + 1, records), minus_exponent));
    }
    r = lanes_end;
#endif
    for (; r < rows; ++r) {
        y[r] = (int8_t)requantize(acc_scratch[r], requant[3 * r], requant[3 * r + 1], requant[3 * r + 2]);
    }
#endif
}

/* --- elementwise passes (MVE: four lanes at a time, then the scalar code for the n % 4 rest) ---- */

static EDGEGRU_INLINE void edgegru_gate_int8(const edgegru_gate_int8_t *p, const int8_t *a, const int8_t *b, int8_t *out, int32_t n)
{
    const edgegru_requant_t add = p->add.output;
    const int32_t *const table1 = p->add.table1, *const table2 = p->add.table2;
    const int8_t *const activation = p->activation;
    int32_t i = 0;
#if defined(EDGEGRU_USE_MVE)
    const int32_t lanes_end = n - n % 4;
    for (; i < lanes_end; i += 4) {
        const int32x4_t sum = vaddq_s32(lookup_int32(table1, load_int8_lanes(a + i)),
                                        lookup_int32(table2, load_int8_lanes(b + i)));
        vstrbq_s32(out + i, lookup_int8(activation, requant_int8_lanes(sum, &add)));
    }
    i = lanes_end; /* tells the compiler where the rest starts */
#endif
    for (; i < n; ++i) {
        out[i] = activation[requant_int8(table1[a[i]] + table2[b[i]], &add)];
    }
}

static EDGEGRU_INLINE void edgegru_candidate_int8(const edgegru_candidate_int8_t *p, const int8_t *xn, const int8_t *hn,
                            const int8_t *r, int8_t *n_out, int32_t n)
{
    const edgegru_mul_int8_t reset = p->reset;
    const edgegru_requant_t add = p->add.output;
    const int32_t *const table1 = p->add.table1, *const table2 = p->add.table2;
    const int8_t *const activation = p->activation;
    int32_t i = 0;
#if defined(EDGEGRU_USE_MVE)
    const int32_t lanes_end = n - n % 4;
    for (; i < lanes_end; i += 4) {
        const int32x4_t product = vmulq_s32(vaddq_n_s32(load_int8_lanes(r + i), reset.offset1),
                                            vaddq_n_s32(load_int8_lanes(hn + i), reset.offset2));
        const int32x4_t sum = vaddq_s32(lookup_int32(table1, load_int8_lanes(xn + i)),
                                        lookup_int32(table2, requant_int8_lanes(product, &reset.output)));
        vstrbq_s32(n_out + i, lookup_int8(activation, requant_int8_lanes(sum, &add)));
    }
    i = lanes_end; /* tells the compiler where the rest starts */
#endif
    for (; i < n; ++i) {
        const int32_t r_hn = requant_int8((r[i] + reset.offset1) * (hn[i] + reset.offset2), &reset.output);
        n_out[i] = activation[requant_int8(table1[xn[i]] + table2[r_hn], &add)];
    }
}

static EDGEGRU_INLINE void edgegru_update_int8(const edgegru_update_int8_t *p, const int8_t *z, const int8_t *n_gate, int8_t *h,
                         int32_t n)
{
    const edgegru_requant_t sub = p->sub.output, add = p->add.output;
    const edgegru_mul_int8_t mul = p->mul;
    const int32_t *const sub1 = p->sub.table1, *const sub2 = p->sub.table2;
    const int32_t *const add1 = p->add.table1, *const add2 = p->add.table2;
    int32_t i = 0;
#if defined(EDGEGRU_USE_MVE)
    const int32_t lanes_end = n - n % 4;
    for (; i < lanes_end; i += 4) {
        const int32x4_t n_i = load_int8_lanes(n_gate + i);
        const int32x4_t h_minus_n = requant_int8_lanes(
            vaddq_s32(lookup_int32(sub1, load_int8_lanes(h + i)), lookup_int32(sub2, n_i)), &sub);
        const int32x4_t product = vmulq_s32(vaddq_n_s32(load_int8_lanes(z + i), mul.offset1),
                                            vaddq_n_s32(h_minus_n, mul.offset2));
        const int32x4_t z_h_minus_n = requant_int8_lanes(product, &mul.output);
        vstrbq_s32(h + i, requant_int8_lanes(vaddq_s32(lookup_int32(add1, n_i), lookup_int32(add2, z_h_minus_n)),
                                             &add));
    }
    i = lanes_end; /* tells the compiler where the rest starts */
#endif
    for (; i < n; ++i) {
        const int32_t n_i = n_gate[i];
        const int32_t h_minus_n = requant_int8(sub1[h[i]] + sub2[n_i], &sub);
        const int32_t z_h_minus_n = requant_int8((z[i] + mul.offset1) * (h_minus_n + mul.offset2), &mul.output);
        h[i] = (int8_t)requant_int8(add1[n_i] + add2[z_h_minus_n], &add);
    }
}

/* out = MUL(a, b), elementwise: r * h for reset_before. */
static EDGEGRU_INLINE void edgegru_mul_vector_int8(const edgegru_mul_int8_t *p, const int8_t *a, const int8_t *b, int8_t *out,
                             int32_t n)
{
    const edgegru_mul_int8_t mul = *p;
    int32_t i = 0;
#if defined(EDGEGRU_USE_MVE)
    const int32_t lanes_end = n - n % 4;
    for (; i < lanes_end; i += 4) {
        const int32x4_t product = vmulq_s32(vaddq_n_s32(load_int8_lanes(a + i), mul.offset1),
                                            vaddq_n_s32(load_int8_lanes(b + i), mul.offset2));
        vstrbq_s32(out + i, requant_int8_lanes(product, &mul.output));
    }
    i = lanes_end; /* tells the compiler where the rest starts */
#endif
    for (; i < n; ++i) {
        out[i] = (int8_t)requant_int8((a[i] + mul.offset1) * (b[i] + mul.offset2), &mul.output);
    }
}

#endif
