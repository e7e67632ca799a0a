/* EdgeGRU firmware runtime (see edgegru_rt.h). Host and Cortex-M. */
#include "edgegru_rt.h"

#include <stdint.h>

/* The two markers must stay distinct functions at distinct addresses: noinline
 * keeps the calls, and different stores keep GCC's identical-code folding from
 * merging them. */
volatile uint32_t edgegru_marker_state;

__attribute__((noinline)) void edgegru_mark_begin(void) { edgegru_marker_state = 1u; }

__attribute__((noinline)) void edgegru_mark_end(void) { edgegru_marker_state = 2u; }

#if defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'

extern uint32_t __stack_limit[]; /* lowest stack word (linker script) */
extern uint32_t __stack_top[];   /* one past the highest stack word */

/* Keep a small gap below the caller's frame: this function's own frame. */
#define EDGEGRU_PAINT_GAP_WORDS 16u

__attribute__((noinline)) void edgegru_stack_paint(void)
{
    uint32_t *word = __stack_limit;
    uint32_t *below_sp;
    __asm volatile("mov %0, sp" : "=r"(below_sp));
    below_sp -= EDGEGRU_PAINT_GAP_WORDS;
    while (word < below_sp) {
        *word++ = EDGEGRU_STACK_PAINT;
    }
}

size_t edgegru_stack_peak_bytes(void)
{
    const uint32_t *word = __stack_limit;
    while (word < __stack_top && *word == EDGEGRU_STACK_PAINT) {
        word++;
    }
    return (size_t)((const char *)__stack_top - (const char *)word);
}

#else

void edgegru_stack_paint(void) {}

size_t edgegru_stack_peak_bytes(void) { return 0u; }

#endif
