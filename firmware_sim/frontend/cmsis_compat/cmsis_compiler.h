/* The part of CMSIS-Core's cmsis_compiler.h that CMSIS-DSP's sources use, for GCC on Cortex-M.
 *
 * The cmsisdsp source distribution on PyPI has CMSIS-DSP but not CMSIS-Core; its own (host) build
 * defines __GNUC_PYTHON__ instead, which also switches off the DSP-extension code. For Cortex-M we
 * keep CMSIS-DSP's Cortex-M code paths and give them these definitions, written from the Armv7-M /
 * Armv8.1-M architecture manuals and GCC's ACLE header (arm_acle.h), not from CMSIS-Core.
 */
#ifndef EDGEGRU_CMSIS_COMPILER_H
#define EDGEGRU_CMSIS_COMPILER_H

#include <stdint.h>
#if defined(__ARM_FEATURE_SIMD32) || defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

#define __ASM __asm
#define __INLINE inline
#define __STATIC_INLINE static inline
#define __STATIC_FORCEINLINE static inline __attribute__((always_inline))
#define __ALIGNED(x) __attribute__((aligned(x)))
#define __WEAK __attribute__((weak))
#define __PACKED __attribute__((packed, aligned(1)))
#define __RESTRICT __restrict

/* Count leading zeros, 32 for 0 (the CLZ instruction). */
__STATIC_FORCEINLINE uint8_t __CLZ(uint32_t value) { return value == 0u ? 32u : (uint8_t)__builtin_clz(value); }

/* Signed / unsigned saturation to `bits` bits (SSAT / USAT); `bits` is a constant at every call. */
#define __SSAT(value, bits) __ssat((value), (bits))
#define __USAT(value, bits) __usat((value), (bits))

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1 /* as CMSIS-DSP sets ARM_MATH_DSP */
/* The DSP extension's 16-bit SIMD and multiply-accumulate instructions (ACLE names). */
#define __QADD8(a, b) ((uint32_t)__qadd8((int8x4_t)(a), (int8x4_t)(b)))
#define __QSUB8(a, b) ((uint32_t)__qsub8((int8x4_t)(a), (int8x4_t)(b)))
#define __QADD16(a, b) ((uint32_t)__qadd16((int16x2_t)(a), (int16x2_t)(b)))
#define __QSUB16(a, b) ((uint32_t)__qsub16((int16x2_t)(a), (int16x2_t)(b)))
#define __SHADD16(a, b) ((uint32_t)__shadd16((int16x2_t)(a), (int16x2_t)(b)))
#define __SHSUB16(a, b) ((uint32_t)__shsub16((int16x2_t)(a), (int16x2_t)(b)))
#define __QASX(a, b) ((uint32_t)__qasx((int16x2_t)(a), (int16x2_t)(b)))
#define __QSAX(a, b) ((uint32_t)__qsax((int16x2_t)(a), (int16x2_t)(b)))
#define __SHASX(a, b) ((uint32_t)__shasx((int16x2_t)(a), (int16x2_t)(b)))
#define __SHSAX(a, b) ((uint32_t)__shsax((int16x2_t)(a), (int16x2_t)(b)))
#define __SMUAD(a, b) ((uint32_t)__smuad((int16x2_t)(a), (int16x2_t)(b)))
#define __SMUADX(a, b) ((uint32_t)__smuadx((int16x2_t)(a), (int16x2_t)(b)))
#define __SMUSD(a, b) ((uint32_t)__smusd((int16x2_t)(a), (int16x2_t)(b)))
#define __SMUSDX(a, b) ((uint32_t)__smusdx((int16x2_t)(a), (int16x2_t)(b)))
#define __SMLAD(a, b, c) ((uint32_t)__smlad((int16x2_t)(a), (int16x2_t)(b), (int32_t)(c)))
#define __SMLADX(a, b, c) ((uint32_t)__smladx((int16x2_t)(a), (int16x2_t)(b), (int32_t)(c)))
#define __SMLSDX(a, b, c) ((uint32_t)__smlsdx((int16x2_t)(a), (int16x2_t)(b), (int32_t)(c)))
#define __SMLALD(a, b, c) ((uint64_t)__smlald((int16x2_t)(a), (int16x2_t)(b), (int64_t)(c)))
#define __SMLALDX(a, b, c) ((uint64_t)__smlaldx((int16x2_t)(a), (int16x2_t)(b), (int64_t)(c)))
#define __SXTB16(a) ((uint32_t)__sxtb16((int8x4_t)(a)))
#define __QADD(a, b) __qadd((a), (b))
#define __QSUB(a, b) __qsub((a), (b))
/* PKHBT / PKHTB: pack the bottom half of one word with the (shifted) other half of another. */
#define __PKHBT(a, b, shift) ((((uint32_t)(a)) & 0x0000FFFFu) | ((((uint32_t)(b)) << (shift)) & 0xFFFF0000u))
#define __PKHTB(a, b, shift) ((((uint32_t)(a)) & 0xFFFF0000u) | ((((uint32_t)(b)) >> (shift)) & 0x0000FFFFu))
__STATIC_FORCEINLINE uint32_t __ROR(uint32_t value, uint32_t shift)
{
    shift %= 32u;
    return shift == 0u ? value : (value >> shift) | (value << (32u - shift));
}
/* SMMLA: the top word of a 32 x 32 product, plus an accumulator. */
__STATIC_FORCEINLINE int32_t __SMMLA(int32_t a, int32_t b, int32_t c)
{
    return c + (int32_t)(((int64_t)a * b) >> 32);
}
#endif

#endif
