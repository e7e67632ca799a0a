/* EdgeGRU integer kernels: see edgegru_kernels.h.  Each function names the golden-model function it
 * transcribes (edgegru/fixedpoint.py, edgegru/integer_ops.py); ranges of every int32 intermediate are
 * stated next to it. */
#include "edgegru_kernels.h"

#include "edgegru_arith.h"
#include "edgegru_target.h"
#if defined(EDGEGRU_USE_MVE)
#include <arm_mve.h>
#endif
#if defined(EDGEGRU_USE_DSP)
#include <arm_acle.h>
#endif

#define EDGEGRU_INT32_MAX 2147483647
#define EDGEGRU_INT32_MIN (-EDGEGRU_INT32_MAX - 1)

/* --- portable two's-complement helpers ---------------------------------------------------------- */

/* uint32 bit pattern -> int32 (wrap-around), without implementation-defined conversion. */
static int32_t wrap_int32(uint32_t u)
{
    return u <= 0x7FFFFFFFu ? (int32_t)u : (int32_t)(u - 0x80000000u) - EDGEGRU_INT32_MAX - 1;
}

/* Arithmetic (flooring) right shift of an int64, n in [0, 63]. */
static int64_t asr64(int64_t x, int32_t n)
{
    return x >= 0 ? x >> n : -1 - ((-1 - x) >> n);
}

/* clamp(scaled + offset, -128, 127) without overflowing: offset in [-128, 127]. */
static int8_t offset_saturate_int8(int32_t scaled, int32_t offset)
{
    const int32_t low = -128 - offset, high = 127 - offset;
    return (int8_t)((scaled < low ? low : scaled > high ? high : scaled) + offset);
}

/* clamp(scaled + offset, -32768, 32767) without overflowing: offset in [-32768, 32767]. */
static int16_t offset_saturate_int16(int32_t scaled, int32_t offset)
{
    const int32_t low = -32768 - offset, high = 32767 - offset;
    return (int16_t)((scaled < low ? low : scaled > high ? high : scaled) + offset);
}

/* --- fixed-point primitives --------------------------------------------------------------------- */

int32_t edgegru_srdhm(int32_t a, int32_t b)
{
    /* fixedpoint.saturating_rounding_doubling_high_mul.  |a * b| <= 2^62: the nudged product fits int64;
     * C division truncates toward zero, as the spec's. */
    int64_t product;
    if (a == EDGEGRU_INT32_MIN && b == EDGEGRU_INT32_MIN) {
        return EDGEGRU_INT32_MAX;
    }
    product = (int64_t)a * (int64_t)b;
    product += product >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)(product / ((int64_t)1 << 31)); /* in [-2^31 + 1, 2^31 - 1] */
}

int32_t edgegru_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    /* fixedpoint.rounding_divide_by_pot: floor(x / 2^e) plus 1 when the remainder is past half (ties
     * away from zero).  mask <= 2^31 - 1; floor(x / 2^e) + 1 cannot overflow for e >= 1, and for e = 0
     * the remainder is 0. */
    const int32_t mask = (int32_t)(((uint32_t)1 << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return edgegru_floor_shift(x, exponent) + (remainder > threshold ? 1 : 0);
}

int32_t edgegru_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier, int32_t shift)
{
    /* fixedpoint.multiply_by_quantized_multiplier(rounding="double").  x << left wraps like the target's
     * int32 (the golden model's wrap_int32). */
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return edgegru_rounding_divide_by_pot(edgegru_srdhm(wrap_int32((uint32_t)x << left), multiplier), right);
}

int32_t edgegru_multiply_by_q15_multiplier(int64_t x, int32_t multiplier_q15, int32_t shift)
{
    /* fixedpoint.multiply_by_q15_multiplier: wrap_int32((x * multiplier_q15 + 2^(total_shift - 1)) >> total_shift),
     * total_shift = 15 - shift.  The multiplier is the prepared FullyConnectedParams.output_multiplier_q15
     * (fixedpoint.q15_multiplier), not reduced here.  Ranges: |x| < 2^47 (the FULLY_CONNECTED kernel passes
     * its int32 accumulator, |x| < 2^31), multiplier_q15 in [0, 2^15 - 1] and shift in [-31, 14] (both
     * checked by the generator), so total_shift in [1, 46]: |x * multiplier_q15| < 2^62, the rounding
     * term is at most 2^45 and their sum fits int64; the floored shift is below 2^61 in magnitude.  Its
     * conversion to int32 wraps on purpose: the golden model's wrap_int32 (TFLite's int32 cast) does;
     * the caller then saturates to int16. */
    const int32_t total_shift = 15 - shift;
    const int64_t rounded = asr64(x * multiplier_q15 + ((int64_t)1 << (total_shift - 1)), total_shift);
    return wrap_int32((uint32_t)(uint64_t)rounded);
}

/* --- dot products --------------------------------------------------------------------------------
 * Every path computes the same exact integer: the sum is accumulated in a different order, but each
 * partial sum is the accumulator of some valid input (inputs zeroed), which the quantizer bounds
 * below 2^31 (meta["max_accumulator_bits"] <= 32, refused otherwise by the generator). */

#if defined(EDGEGRU_USE_MVE)

int32_t edgegru_dot_int8(int32_t acc, const int8_t *x, const int8_t *w, int32_t n)
{
    /* 16 lanes per iteration; tail-predicated loads read zeros past n. */
    while (n > 0) {
        const mve_pred16_t p = vctp8q((uint32_t)n);
        acc = vmladavaq_s8(acc, vldrbq_z_s8(x, p), vldrbq_z_s8(w, p));
        x += 16;
        w += 16;
        n -= 16;
    }
    return acc;
}

int32_t edgegru_dot_int16x8(int32_t acc, const int16_t *x, const int8_t *w, int32_t n)
{
    /* 8 lanes: int8 weights widened to int16 by the load. */
    while (n > 0) {
        const mve_pred16_t p = vctp16q((uint32_t)n);
        acc = vmladavaq_s16(acc, vldrhq_z_s16(x, p), vldrbq_z_s16(w, p));
        x += 8;
        w += 8;
        n -= 8;
    }
    return acc;
}

#elif defined(EDGEGRU_USE_DSP)

/* Rotate right by 8: SXTB16 of it takes bytes {1, 3}; compilers fold it into SXTB16's ROR. */
static uint32_t ror8(uint32_t v)
{
    return (v >> 8) | (v << 24);
}

int32_t edgegru_dot_int8(int32_t acc, const int8_t *x, const int8_t *w, int32_t n)
{
    /* 4 pairs per iteration: SXTB16 splits bytes {0, 2} and {1, 3} into signed halfwords, SMLAD
     * multiplies and adds both halfword pairs. */
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t xv = edgegru_load_u32(x + i), wv = edgegru_load_u32(w + i);
        acc = __smlad(__sxtb16(xv), __sxtb16(wv), acc);
        acc = __smlad(__sxtb16(ror8(xv)), __sxtb16(ror8(wv)), acc);
    }
    for (; i < n; ++i) {
        acc += (int32_t)x[i] * (int32_t)w[i];
    }
    return acc;
}

int32_t edgegru_dot_int16x8(int32_t acc, const int16_t *x, const int8_t *w, int32_t n)
{
    /* Weights {0, 2} and {1, 3} from SXTB16; inputs repacked into the same halfword pairs. */
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t x01 = edgegru_load_u32(x + i), x23 = edgegru_load_u32(x + i + 2), wv = edgegru_load_u32(w + i);
        const uint32_t x02 = (x01 & 0xFFFFu) | (x23 << 16);
        const uint32_t x13 = (x01 >> 16) | (x23 & 0xFFFF0000u);
        acc = __smlad(x02, __sxtb16(wv), acc);
        acc = __smlad(x13, __sxtb16(ror8(wv)), acc);
    }
    for (; i < n; ++i) {
        acc += (int32_t)x[i] * (int32_t)w[i];
    }
    return acc;
}

#else

int32_t edgegru_dot_int8(int32_t acc, const int8_t *x, const int8_t *w, int32_t n)
{
    /* each product |x w| <= 128 * 127 < 2^14; acc in int32 by the accumulator bound. */
    int32_t i;
    for (i = 0; i < n; ++i) {
        acc += (int32_t)x[i] * (int32_t)w[i];
    }
    return acc;
}

int32_t edgegru_dot_int16x8(int32_t acc, const int16_t *x, const int8_t *w, int32_t n)
{
    /* each product |x w| <= 32768 * 127 < 2^22; acc in int32 by the accumulator bound. */
    int32_t i;
    for (i = 0; i < n; ++i) {
        acc += (int32_t)x[i] * (int32_t)w[i];
    }
    return acc;
}

#endif

/* --- FULLY_CONNECTED ---------------------------------------------------------------------------- */

void edgegru_fully_connected_int8(const edgegru_fc_params_t *p, const int8_t *x, int8_t *y)
{
    /* integer_ops.fully_connected_int8: acc = bias'[c] + sum_i x[i] W[c][i] = sum_i (x[i] - zp) W[c][i]
     * + bias[c], |acc| < 2^31 (accumulator bound); requantized per channel; + output zp; saturated. */
    int32_t c;
    const int8_t *row = p->weights;
    for (c = 0; c < p->rows; ++c, row += p->cols) {
        const int32_t acc = edgegru_dot_int8(p->bias[c], x, row, p->cols);
        const int32_t scaled = edgegru_multiply_by_quantized_multiplier(acc, p->multiplier[c], p->shift[c]);
        y[c] = offset_saturate_int8(scaled, p->output_offset);
    }
}

void edgegru_fully_connected_int16x8(const edgegru_fc_params_t *p, const int16_t *x, int16_t *y)
{
    /* integer_ops.fully_connected_int16x8 (rounding "double"): acc = bias[c] + sum_i x[i] W[c][i],
     * |acc| < 2^31 (accumulator bound, so the spec's int64 accumulator never exceeds int32); widened to
     * int64 and requantized with the prepared Q15 multiplier; + output zp (0); saturated. */
    int32_t c;
    const int8_t *row = p->weights;
    for (c = 0; c < p->rows; ++c, row += p->cols) {
        const int32_t acc = edgegru_dot_int16x8(p->bias[c], x, row, p->cols);
        const int32_t scaled = edgegru_multiply_by_q15_multiplier(acc, p->multiplier_q15[c], p->shift[c]);
        y[c] = offset_saturate_int16(scaled, p->output_offset);
    }
}

/* --- ADD, SUB ----------------------------------------------------------------------------------- */

static int32_t add_or_sub_raw(const edgegru_add_params_t *p, int32_t a, int32_t b, int32_t sign)
{
    /* integer_ops._add_or_sub.  int8: |a + offset| <= 255, shifted by 20: |.| < 2^28.  int16: |a| <= 2^15,
     * shifted by 15: |.| <= 2^30.  Input multipliers are <= 1/2 (s_i / (2 max(s1, s2))), so each scaled
     * input is at most half its shifted value and |raw| <= 2^30. */
    const int32_t shifted1 = (a + p->input1_offset) * ((int32_t)1 << p->left_shift);
    const int32_t shifted2 = (b + p->input2_offset) * ((int32_t)1 << p->left_shift);
    const int32_t scaled1 = edgegru_multiply_by_quantized_multiplier(shifted1, p->input1_multiplier, p->input1_shift);
    const int32_t scaled2 = edgegru_multiply_by_quantized_multiplier(shifted2, p->input2_multiplier, p->input2_shift);
    const int32_t raw = sign > 0 ? scaled1 + scaled2 : scaled1 - scaled2;
    return edgegru_multiply_by_quantized_multiplier(raw, p->output_multiplier, p->output_shift);
}

void edgegru_add_int8(const edgegru_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = offset_saturate_int8(add_or_sub_raw(p, a[i], b[i], 1), p->output_offset);
    }
}

void edgegru_sub_int8(const edgegru_add_params_t *p, const int8_t *a, const int8_t *b, int8_t *out, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = offset_saturate_int8(add_or_sub_raw(p, a[i], b[i], -1), p->output_offset);
    }
}

void edgegru_add_int16(const edgegru_add_params_t *p, const int16_t *a, const int16_t *b, int16_t *out, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = offset_saturate_int16(add_or_sub_raw(p, a[i], b[i], 1), p->output_offset);
    }
}

void edgegru_sub_int16(const edgegru_add_params_t *p, const int16_t *a, const int16_t *b, int16_t *out, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = offset_saturate_int16(add_or_sub_raw(p, a[i], b[i], -1), p->output_offset);
    }
}

/* --- MUL ---------------------------------------------------------------------------------------- */

void edgegru_mul_int8(const edgegru_mul_params_t *p, const int8_t *a, const int8_t *b, int8_t *out, int32_t n)
{
    /* integer_ops.mul_int8: |(a - zp1)(b - zp2)| <= 255 * 255 < 2^16. */
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t product = (a[i] + p->input1_offset) * (b[i] + p->input2_offset);
        out[i] = offset_saturate_int8(edgegru_multiply_by_quantized_multiplier(product, p->output_multiplier, p->output_shift),
                               p->output_offset);
    }
}

void edgegru_mul_int16(const edgegru_mul_params_t *p, const int16_t *a, const int16_t *b, int16_t *out, int32_t n)
{
    /* integer_ops.mul_int16: zero points 0, |a b| <= 2^30. */
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t product = (a[i] + p->input1_offset) * (b[i] + p->input2_offset);
        out[i] = offset_saturate_int16(edgegru_multiply_by_quantized_multiplier(product, p->output_multiplier, p->output_shift),
                                p->output_offset);
    }
}

/* --- LOGISTIC, TANH ----------------------------------------------------------------------------- */

void edgegru_lookup_int8(const int8_t table[256], const int8_t *x, int8_t *out, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = table[x[i] + 128];
    }
}

/* sigmoid_table_uint16[256]: integer_ops.SIGMOID_TABLE_UINT16, the table TFLite's int16
 * LOGISTIC/TANH interpolate in, written by firmware_sim/codegen/kernel_library.py (one source of truth). */
#include "edgegru_sigmoid_table.h"

static int32_t rescale_int16_input(const edgegru_int16_activation_params_t *p, int16_t x)
{
    /* integer_ops._rescaled_int16_input, with the effective multiplier and shift the quantizer prepared
     * (Int16ActivationParams).  input_multiplier in [1, 32767] and left_shift in [0, 31] (checked by the
     * generator), |x| <= 2^15: |x * multiplier| < 2^30 and adding the rounding term (<= 2^30) stays
     * below 2^31. */
    const int32_t left_shift = p->input_left_shift;
    return edgegru_floor_shift(x * p->input_multiplier + (left_shift > 0 ? (int32_t)1 << (left_shift - 1) : 0),
                               left_shift);
}

/* integer_ops._interpolate: table value at magnitude / 2^fraction_bits in Q0.(16 + fraction_bits),
 * or `outside` past the table; at most 65535 << 9 < 2^25. */
static int32_t interpolate(int32_t magnitude, int32_t fraction_bits, int32_t outside)
{
    const int32_t index = magnitude >> fraction_bits;
    int32_t low, high;
    if (index >= 255) {
        return outside;
    }
    low = sigmoid_table_uint16[index];
    high = sigmoid_table_uint16[index + 1];
    return low * ((int32_t)1 << fraction_bits) + (magnitude & (((int32_t)1 << fraction_bits) - 1)) * (high - low);
}

void edgegru_logistic_int16(const edgegru_int16_activation_params_t *p, const int16_t *x, int16_t *out, int32_t n)
{
    /* integer_ops.logistic_int16: 9-bit interpolation; result in [0, 2^25 + 2^9], >> 10 in [0, 32767]. */
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t value = rescale_int16_input(p, x[i]);
        const int32_t result = interpolate(value >= 0 ? value : -value, 9, 0x7FFF << 10);
        out[i] = (int16_t)((value >= 0 ? result + (1 << 9) : (1 << 25) - result + (1 << 9) - 1) >> 10);
    }
}

void edgegru_tanh_int16(const edgegru_int16_activation_params_t *p, const int16_t *x, int16_t *out, int32_t n)
{
    /* integer_ops.tanh_int16: 8-bit interpolation of sigmoid(2v); result in [2^23, 2^24), the signed
     * value in (-2^23, 2^23), floored >> 8 into [-32767, 32767]. */
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t value = rescale_int16_input(p, x[i]);
        const int32_t result = interpolate(value >= 0 ? value : -value, 8, 0xFFFF << 8);
        out[i] = (int16_t)edgegru_floor_shift(value >= 0 ? result - (1 << 23) + (1 << 7) : -result + (1 << 23) + (1 << 7) - 1, 8);
    }
}
