/* EdgeGRU firmware runtime: what a test or benchmark program may call.
 *
 * The same program builds for the host (gcc/clang) and for the emulated
 * Cortex-M targets; on the host the markers are plain calls and the stack
 * functions return 0.
 */
#ifndef EDGEGRU_RT_H
#define EDGEGRU_RT_H

#include <stddef.h>

/* Instruction-count window markers. The QEMU plugin counts the guest
 * instructions executed from the first instruction of edgegru_mark_begin()
 * up to (not including) the first instruction of edgegru_mark_end(); each
 * begin/end pair gives one count, in order (one per step of a stream).
 * The window includes a fixed overhead of the marker's own return and the
 * call to edgegru_mark_end(), measured by an empty window. */
void edgegru_mark_begin(void);
void edgegru_mark_end(void);

/* Stack high-water: the startup paints the whole stack with
 * EDGEGRU_STACK_PAINT; edgegru_stack_paint() repaints the free part below the
 * caller (to measure one call), edgegru_stack_peak_bytes() scans for the
 * deepest overwritten word and returns the bytes used from the stack top. */
#define EDGEGRU_STACK_PAINT 0xC0FFEE5Au
void edgegru_stack_paint(void);
size_t edgegru_stack_peak_bytes(void);

#endif
