/* EdgeGRU kernel path, chosen at compile time from the target's feature macros:
 *
 *   EDGEGRU_USE_MVE  Cortex-M55 and other Armv8.1-M cores with integer Helium (arm_mve.h);
 *   EDGEGRU_USE_DSP  cores with the DSP extension: Cortex-M4, M7, M33 (arm_acle.h, SMLAD/SXTB16/SSAT);
 *   neither          the portable C99 path (also forced on any core by defining EDGEGRU_PORTABLE).
 *
 * Every path computes the same integers.  The generated model reads this header too: on the DSP path
 * its int8 weights are laid out in row pairs (see edgegru_gru_int8.h).
 */
#ifndef EDGEGRU_TARGET_H
#define EDGEGRU_TARGET_H

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && !defined(EDGEGRU_PORTABLE)
#define EDGEGRU_USE_MVE 1
#elif defined(__ARM_FEATURE_DSP) && !defined(EDGEGRU_PORTABLE)
#define EDGEGRU_USE_DSP 1
#endif

#endif
