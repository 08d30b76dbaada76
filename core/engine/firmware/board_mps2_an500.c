/* Arm MPS2+ with the AN500 FPGA image (Cortex-M7), as QEMU emulates it (`qemu-system-arm -M mps2-an500`).
 *
 * Memory: ZBT SSRAM1 (4 MB at 0x00000000) holds the image and the vector table, ZBT SSRAM2/3 (4 MB at
 * 0x20000000) the data. Clock: the FPGA's fixed 25 MHz. Caches: I-cache and D-cache on (QEMU accepts the
 * maintenance operations and emulates no cache). UART: CMSDK APB UART0 at 0x40004000, 115200 baud;
 * QEMU connects it to its first serial port (stdio with -nographic).
 * Exit: with FW_SEMIHOSTING=1 (the default for this board, `make SEMIHOSTING=0` to turn it off)
 * board_exit() asks the debugger or QEMU (-semihosting-config enable=on) to end the program with its
 * status (SYS_EXIT). On the FPGA board without a debugger that BKPT would fault, so build it with
 * SEMIHOSTING=0 there: the core then parks in WFI.
 * Generated into an export by core/engine/export.py (python -m core engine export). */
#include "board.h"
#include "cm7.h"

#ifndef FW_SEMIHOSTING
#define FW_SEMIHOSTING 1
#endif

#define UART0_DATA CM7_REG(0x40004000u)
#define UART0_STATE CM7_REG(0x40004004u)
#define UART0_CTRL CM7_REG(0x40004008u)
#define UART0_BAUDDIV CM7_REG(0x40004010u)

#define CLOCK_HZ 25000000u
#define BAUD 115200u

void board_init(void) {
  cm7_enable_caches();
  UART0_BAUDDIV = CLOCK_HZ / BAUD; /* 217; the CMSDK UART needs >= 16 */
  UART0_CTRL = 1u;                 /* TX enable */
}

void board_putc(char c) {
  while (UART0_STATE & 1u) { /* TX buffer full */
  }
  UART0_DATA = (uint8_t)c;
}

uint32_t board_clock_hz(void) { return CLOCK_HZ; }

const char *board_name(void) { return "mps2-an500"; }

void board_exit(int status) {
  while (UART0_STATE & 1u) {
  }
#if FW_SEMIHOSTING
  /* SYS_EXIT (0x18) with ADP_Stopped_ApplicationExit (0x20026) for success, InternalError (0x20024) else */
  register uint32_t op __asm("r0") = 0x18u;
  register uint32_t reason __asm("r1") = status == 0 ? 0x20026u : 0x20024u;
  __asm volatile("bkpt 0xAB" : "+r"(op) : "r"(reason) : "memory");
#else
  (void)status;
#endif
  for (;;) __asm volatile("wfi");
}
