/* Test program for the front end: clips on stdin, per frame its q8.7 MFCC and int8 codes on stdout.
 *
 * Input, per clip: uint32 sample count S (little-endian), then S int16 samples; end of input ends the
 * program. Output, per frame t of 1 + (S - 480) / 320: int16 [10] MFCC, then int8 [10] codes. Frame 0
 * comes from edgegru_mfcc_q15_frame, the next ones from edgegru_mfcc_q15_hop fed one hop at a time
 * (the stream form); each of these calls is one instruction-count window. The MFCC are computed again
 * outside the windows by edgegru_mfcc_q15_frame_mfcc.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "edgegru_mfcc_q15.h"
#include "edgegru_rt.h"

#define MAX_SAMPLES 32000

static int16_t samples[MAX_SAMPLES];

int main(void)
{
    uint32_t count;
    int16_t overlap[EDGEGRU_MFCC_OVERLAP];
    int16_t mfcc[EDGEGRU_MFCC_COEFFICIENTS];
    int8_t codes[EDGEGRU_MFCC_COEFFICIENTS];
    uint32_t t;

    if (edgegru_mfcc_q15_init() != 0) {
        fprintf(stderr, "arm_mfcc_init_512_q15 failed\n");
        return 3;
    }
    while (fread(&count, sizeof count, 1, stdin) == 1) {
        if (count < EDGEGRU_MFCC_WINDOW || count > MAX_SAMPLES
            || fread(samples, sizeof(int16_t), count, stdin) != count) {
            fprintf(stderr, "bad clip of %lu samples\n", (unsigned long)count);
            return 4;
        }
        for (t = 0; t <= (count - EDGEGRU_MFCC_WINDOW) / EDGEGRU_MFCC_HOP; t++) {
            const int16_t *window = &samples[t * EDGEGRU_MFCC_HOP];
            if (t == 0) {
                edgegru_mark_begin();
                edgegru_mfcc_q15_frame(window, codes);
                edgegru_mark_end();
                memcpy(overlap, &window[EDGEGRU_MFCC_HOP], sizeof overlap);
            } else {
                edgegru_mark_begin();
                edgegru_mfcc_q15_hop(overlap, &window[EDGEGRU_MFCC_OVERLAP], codes);
                edgegru_mark_end();
            }
            edgegru_mfcc_q15_frame_mfcc(window, mfcc);
            fwrite(mfcc, sizeof(int16_t), EDGEGRU_MFCC_COEFFICIENTS, stdout);
            fwrite(codes, sizeof(int8_t), EDGEGRU_MFCC_COEFFICIENTS, stdout);
        }
    }
    fflush(stdout);
    return 0;
}
