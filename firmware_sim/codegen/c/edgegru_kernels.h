/* EdgeGRU integer kernels: the TFLite integer operators one GRU step is made of, in C99.
 *
 * This is the C transcription of edgegru/fixedpoint.py and edgegru/integer_ops.py (the golden model's
 * `double` rounding profile, as TFLite Micro's reference kernels compute it), bit-exact with them.
 * The generated model (firmware_sim/codegen/generic_step.py) holds every parameter as a constant and calls these.
 *
 * Conventions:
 * - A real value v is stored as q with v = s * (q - zp).  Multipliers are Q0.31 integers in
 *   [2^30, 2^31) (or 0) with a power-of-two shift: real = multiplier * 2^(shift - 31); the 16x8
 *   FULLY_CONNECTED's are Q0.15 in [0, 32767] (real = multiplier_q15 * 2^(shift - 15)), prepared
 *   by the quantizer (FullyConnectedParams.output_multiplier_q15).
 * - `offset` fields are the negated input zero points and the output zero point, as in TFLite.
 * - int8 scheme: activations int8 (any zero point), weights int8 symmetric [-127, 127], bias int32 with
 *   the input zero point folded in by the generator.  int16x8 scheme: activations int16 (zero point 0),
 *   weights int8, bias at scale s_in * s_w[c] held in int32 (the quantizer proves |accumulator| < 2^31).
 * - No allocation, no floating point; only <stdint.h> and <string.h>.  Signed right shifts and
 *   int32 wrap-around are written out portably (no implementation-defined behaviour).
 *
 * The dot products are behind edgegru_dot_int8 / edgegru_dot_int16x8 so target-specific paths
 * (Arm DSP extension, MVE) replace only them; all paths give identical integers.
 */
#ifndef EDGEGRU_KERNELS_H
#define EDGEGRU_KERNELS_H

#include <stdint.h>

/* --- fixed-point primitives (fixedpoint.py) ---------------------------------------------------- */

/* round(a * b / 2^31), ties toward +inf; INT32_MIN * INT32_MIN saturates to INT32_MAX. */
int32_t edgegru_srdhm(int32_t a, int32_t b);

/* x / 2^exponent rounded to nearest, ties away from zero; exponent in [0, 31]. */
int32_t edgegru_rounding_divide_by_pot(int32_t x, int32_t exponent);

/* `double` requantization of an int32: x << max(shift, 0) (wrapping), SRDHM by multiplier, rounding
 * divide by 2^max(-shift, 0).  shift in [-31, 30]. */
int32_t edgegru_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift);

/* 16x8 requantization of an int64 accumulator (|x| < 2^47) by multiplier_q15 * 2^(shift - 15): one 64-bit
 * multiply, add half, arithmetic shift by 15 - shift; the result wraps to int32.  multiplier_q15 in
 * [0, 32767] is the Q31 multiplier reduced once, at quantization time (fixedpoint.q15_multiplier);
 * shift in [-31, 14]. */
int32_t edgegru_multiply_by_q15_multiplier(int64_t x, int32_t multiplier_q15, int32_t shift);

/* --- FULLY_CONNECTED ---------------------------------------------------------------------------- */

typedef struct {
    const int8_t *weights;     /* [rows][cols] row-major, int8 symmetric, zp 0 */
    const int32_t *bias;       /* [rows]; int8: bias[c] - zp_in * sum_i W[c][i] (folded) */
    const int32_t *multiplier; /* [rows] Q31, per output channel; int8 kernel only (null for int16x8) */
    /* [rows] Q15 in [0, 32767], per output channel: FullyConnectedParams.output_multiplier_q15;
     * int16x8 kernel only (null for int8) */
    const int16_t *multiplier_q15;
    const int32_t *shift;      /* [rows]; int8 in [-31, 30], int16x8 in [-31, 14] */
    int32_t output_offset;     /* output zero point */
    int32_t rows;              /* output channels */
    int32_t cols;              /* input features */
} edgegru_fc_params_t;

/* acc + sum_i x[i] * w[i] over n int8 pairs.  The caller guarantees that every partial sum stays in
 * int32 (the quantizer's accumulator bound: each partial sum equals the accumulator of a valid input). */
int32_t edgegru_dot_int8(int32_t acc, const int8_t *x, const int8_t *w, int32_t n);

/* acc + sum_i x[i] * w[i], int16 x and int8 w; same int32 guarantee from the accumulator bound. */
int32_t edgegru_dot_int16x8(int32_t acc, const int16_t *x, const int8_t *w, int32_t n);

/* int8 x [cols] -> int8 y [rows]. */
void edgegru_fully_connected_int8(const edgegru_fc_params_t *p, const int8_t *x, int8_t *y);

/* int16 x [cols] (zp 0) -> int16 y [rows]; int32 accumulator widened to int64 and requantized with the
 * Q15 multiplier (edgegru_multiply_by_q15_multiplier). */
void edgegru_fully_connected_int16x8(const edgegru_fc_params_t *p, const int16_t *x, int16_t *y);

/* --- ADD, SUB ----------------------------------------------------------------------------------- */

typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t left_shift; /* 20 (int8) or 15 (int16) */
    int32_t input1_multiplier, input1_shift;
    int32_t input2_multiplier, input2_shift;
    int32_t output_multiplier, output_shift;
} edgegru_add_params_t;

void edgegru_add_int8(const edgegru_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out, int32_t n);
void edgegru_sub_int8(const edgegru_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out, int32_t n);
void edgegru_add_int16(const edgegru_add_params_t *p, const int16_t *a, const int16_t *b, int16_t *out, int32_t n);
void edgegru_sub_int16(const edgegru_add_params_t *p, const int16_t *a, const int16_t *b, int16_t *out, int32_t n);

/* --- MUL ---------------------------------------------------------------------------------------- */

typedef struct {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t output_multiplier, output_shift;
} edgegru_mul_params_t;

void edgegru_mul_int8(const edgegru_mul_params_t *p, const int8_t *a, const int8_t *b, int8_t *out, int32_t n);
void edgegru_mul_int16(const edgegru_mul_params_t *p, const int16_t *a, const int16_t *b, int16_t *out, int32_t n);

/* --- LOGISTIC, TANH ----------------------------------------------------------------------------- */

/* int8: out[i] = table[x[i] + 128] (the correctly rounded function, built at quantization time). */
void edgegru_lookup_int8(const int8_t table[256], const int8_t *x, int8_t *out, int32_t n);

/* int16: the input is rescaled to units of 1/(3 * 4096) by (x * input_multiplier + round) >> left_shift,
 * round = 2^(left_shift - 1) (0 for left_shift 0), then interpolated in the sigmoid table.  Both are the
 * effective values the quantizer prepared (Int16ActivationParams; the power-of-two input scale 2^-12
 * comes as 3 and 0): input_multiplier in [1, 32767], left_shift in [0, 31] (checked by the generator). */
typedef struct {
    int32_t input_multiplier;
    int32_t input_left_shift;
} edgegru_int16_activation_params_t;

/* Output scale 1/32768, zp 0. */
void edgegru_logistic_int16(const edgegru_int16_activation_params_t *p, const int16_t *x, int16_t *out, int32_t n);
void edgegru_tanh_int16(const edgegru_int16_activation_params_t *p, const int16_t *x, int16_t *out, int32_t n);

#endif
