/* EdgeGRU keyword-spotting front end on the device: CMSIS-DSP's q15 MFCC and the fixed integer step to
 * the GRU's int8 input, the same arithmetic as edgegru/data/mfcc_q15.py, bit for bit.
 *
 * Audio: 16 kHz int16. A window is 480 samples (30 ms); consecutive windows start 320 samples (20 ms)
 * apart and overlap by 160. Output per window: 10 MFCC, q8.7 int16 (1/128 nat per unit), and 10 int8
 * codes c = clamp((q + 8) >> 4, -128, 127) (1/8 nat per code, zero point 0). The tables and sizes come
 * from the generated edgegru_mfcc_q15_tables.h.
 */
#ifndef EDGEGRU_MFCC_Q15_H
#define EDGEGRU_MFCC_Q15_H

#include <stdint.h>

#include "edgegru_mfcc_q15_tables.h"

/* Prepare CMSIS-DSP's MFCC instance once; 0 on success, else CMSIS-DSP's arm_status. */
int edgegru_mfcc_q15_init(void);

/* One window (int16 [EDGEGRU_MFCC_WINDOW]) -> q8.7 MFCC (int16 [EDGEGRU_MFCC_COEFFICIENTS]). */
void edgegru_mfcc_q15_frame_mfcc(const int16_t *window, int16_t *mfcc);

/* The integer step: q8.7 MFCC -> int8 codes, (q + 2^(shift-1)) >> shift saturated to [-128, 127]. */
void edgegru_mfcc_q15_to_int8(const int16_t *mfcc, int8_t *codes);

/* One window -> the GRU's int8 input (int8 [EDGEGRU_MFCC_COEFFICIENTS]). */
void edgegru_mfcc_q15_frame(const int16_t *window, int8_t *codes);

/* Streaming: `overlap` holds the last EDGEGRU_MFCC_OVERLAP samples of the audio so far (initially the
 * samples 320..479 of the first window); a hop of EDGEGRU_MFCC_HOP new samples completes the next
 * window, gives its codes, and `overlap` is updated to the hop's last EDGEGRU_MFCC_OVERLAP samples. */
void edgegru_mfcc_q15_hop(int16_t *overlap, const int16_t *hop, int8_t *codes);

#endif
