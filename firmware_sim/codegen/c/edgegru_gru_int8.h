/* EdgeGRU fused int8 kernels: one GRU layer step as two FULLY_CONNECTEDs and three elementwise passes.
 *
 * The generic kernels (edgegru_kernels.h) run the step graph one TFLite operator at a time.  These
 * compute the same integers (the golden model's `double` rounding, TFLite Micro's reference
 * arithmetic) with what the generator knows at build time:
 *
 * - Mat-vec: acc[r] = bias[r] + sum_c W[r][c] x[c] over raw int8 x, the input zero point folded into
 *   the bias by the generator.  Weight layout per path (edgegru_target.h):
 *     portable: row-major int8 [rows][cols];
 *     MVE: blocks of 4 rows; per block and per chunk of 16 columns (the last one cols % 16 wide), the
 *       4 rows' bytes of that chunk one after the other; rows % 4 last rows row-major.  The kernel
 *       reads the weights once, in order, through one pointer.  No padding.
 *     DSP: "row pairs" of int16 h[c] = 256 W[2k+1][c] + W[2k][c] (an odd final row pairs with zeros),
 *       in 32-bit words of two halfwords.  x is widened once per call to words of int16 pairs:
 *       (x[c], x[c+2]), (x[c+1], x[c+3]) per group of 4 columns, then (x[c], x[c+1]) for the tail
 *       (zero-padded).  Rows go in quads (two pairs) while 4 rows remain, then single pairs; per
 *       block and x word, one weight word per pair holding h at the x word's two columns.  A pair
 *       costs no more flash than its two int8 rows (plus one halfword when cols is odd).
 *       The words hold 2 x (|2 x| <= 256), so that the sums come out doubled, as the requantization
 *       takes them.  SMLAD(h, 2x) gives 2 (256 dot_odd + dot_even) and SMLAD(SXTB16(h), 2x) gives
 *       2 dot_even: four MACs per two SMLAD and one SXTB16.  The generator checks
 *       128 sum_c |W[odd][c]| < 2^22, so 512 dot_odd fits int32 and the difference is exact.
 * - Requantization of an int32 v to int8 with multiplier m in [2^30, 2^31), right shift e in [1, 22]
 *   and output zero point zp, for |v| < 2^30 (all checked by the generator): the spec's two roundings
 *   (SRDHM, then rounding divide by 2^e) and the zero point in one 64-bit multiply-add,
 *       q = floor((2 v m + 2^31 + 2^32 (nudge - [v < 0])) / 2^(32 + e)),  nudge = 2^(e-1) + zp 2^e,
 *   then saturation to [-128, 127].  An exact identity (nested floors with integer offsets; SRDHM
 *   rounds ties up, the divide ties away from zero, which is the -[v < 0]).  The high word,
 *   floor((2 v m + 2^31) / 2^32) + nudge - [v < 0], is below 2^30 + 129 * 2^22 < 2^31 in magnitude.
 *   The DSP path gets it in one SMMLAR(2 v, m, nudge - [v < 0]).
 *   The MVE path computes the same q as VQRDMULH(v, m) = floor((2 v m + 2^31) / 2^32) = t, then
 *   (t - [t < 0] + nudge) >> e (for e >= 1, [t < 0] may stand for [v < 0]: they differ only at t = 0,
 *   where both give zp).
 * - ADD and SUB of two int8 tensors: each input's rescale (q - zp) << 20 -> SRDHM -> divide is a
 *   function of the int8 q, read from a 256-entry int32 table built by the generator with the golden
 *   model's functions (SUB: the second table negated); the sum is requantized as above.
 * - LOGISTIC, TANH: the quantizer's 256-entry int8 tables.
 * The structs point at each table's entry for q = 0 (the array's index 128): they are indexed by q.
 *
 * Ranges: table entries |t| < 2^27 (|q - zp| <= 255, shifted by 20, times a multiplier <= 1/2), so a
 * sum of two is below 2^28; MUL products |(a - zp1)(b - zp2)| <= 255^2 < 2^16; FC accumulators below
 * 2^30 (the quantizer's bound, checked by the generator).
 */
#ifndef EDGEGRU_GRU_INT8_H
#define EDGEGRU_GRU_INT8_H

#include <stdint.h>

/* One requantization to int8 with constant parameters (above). */
typedef struct {
    int32_t multiplier; /* Q31 in [2^30, 2^31) */
    int32_t nudge;      /* 2^(e-1) + zp 2^e */
    int32_t exponent;   /* e: right shift in [1, 22] */
} edgegru_requant_t;

/* A FULLY_CONNECTED to int8: mat-vec, then one requantization per output channel (row). */
typedef struct {
    const void *weights;       /* the path's layout (above) */
    const int32_t *bias;       /* [rows] int32 at s_in * s_w[r], the input zero point folded in */
    const int32_t *requant;    /* [rows][3]: each row's multiplier, nudge and exponent (one load on Arm) */
    int32_t rows, cols;
} edgegru_fc_int8_t;

/* ADD (or SUB) of two int8 tensors through their input tables. */
typedef struct {
    const int32_t *table1; /* [-128, 127] scaled input 1 */
    const int32_t *table2; /* [-128, 127] scaled input 2 (negated for SUB) */
    edgegru_requant_t output;
} edgegru_add_int8_t;

/* MUL of two int8 tensors. */
typedef struct {
    int32_t offset1, offset2; /* minus the input zero points */
    edgegru_requant_t output;
} edgegru_mul_int8_t;

/* out = ACTIVATION(ADD(a, b)): the r and z gates, and n for reset_before. */
typedef struct {
    edgegru_add_int8_t add;
    const int8_t *activation; /* [-128, 127] LOGISTIC or TANH */
} edgegru_gate_int8_t;

/* n = TANH(ADD(xn, MUL(r, hn))): the reset_after candidate. */
typedef struct {
    edgegru_mul_int8_t reset;  /* r * hn */
    edgegru_add_int8_t add;    /* xn + r_hn */
    const int8_t *activation;  /* [-128, 127] TANH */
} edgegru_candidate_int8_t;

/* h = ADD(n, MUL(z, SUB(h, n))): the state update, in place. */
typedef struct {
    edgegru_add_int8_t sub;   /* h - n */
    edgegru_mul_int8_t mul;   /* z * (h - n) */
    edgegru_add_int8_t add;   /* n + z (h - n) */
} edgegru_update_int8_t;

/* The kernels: static inline, so that each generated model compiles its own copy with its shapes and
 * constants folded in. */
#include "edgegru_gru_int8_kernels.h"

#endif
