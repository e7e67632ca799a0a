/* EdgeGRU fused int8 kernels: one GRU layer step as two mat-vecs and three elementwise passes.
 *
 * The generic kernels (edgegru_kernels.h) run the step graph one TFLite operator at a time.  These
 * compute the same integers (the golden model's `double` rounding, TFLite Micro's reference
 * arithmetic) with what the generator knows at build time:
 *
 * - Mat-vec: acc[r] = bias[r] + sum_c W[r][c] x[c] over raw int8 x, the input zero point folded into
 *   the bias by the generator.  Weight layout per path (edgegru_target.h):
 *     portable, MVE: row-major int8 [rows][cols];
 *     DSP: "row pairs" of int16 h[c] = 256 W[2k+1][c] + W[2k][c] (an odd final row pairs with zeros),
 *       in 32-bit words of two halfwords.  x is widened once per call to words of int16 pairs:
 *       (x[c], x[c+2]), (x[c+1], x[c+3]) per group of 4 columns, then (x[c], x[c+1]) for the tail
 *       (zero-padded).  Rows go in quads (two pairs) while 4 rows remain, then single pairs; per
 *       block and x word, one weight word per pair holding h at the x word's two columns.  A pair
 *       costs no more flash than its two int8 rows (plus one halfword when cols is odd).
 *       SMLAD(h, x) gives 256 dot_odd + dot_even and SMLAD(SXTB16(h), x) gives dot_even: four MACs
 *       per two SMLAD and one SXTB16.  The generator checks
 *       128 sum_c |W[odd][c]| < 2^23, so 256 dot_odd fits int32 and the difference is exact.
 * - Requantization of an int32 v to a right shift e >= 1 with |v| < 2^30 (checked by the generator):
 *   the spec's two roundings (SRDHM, then rounding divide by 2^e) in one 64-bit multiply-add,
 *       q = floor((2 v m + 2^31 + 2^32 (2^(e-1) - [v < 0])) / 2^(32 + e)),
 *   an exact identity (nested floors with integer offsets; SRDHM rounds ties up, the divide ties away
 *   from zero, which is the -[v < 0]).
 * - ADD and SUB of two int8 tensors: each input's rescale (q - zp) << 20 -> SRDHM -> divide is a
 *   function of the int8 q, read from a 256-entry int32 table built by the generator with the golden
 *   model's functions (SUB: the second table negated); the sum is requantized as above.
 * - LOGISTIC, TANH: the quantizer's 256-entry int8 tables.
 * All tables are indexed by q + 128.
 *
 * Ranges: table entries |t| < 2^27 (|q - zp| <= 255, shifted by 20, times a multiplier <= 1/2), so a
 * sum of two is below 2^28; MUL products |(a - zp1)(b - zp2)| <= 255^2 < 2^16; FC accumulators below
 * 2^30 (the quantizer's bound, checked by the generator).
 */
#ifndef EDGEGRU_GRU_INT8_H
#define EDGEGRU_GRU_INT8_H

#include <stdint.h>

/* One requantization with constant parameters: int8 = saturate(rq(v, multiplier, exponent) + offset). */
typedef struct {
    int32_t multiplier; /* Q31 in [2^30, 2^31) */
    int32_t exponent;   /* right shift, >= 1 */
    int32_t offset;     /* output zero point */
} edgegru_requant_t;

/* Per-output-channel requantization of a FULLY_CONNECTED. */
typedef struct {
    const int32_t *multiplier; /* [rows] Q31 */
    const uint8_t *exponent;   /* [rows] right shifts, >= 1 */
    int32_t offset;            /* output zero point */
} edgegru_channel_requant_t;

/* ADD (or SUB) of two int8 tensors through their input tables. */
typedef struct {
    const int32_t *table1; /* [256] scaled input 1 */
    const int32_t *table2; /* [256] scaled input 2 (negated for SUB) */
    edgegru_requant_t output;
} edgegru_add_int8_t;

/* MUL of two int8 tensors. */
typedef struct {
    int32_t offset1, offset2; /* minus the input zero points */
    edgegru_requant_t output;
} edgegru_mul_int8_t;

/* out = ACTIVATION(ADD(FC_a, FC_b)): the r and z gates, and n for reset_before. */
typedef struct {
    edgegru_channel_requant_t a, b;
    edgegru_add_int8_t add;
    const int8_t *activation; /* [256] LOGISTIC or TANH */
} edgegru_gate_int8_t;

/* n = TANH(ADD(FC_xn, MUL(r, FC_hn))): the reset_after candidate. */
typedef struct {
    edgegru_channel_requant_t xn, hn;
    edgegru_mul_int8_t reset;  /* r * hn */
    edgegru_add_int8_t add;    /* xn + r_hn */
    const int8_t *activation;  /* [256] TANH */
} edgegru_candidate_int8_t;

/* h = ADD(n, MUL(z, SUB(h, n))): the state update, in place. */
typedef struct {
    edgegru_add_int8_t sub;   /* h - n */
    edgegru_mul_int8_t mul;   /* z * (h - n) */
    edgegru_add_int8_t add;   /* n + z (h - n) */
} edgegru_update_int8_t;

/* acc[r] = bias[r] + sum_c W[r][c] x[c], r < rows; weights in the path's layout (above).
 * wide_scratch: (cols + 1) / 2 words, where the DSP path widens x to int16 pairs once per call. */
void edgegru_matvec_int8(const void *weights, const int32_t *bias, const int8_t *x, int32_t *acc,
                         int32_t rows, int32_t cols, int32_t *wide_scratch);

/* y[r] = saturate(rq(acc[r], multiplier[r], exponent[r]) + offset): a FULLY_CONNECTED's int8 output. */
void edgegru_requantize_int8(const edgegru_channel_requant_t *p, const int32_t *acc, int8_t *y, int32_t n);

void edgegru_gate_int8(const edgegru_gate_int8_t *p, const int32_t *acc_a, const int32_t *acc_b,
                       int8_t *out, int32_t n);

void edgegru_candidate_int8(const edgegru_candidate_int8_t *p, const int32_t *acc_xn, const int32_t *acc_hn,
                            const int8_t *r, int8_t *n_out, int32_t n);

void edgegru_update_int8(const edgegru_update_int8_t *p, const int8_t *z, const int8_t *n_gate, int8_t *h,
                         int32_t n);

/* out = MUL(a, b), elementwise: r * h for reset_before. */
void edgegru_mul_vector_int8(const edgegru_mul_int8_t *p, const int8_t *a, const int8_t *b, int8_t *out,
                             int32_t n);

#endif
