/* The board interface the firmware's main.c uses; one board_<name>.c implements it.
 * Generated into an export by core/engine/export.py (python -m core engine export). */
#ifndef BOARD_H
#define BOARD_H
#include <stdint.h>

/* clocks, caches and the UART: called once by the reset handler, before main() */
void board_init(void);
/* one byte out of the UART (blocking) */
void board_putc(char c);
/* the core clock the DWT cycle counter runs at */
uint32_t board_clock_hz(void);
/* the board's name, as `--board` spells it */
const char *board_name(void);
/* end of the program: under QEMU (semihosting) this exits with `status`; on a board it parks the core */
__attribute__((noreturn)) void board_exit(int status);

#endif
