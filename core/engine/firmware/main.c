/* Runs the model once on the built-in test input and reports over the UART:
 *
 *   layer <i> <name> <kind> crc32=0x<crc of the layer's int8 output> cycles=<DWT cycles | n/a>
 *   total cycles=<sum over layers> time_us=<at the core clock>
 *   class=<argmax of the int8 logits> (<class name>) logits=<...>
 *   check=PASS|FAIL ...    (the checksums and class against the integer reference, embedded at export)
 *   done status=<0 | 1>
 *
 * The checksum is the CRC-32 of zlib/PNG (reflected polynomial 0xEDB88320), so a host can recompute
 * it with zlib.crc32 over the same bytes. Cycles come from the DWT cycle counter, read in se_mark(),
 * the hook model.c calls before each layer: a layer's count includes that call, not the checksum.
 * Where the counter does not run (QEMU emulates no DWT: it reads 0) the report says so and prints n/a.
 * Generated into an export by core/engine/export.py (python -m core engine export). */
#include <stdint.h>

#include "board.h"
#include "firmware_data.h"
#include "model.h"

#define DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define DWT_LAR (*(volatile uint32_t *)0xE0001FB0u)

void se_mark(uint32_t layer);
void fw_fault(const char *what, uint32_t cfsr, uint32_t hfsr);

static uint32_t layer_cycles[FW_LAYERS];
static uint32_t layer_crc[FW_LAYERS];
static int32_t current_layer = -1;
static uint32_t layer_start;

/* ---------------------------------------------------------------------------------------- output -- */
static void put_str(const char *s) {
  while (*s) {
    if (*s == '\n') board_putc('\r');
    board_putc(*s++);
  }
}

static void put_u32(uint32_t v) {
  char buf[11];
  int i = 0;
  do {
    buf[i++] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v);
  while (i) board_putc(buf[--i]);
}

static void put_i32(int32_t v) {
  if (v < 0) {
    board_putc('-');
    put_u32((uint32_t)(-(int64_t)v));
  } else {
    put_u32((uint32_t)v);
  }
}

static void put_hex32(uint32_t v) {
  static const char digits[] = "0123456789abcdef";
  put_str("0x");
  for (int shift = 28; shift >= 0; shift -= 4) board_putc(digits[(v >> shift) & 0xFu]);
}

/* -------------------------------------------------------------------------------- measurements -- */
static uint32_t crc32(const int8_t *data, uint32_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (uint32_t i = 0; i < n; ++i) {
    crc ^= (uint8_t)data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

/* Enable the DWT cycle counter; 1 when it counts (it reads 0 and stays 0 under QEMU). */
static int dwt_start(void) {
  DEMCR |= 1u << 24; /* TRCENA */
  DWT_LAR = 0xC5ACCE55u; /* unlock (needed on some Cortex-M7 parts) */
  DWT_CYCCNT = 0u;
  DWT_CTRL |= 1u; /* CYCCNTENA */
  const uint32_t before = DWT_CYCCNT;
  for (volatile int i = 0; i < 100; ++i) {
  }
  return DWT_CYCCNT != before;
}

/* Called by model.c before layer `layer` (and with the layer count once the model is done). */
void se_mark(uint32_t layer) {
  const uint32_t now = DWT_CYCCNT;
  if (current_layer >= 0 && current_layer < FW_LAYERS) {
    const fw_layer_t *l = &fw_layers[current_layer];
    layer_cycles[current_layer] = now - layer_start;
    layer_crc[current_layer] = crc32(se_arena + l->offset, l->bytes);
  }
  current_layer = (int32_t)layer;
  layer_start = DWT_CYCCNT; /* after the checksum, so that it is not counted */
}

void fw_fault(const char *what, uint32_t cfsr, uint32_t hfsr) {
  put_str("\n");
  put_str(what);
  put_str(" in layer ");
  put_i32(current_layer);
  put_str(": CFSR=");
  put_hex32(cfsr);
  put_str(" HFSR=");
  put_hex32(hfsr);
  put_str("\ndone status=3\n");
  board_exit(3);
}

/* ------------------------------------------------------------------------------------------ main -- */
int main(void) {
  put_str("\n== SparseEngine firmware: ");
  put_str(FW_TITLE);
  put_str(" on ");
  put_str(board_name());
  put_str(" ==\nmodel: ");
  put_u32(FW_LAYERS);
  put_str(" layers, ");
  put_u32(FW_MACS);
  put_str(" MACs, arena ");
  put_u32(SE_ARENA_BYTES);
  put_str(" bytes\ninput: ");
  put_str(FW_INPUT_DESCRIPTION);
  put_str("\n");

  int8_t *input = se_arena + SE_INPUT_OFFSET;
  for (uint32_t i = 0; i < FW_INPUT_BYTES; ++i) input[i] = fw_input[i];

  const int dwt = dwt_start();
  put_str("clock: ");
  put_u32(board_clock_hz());
  put_str(dwt ? " Hz; DWT cycle counter: running\n"
              : " Hz; DWT cycle counter: not running (it reads 0: QEMU does not emulate the DWT), cycles n/a\n");

  model_run();

  uint32_t total = 0, matches = 0;
  for (int i = 0; i < FW_LAYERS; ++i) {
    put_str("layer ");
    put_u32((uint32_t)i);
    put_str(" ");
    put_str(fw_layers[i].name);
    put_str(" ");
    put_str(fw_layers[i].kind);
    put_str(" crc32=");
    put_hex32(layer_crc[i]);
    put_str(" cycles=");
    if (dwt) {
      put_u32(layer_cycles[i]);
    } else {
      put_str("n/a");
    }
    put_str("\n");
    total += layer_cycles[i];
    matches += layer_crc[i] == fw_layers[i].crc32;
  }
  if (dwt) {
    put_str("total cycles=");
    put_u32(total);
    put_str(" time_us=");
    put_u32(total / (board_clock_hz() / 1000000u));
    put_str("\n");
  } else {
    put_str("total cycles=n/a time_us=n/a\n");
  }

  const int8_t *logits = se_arena + SE_OUTPUT_OFFSET;
  int32_t best = 0;
  for (int32_t k = 1; k < FW_CLASSES; ++k) {
    if (logits[k] > logits[best]) best = k; /* the first maximum, as numpy's argmax */
  }
  put_str("class=");
  put_i32(best);
  put_str(" (");
  put_str(fw_classes[best]);
  put_str(") logits=");
  for (int32_t k = 0; k < FW_CLASSES; ++k) {
    if (k) board_putc(',');
    put_i32(logits[k]);
  }
  put_str("\n");

  const int ok = matches == FW_LAYERS && best == FW_EXPECTED_CLASS;
  put_str(ok ? "check=PASS " : "check=FAIL ");
  put_u32(matches);
  put_str("/");
  put_u32(FW_LAYERS);
  put_str(" layer checksums equal the integer reference's; class ");
  put_str(best == FW_EXPECTED_CLASS ? "equals" : "differs from");
  put_str(" the int8 model's (");
  put_i32(FW_EXPECTED_CLASS);
  put_str(")\ndone status=");
  put_u32(ok ? 0u : 1u);
  put_str("\n");
  return ok ? 0 : 1;
}
