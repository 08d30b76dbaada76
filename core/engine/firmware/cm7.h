/* Cortex-M7 system registers the firmware uses: L1 caches and barriers (ARMv7-M ARM, B3.2; the same
 * sequence as CMSIS's SCB_EnableICache / SCB_EnableDCache). */
#ifndef CM7_H
#define CM7_H
#include <stdint.h>

#define CM7_REG(addr) (*(volatile uint32_t *)(addr))
#define SCB_CCR CM7_REG(0xE000ED14u)
#define SCB_CCSIDR CM7_REG(0xE000ED80u)
#define SCB_CSSELR CM7_REG(0xE000ED84u)
#define SCB_ICIALLU CM7_REG(0xE000EF50u)
#define SCB_DCISW CM7_REG(0xE000EF60u)
#define SCB_CCR_DC (1u << 16)
#define SCB_CCR_IC (1u << 17)

static inline void cm7_barrier(void) { __asm volatile("dsb 0xF\n\tisb 0xF" ::: "memory"); }

/* Invalidate and enable the instruction cache, then invalidate the data cache by set/way and enable it.
 * The firmware uses no DMA, so the data cache needs no maintenance afterwards. */
static inline void cm7_enable_caches(void) {
  if (SCB_CCR & SCB_CCR_IC) return; /* already on (a debugger reset) */
  cm7_barrier();
  SCB_ICIALLU = 0u;
  cm7_barrier();
  SCB_CCR |= SCB_CCR_IC;
  cm7_barrier();
  SCB_CSSELR = 0u; /* level 1 data cache */
  cm7_barrier();
  const uint32_t ccsidr = SCB_CCSIDR;
  uint32_t sets = (ccsidr >> 13) & 0x7FFFu;
  do {
    uint32_t ways = (ccsidr >> 3) & 0x3FFu;
    do {
      SCB_DCISW = ((sets << 5) & 0x3FE0u) | ((ways << 30) & 0xC0000000u);
    } while (ways-- != 0u);
  } while (sets-- != 0u);
  cm7_barrier();
  SCB_CCR |= SCB_CCR_DC;
  cm7_barrier();
}

#endif
