/* SparseEngine startup: vector table, reset handler, halt sentinel, memset/memcpy (no libc). */
#include <stddef.h>
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void Reset_Handler(void);

/* Cortex-M vector table: initial stack pointer, then the reset vector. */
__attribute__((section(".isr_vector"), used)) const void *const se_vectors[2] = {
    (const void *)&_estack, (const void *)Reset_Handler};

/* The emulator stops when the PC reaches this function; on a board it parks the core. */
__attribute__((noreturn, noinline, used)) void se_halt(void) {
  for (;;) {
    __asm volatile("bkpt #0");
  }
}

void Reset_Handler(void) {
  uint32_t *src = &_sidata;
  for (uint32_t *dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (uint32_t *dst = &_sbss; dst < &_ebss;) *dst++ = 0u;
  main();
  se_halt();
}

/* The layer marker: the emulator hooks this store to attribute instructions to layers. */
__attribute__((noinline, used)) void se_mark(uint32_t layer) { *(volatile uint32_t *)0x40000000u = layer; }

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
