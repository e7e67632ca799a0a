/* EdgeGRU startup for the emulated Cortex-M targets (M4, M7, M33, M55).
 *
 * Vector table (16 system entries, no external interrupts are used) and a
 * Reset_Handler that paints the stack, copies .data, zeroes .bss, enables the
 * FPU/MVE coprocessors when the core has them, enables the configurable
 * faults, opens the semihosting stdio and runs exit(main()).
 *
 * A fault ends the program with a distinct exit code per kind; the codes are
 * passed as -DEDGEGRU_EXIT_* by firmware_sim/device/build.py from firmware_sim/device/faults.py
 * (their one definition). Before exiting the handler writes one line
 * "edgegru-fault: <kind> CFSR=... HFSR=... MMFAR=... BFAR=..." to stderr.
 * After main() returns, "edgegru-stack-peak: <bytes>" goes to stderr.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "edgegru_rt.h"

#if !defined(EDGEGRU_EXIT_HARDFAULT) || !defined(EDGEGRU_EXIT_MEMMANAGE) || !defined(EDGEGRU_EXIT_BUSFAULT) || \
    !defined(EDGEGRU_EXIT_USAGEFAULT) || !defined(EDGEGRU_EXIT_SECUREFAULT) || !defined(EDGEGRU_EXIT_UNEXPECTEDEXCEPTION)
#error "build with firmware_sim.device.build, which defines the EDGEGRU_EXIT_* fault exit codes"
#endif

/* System Control Block registers (ARMv7-M / ARMv8-M, same addresses). */
#define SCB_CCR (*(volatile uint32_t *)0xE000ED14u)
#define SCB_SHCSR (*(volatile uint32_t *)0xE000ED24u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)

#define CCR_DIV_0_TRP (1u << 4)
#define SHCSR_FAULTS_ENABLE ((1u << 16) | (1u << 17) | (1u << 18)) /* MemManage, BusFault, UsageFault */
#define SHCSR_SECUREFAULT_ENABLE (1u << 19)
#define CPACR_CP10_CP11_FULL (0xFu << 20) /* FPU and MVE */

extern uint32_t __stack_top[], __stack_limit[];
extern uint32_t __data_start__[], __data_end__[], __data_load__[];
extern uint32_t __bss_start__[], __bss_end__[];

extern int main(void);
extern void initialise_monitor_handles(void);

void Reset_Handler(void);
void HardFault_Handler(void);
void MemManage_Handler(void);
void BusFault_Handler(void);
void UsageFault_Handler(void);
void SecureFault_Handler(void);
void Unexpected_Handler(void);

/* Entry 0 is the initial stack pointer, the others are handlers: a union keeps
 * the table free of object/function pointer casts (ISO C). */
typedef union {
    uint32_t *stack_top;
    void (*handler)(void);
} vector_entry;

__attribute__((used, section(".isr_vector"))) const vector_entry edgegru_vectors[16] = {
    {.stack_top = __stack_top},
    {.handler = Reset_Handler},
    {.handler = Unexpected_Handler}, /* NMI */
    {.handler = HardFault_Handler},
    {.handler = MemManage_Handler},
    {.handler = BusFault_Handler},
    {.handler = UsageFault_Handler},
    {.handler = SecureFault_Handler}, /* ARMv8-M only; reserved on ARMv7-M */
    {.handler = 0},
    {.handler = 0},
    {.handler = 0},
    {.handler = Unexpected_Handler}, /* SVCall */
    {.handler = Unexpected_Handler}, /* DebugMonitor */
    {.handler = 0},
    {.handler = Unexpected_Handler}, /* PendSV */
    {.handler = Unexpected_Handler}, /* SysTick */
};

static void enable_coprocessors_and_faults(void)
{
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    SCB_CPACR |= CPACR_CP10_CP11_FULL;
#endif
    SCB_SHCSR |= SHCSR_FAULTS_ENABLE;
    SCB_CCR |= CCR_DIV_0_TRP;
#if __ARM_ARCH >= 8
    SCB_SHCSR |= SHCSR_SECUREFAULT_ENABLE;
    /* A stack overflow becomes a UsageFault (STKOF) instead of silent corruption. */
    __asm volatile("msr msplim, %0" : : "r"(__stack_limit));
#endif
    __asm volatile("dsb\n\tisb" : : : "memory");
}

void Reset_Handler(void)
{
    uint32_t *dst;
    const uint32_t *src;

    edgegru_stack_paint();
    for (dst = __data_start__, src = __data_load__; dst < __data_end__;) {
        *dst++ = *src++;
    }
    for (dst = __bss_start__; dst < __bss_end__;) {
        *dst++ = 0u;
    }
    enable_coprocessors_and_faults();
    initialise_monitor_handles();

    {
        int status = main();
        fprintf(stderr, "edgegru-stack-peak: %lu\n", (unsigned long)edgegru_stack_peak_bytes());
        exit(status);
    }
}

/* Fault handlers run on their own stack, so that a stack overflow can still be reported (ARMv8-M:
 * MSPLIM turns it into a UsageFault; ARMv7-M has no limit, the overflow corrupts .bss/.data first
 * and whatever fault follows is reported). Each handler is naked: it loads its fault index into r0
 * and jumps to edgegru_fault_entry, which moves SP (and MSPLIM) to edgegru_fault_stack and jumps on
 * to edgegru_fault_report(). */
#define FAULT_STACK_BYTES 1024
#define EDGEGRU_STR_(x) #x
#define EDGEGRU_STR(x) EDGEGRU_STR_(x)
__attribute__((used, aligned(8))) uint32_t edgegru_fault_stack[FAULT_STACK_BYTES / 4];

static const struct {
    const char *kind;
    int exit_code;
} faults[] = {
    {"HardFault", EDGEGRU_EXIT_HARDFAULT},
    {"MemManage", EDGEGRU_EXIT_MEMMANAGE},
    {"BusFault", EDGEGRU_EXIT_BUSFAULT},
    {"UsageFault", EDGEGRU_EXIT_USAGEFAULT},
    {"SecureFault", EDGEGRU_EXIT_SECUREFAULT},
    {"UnexpectedException", EDGEGRU_EXIT_UNEXPECTEDEXCEPTION},
};

__attribute__((used, noreturn)) void edgegru_fault_report(unsigned index)
{
    fprintf(stderr, "edgegru-fault: %s CFSR=0x%08lx HFSR=0x%08lx MMFAR=0x%08lx BFAR=0x%08lx\n", faults[index].kind,
            (unsigned long)SCB_CFSR, (unsigned long)SCB_HFSR, (unsigned long)SCB_MMFAR, (unsigned long)SCB_BFAR);
    exit(faults[index].exit_code);
}

__attribute__((naked, used)) void edgegru_fault_entry(void)
{
    __asm volatile("movw r1, #:lower16:edgegru_fault_stack\n\t"
                   "movt r1, #:upper16:edgegru_fault_stack\n\t"
#if __ARM_ARCH >= 8
                   "msr msplim, r1\n\t"
#endif
                   "add r1, r1, #" EDGEGRU_STR(FAULT_STACK_BYTES) "\n\t"
                   "mov sp, r1\n\t"
                   "b edgegru_fault_report\n\t");
}

#define FAULT_HANDLER(handler, index)                                                 \
    __attribute__((naked)) void handler(void)                                         \
    {                                                                                 \
        __asm volatile("movs r0, #" EDGEGRU_STR(index) "\n\tb edgegru_fault_entry\n\t"); \
    }

FAULT_HANDLER(HardFault_Handler, 0)
FAULT_HANDLER(MemManage_Handler, 1)
FAULT_HANDLER(BusFault_Handler, 2)
FAULT_HANDLER(UsageFault_Handler, 3)
FAULT_HANDLER(SecureFault_Handler, 4)
FAULT_HANDLER(Unexpected_Handler, 5)
