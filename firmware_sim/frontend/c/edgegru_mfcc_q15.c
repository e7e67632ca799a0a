/* EdgeGRU keyword-spotting front end: glue over CMSIS-DSP's arm_mfcc_q15 (see edgegru_mfcc_q15.h). */
#include "edgegru_mfcc_q15.h"

#include <string.h>

#include "arm_math.h"

static arm_mfcc_instance_q15 edgegru_mfcc_instance;
static q15_t edgegru_mfcc_input[EDGEGRU_MFCC_FFT_LENGTH]; /* the window, zero-padded; scaled in place */
static q31_t edgegru_mfcc_scratch[EDGEGRU_MFCC_FFT_LENGTH]; /* the FFT's 2 x 512 int16 output */

int edgegru_mfcc_q15_init(void)
{
    return (int)arm_mfcc_init_512_q15(&edgegru_mfcc_instance, EDGEGRU_MFCC_MEL_BANDS, EDGEGRU_MFCC_COEFFICIENTS,
                                      edgegru_mfcc_dct, edgegru_mfcc_filter_pos, edgegru_mfcc_filter_lengths,
                                      edgegru_mfcc_filter_coefs, edgegru_mfcc_window);
}

void edgegru_mfcc_q15_frame_mfcc(const int16_t *window, int16_t *mfcc)
{
    memcpy(edgegru_mfcc_input, window, EDGEGRU_MFCC_WINDOW * sizeof(int16_t));
    memset(&edgegru_mfcc_input[EDGEGRU_MFCC_WINDOW], 0,
           (EDGEGRU_MFCC_FFT_LENGTH - EDGEGRU_MFCC_WINDOW) * sizeof(int16_t));
    arm_mfcc_q15(&edgegru_mfcc_instance, edgegru_mfcc_input, mfcc, edgegru_mfcc_scratch);
}

void edgegru_mfcc_q15_to_int8(const int16_t *mfcc, int8_t *codes)
{
    int i;
    for (i = 0; i < EDGEGRU_MFCC_COEFFICIENTS; i++) {
        int32_t code = ((int32_t)mfcc[i] + (1 << (EDGEGRU_MFCC_CODE_SHIFT - 1))) >> EDGEGRU_MFCC_CODE_SHIFT;
        codes[i] = (int8_t)(code < -128 ? -128 : code > 127 ? 127 : code);
    }
}

void edgegru_mfcc_q15_frame(const int16_t *window, int8_t *codes)
{
    int16_t mfcc[EDGEGRU_MFCC_COEFFICIENTS];
    edgegru_mfcc_q15_frame_mfcc(window, mfcc);
    edgegru_mfcc_q15_to_int8(mfcc, codes);
}

void edgegru_mfcc_q15_hop(int16_t *overlap, const int16_t *hop, int8_t *codes)
{
    int16_t window[EDGEGRU_MFCC_WINDOW];
    memcpy(window, overlap, EDGEGRU_MFCC_OVERLAP * sizeof(int16_t));
    memcpy(&window[EDGEGRU_MFCC_OVERLAP], hop, EDGEGRU_MFCC_HOP * sizeof(int16_t));
    memcpy(overlap, &hop[EDGEGRU_MFCC_HOP - EDGEGRU_MFCC_OVERLAP], EDGEGRU_MFCC_OVERLAP * sizeof(int16_t));
    edgegru_mfcc_q15_frame(window, codes);
}
