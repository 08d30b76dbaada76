/* Startup for a Cortex-M7: vector table, reset handler, fault handler, memset/memcpy/memmove (no libc).
 *
 * Reset: enable the FPU (the build uses the hard-float ABI), copy .data from flash to SRAM, zero .bss,
 * call board_init() (clocks, caches, UART) and main(). The activation arena is in .noinit: main()
 * writes the test input into it, so zeroing it would only cost time.
 * Generated into an export by core/engine/export.py (python -m core engine export). */
#include <stddef.h>
#include <stdint.h>

#include "board.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void Reset_Handler(void);
void Default_Handler(void);
void HardFault_Handler(void);
void fw_fault(const char *what, uint32_t cfsr, uint32_t hfsr);

#define SCB_VTOR (*(volatile uint32_t *)0xE000ED08u)
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)

/* The system exceptions of the ARMv7-M vector table. The firmware enables no peripheral interrupt, so
 * the device's IRQ vectors (98 on the STM32F746) are not needed; an unexpected one lands in the
 * default handler through the NVIC never being enabled. */
__attribute__((section(".isr_vector"), used)) const void *const fw_vectors[16] = {
    (const void *)&_estack,      /* initial stack pointer */
    (const void *)Reset_Handler, /* reset */
    (const void *)Default_Handler,   /* NMI */
    (const void *)HardFault_Handler, /* HardFault */
    (const void *)HardFault_Handler, /* MemManage */
    (const void *)HardFault_Handler, /* BusFault */
    (const void *)HardFault_Handler, /* UsageFault */
    0, 0, 0, 0,                      /* reserved */
    (const void *)Default_Handler,   /* SVCall */
    (const void *)Default_Handler,   /* DebugMonitor */
    0,                               /* reserved */
    (const void *)Default_Handler,   /* PendSV */
    (const void *)Default_Handler,   /* SysTick */
};

void Reset_Handler(void) {
  SCB_VTOR = (uint32_t)(uintptr_t)fw_vectors;
  SCB_CPACR |= 0xFu << 20; /* CP10 and CP11 full access: the FPU */
  __asm volatile("dsb\n\tisb" ::: "memory");
  uint32_t *src = &_sidata;
  for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0u;
  board_init();
  board_exit(main());
}

void HardFault_Handler(void) { fw_fault("fault", SCB_CFSR, SCB_HFSR); }

void Default_Handler(void) { fw_fault("unexpected exception", SCB_CFSR, SCB_HFSR); }

/* The compiler may turn struct copies and loops into calls to these (there is no libc). The build
 * passes -fno-tree-loop-distribute-patterns so that these loops are not turned into calls to themselves. */
void *memset(void *dst, int value, size_t n) {
  uint8_t *d = (uint8_t *)dst;
  while (n--) *d++ = (uint8_t)value;
  return dst;
}

void *memcpy(void *dst, const void *src, size_t n) {
  uint8_t *d = (uint8_t *)dst;
  const uint8_t *s = (const uint8_t *)src;
  while (n--) *d++ = *s++;
  return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
  uint8_t *d = (uint8_t *)dst;
  const uint8_t *s = (const uint8_t *)src;
  if (d < s) {
    while (n--) *d++ = *s++;
  } else {
    while (n--) d[n] = s[n];
  }
  return dst;
}
