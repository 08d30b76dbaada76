/* STM32F746G-DISCO (STM32F746NGH6: Cortex-M7, 1 MB flash at 0x08000000, 320 KB SRAM at 0x20000000).
 *
 * Clock: the board's 25 MHz HSE crystal -> PLL (M = 25, N = 432, P = 2, Q = 9) = 216 MHz SYSCLK, with
 * the regulator in scale 1 and over-drive on (required above 180 MHz), 7 flash wait states (2.7-3.6 V),
 * the ART accelerator and prefetch on, AHB /1 = 216 MHz, APB1 /4 = 54 MHz, APB2 /2 = 108 MHz
 * (RM0385 sections 3.3.2, 4.1.4, 5.3). Should the HSE or the PLL not start, the core stays on the
 * 16 MHz HSI and board_clock_hz() says so (the UART baud rate follows the clock either way).
 * Caches: I-cache and D-cache on.
 * UART: USART1, 115200 8N1, TX = PA9, RX = PB7 (AF7), wired to the ST-LINK/V2-1 virtual COM port
 * (UM1907), so the output appears on the USB serial port of the ST-LINK (/dev/ttyACM0 on Linux).
 * Generated into an export by core/engine/export.py (python -m core engine export). */
#include "board.h"
#include "cm7.h"

#define REG(addr) CM7_REG(addr)
#define RCC_CR REG(0x40023800u)
#define RCC_PLLCFGR REG(0x40023804u)
#define RCC_CFGR REG(0x40023808u)
#define RCC_AHB1ENR REG(0x40023830u)
#define RCC_APB1ENR REG(0x40023840u)
#define RCC_APB2ENR REG(0x40023844u)
#define PWR_CR1 REG(0x40007000u)
#define PWR_CSR1 REG(0x40007004u)
#define FLASH_ACR REG(0x40023C00u)
#define GPIOA_MODER REG(0x40020000u)
#define GPIOA_OSPEEDR REG(0x40020008u)
#define GPIOA_AFRH REG(0x40020024u)
#define GPIOB_MODER REG(0x40020400u)
#define GPIOB_PUPDR REG(0x4002040Cu)
#define GPIOB_AFRL REG(0x40020420u)
#define USART1_CR1 REG(0x40011000u)
#define USART1_BRR REG(0x4001100Cu)
#define USART1_ISR REG(0x4001101Cu)
#define USART1_TDR REG(0x40011028u)

#define HSI_HZ 16000000u
#define SYSCLK_HZ 216000000u
#define BAUD 115200u
#define READY_POLLS 1000000u

static uint32_t sysclk_hz = HSI_HZ;
static uint32_t apb2_hz = HSI_HZ;

/* poll until (reg & mask) == want; 0 on time-out */
static int wait_bits(volatile uint32_t *reg, uint32_t mask, uint32_t want) {
  for (uint32_t i = 0; i < READY_POLLS; ++i) {
    if ((*reg & mask) == want) return 1;
  }
  return 0;
}

static void clock_216mhz(void) {
  RCC_APB1ENR |= 1u << 28; /* PWREN */
  (void)RCC_APB1ENR;
  PWR_CR1 = (PWR_CR1 & ~(3u << 14)) | (3u << 14); /* VOS: scale 1 */
  RCC_CR |= 1u << 16;                             /* HSEON */
  if (!wait_bits(&RCC_CR, 1u << 17, 1u << 17)) return; /* HSERDY */
  /* PLLM = 25, PLLN = 432, PLLP = 2 (00), PLLSRC = HSE, PLLQ = 9: 25 MHz / 25 * 432 / 2 = 216 MHz */
  RCC_PLLCFGR = 25u | (432u << 6) | (0u << 16) | (1u << 22) | (9u << 24);
  RCC_CR |= 1u << 24; /* PLLON */
  if (!wait_bits(&RCC_CR, 1u << 25, 1u << 25)) return; /* PLLRDY */
  PWR_CR1 |= 1u << 16; /* ODEN: over-drive, needed above 180 MHz */
  if (!wait_bits(&PWR_CSR1, 1u << 16, 1u << 16)) return;
  PWR_CR1 |= 1u << 17; /* ODSWEN */
  if (!wait_bits(&PWR_CSR1, 1u << 17, 1u << 17)) return;
  FLASH_ACR = 7u | (1u << 8) | (1u << 9); /* 7 wait states, prefetch, ART accelerator */
  if (!wait_bits(&FLASH_ACR, 0xFu, 7u)) return;
  /* AHB /1, APB1 /4 (101), APB2 /2 (100), then switch SYSCLK to the PLL (10) */
  RCC_CFGR = (RCC_CFGR & ~0xFCF0u) | (5u << 10) | (4u << 13); /* SW untouched: still HSI */
  RCC_CFGR = (RCC_CFGR & ~3u) | 2u;
  if (!wait_bits(&RCC_CFGR, 0xCu, 0x8u)) return; /* SWS = PLL */
  sysclk_hz = SYSCLK_HZ;
  apb2_hz = SYSCLK_HZ / 2u;
}

static void uart_init(void) {
  RCC_AHB1ENR |= (1u << 0) | (1u << 1); /* GPIOA, GPIOB */
  RCC_APB2ENR |= 1u << 4;               /* USART1 */
  (void)RCC_APB2ENR;
  GPIOA_MODER = (GPIOA_MODER & ~(3u << 18)) | (2u << 18); /* PA9 alternate function */
  GPIOA_OSPEEDR |= 2u << 18;
  GPIOA_AFRH = (GPIOA_AFRH & ~(0xFu << 4)) | (7u << 4);   /* AF7 = USART1_TX */
  GPIOB_MODER = (GPIOB_MODER & ~(3u << 14)) | (2u << 14); /* PB7 alternate function */
  GPIOB_PUPDR = (GPIOB_PUPDR & ~(3u << 14)) | (1u << 14); /* pull-up on RX */
  GPIOB_AFRL = (GPIOB_AFRL & ~(0xFu << 28)) | (7u << 28); /* AF7 = USART1_RX */
  USART1_CR1 = 0u;
  USART1_BRR = (apb2_hz + BAUD / 2u) / BAUD; /* oversampling by 16 */
  USART1_CR1 = (1u << 3) | (1u << 2) | (1u << 0); /* TE, RE, UE */
}

void board_init(void) {
  clock_216mhz();
  cm7_enable_caches();
  uart_init();
}

void board_putc(char c) {
  while (!(USART1_ISR & (1u << 7))) { /* TXE */
  }
  USART1_TDR = (uint8_t)c;
}

uint32_t board_clock_hz(void) { return sysclk_hz; }

const char *board_name(void) { return "stm32f746g-disco"; }

void board_exit(int status) {
  (void)status;
  while (!(USART1_ISR & (1u << 6))) { /* TC: the last byte has left */
  }
  for (;;) __asm volatile("wfi");
}
