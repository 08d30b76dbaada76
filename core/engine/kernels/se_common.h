/* SparseEngine common inline helpers: TFLite/gemmlowp-exact requantization and q7 -> q15 packing.
 *
 * requantize(acc) = clamp(MBQM(acc, mult, shift) + out_zp, act_min, act_max), where
 *   MBQM(x, m, s)   = RDBP(SRDHM(x * 2^max(s,0), m), max(-s, 0))                 (TFLite semantics)
 *   SRDHM(a, b)     = round-half-away-from-zero(a*b / 2^31), saturating at INT32_MIN*INT32_MIN
 *   RDBP(x, e)      = round-half-away-from-zero(x / 2^e)
 * SRDHM is computed as (a*b + 2^30) >> 31 (arithmetic, one SMLAL): for every product this equals
 * gemmlowp's nudge-and-truncate form (proof: write |ab| = q*2^31 + r; both give sign(ab)*(q + [r > 2^30])
 * for negative products and q + [r >= 2^30] for non-negative ones).
 */
#ifndef SE_COMMON_H
#define SE_COMMON_H
#include <arm_acle.h>
#include <stdint.h>

#include "se_config.h" /* generated per program: SE_FAST_REQUANT (see se_rq_apply) */

#define SE_INLINE static inline __attribute__((always_inline))

/* SMMLAR: (a * b + (c << 32) + 2^31) >> 32 in one instruction */
SE_INLINE int32_t __smmlar(int32_t a, int32_t b, int32_t c) {
  int32_t r;
  __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
  return r;
}

/* the layer marker: a store the emulator watches (an MMIO-like word; unused on a board) */
#define SE_MARKER_ADDRESS 0x40000000u

SE_INLINE int32_t se_srdhm(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  int64_t ab = (int64_t)a * (int64_t)b + (1ll << 30);
  return (int32_t)(ab >> 31);
}

SE_INLINE int32_t se_rdbp(int32_t x, int32_t exponent) {
  const int32_t mask = (int32_t)((1u << exponent) - 1u);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

SE_INLINE int32_t se_mbqm(int32_t x, int32_t mult, int32_t shift) {
  const int32_t left = shift > 0 ? shift : 0;
  const int32_t right = shift > 0 ? 0 : -shift;
  if (left) {
    const int64_t wide = (int64_t)x * (int64_t)(1u << left);
    x = wide > INT32_MAX ? INT32_MAX : (wide < INT32_MIN ? INT32_MIN : (int32_t)wide);
  }
  return se_rdbp(se_srdhm(x, mult), right);
}

/* Per-channel requantization constants, prepared once per output channel (hoisted out of pixel loops). */
typedef struct {
  int32_t mult, left, right, mask, threshold, half;
} se_rq_t;

SE_INLINE se_rq_t se_rq_prepare(int32_t mult, int32_t shift) {
  se_rq_t rq;
  rq.mult = mult;
  rq.left = shift > 0 ? shift : 0;
  rq.right = shift > 0 ? 0 : -shift;
  rq.mask = (int32_t)((1u << rq.right) - 1u);
  rq.threshold = rq.mask >> 1;
  rq.half = rq.right > 0 ? (int32_t)(1u << (rq.right - 1)) : 0;
  return rq;
}

SE_INLINE int8_t se_rq_apply_exact(int32_t acc, se_rq_t rq, int32_t out_zp, int32_t act_min, int32_t act_max);

/* = se_requant(acc, mult, shift, ...) for a non-negative Q31 multiplier (qmath.quantize_multiplier
 * never gives a negative one, so SRDHM's INT32_MIN * INT32_MIN saturation cannot occur). A positive
 * shift saturates the shifted accumulator to int32, as qmath.multiply_by_quantized_multiplier does. */
SE_INLINE int8_t se_rq_apply(int32_t acc, se_rq_t rq, int32_t out_zp, int32_t act_min, int32_t act_max) {
#if SE_FAST_REQUANT
  /* Exact shortcut, enabled by the code generator only when it has proved |acc| < 2^30 for every
   * layer using it: then 2*acc fits int32 and SMMULR(2*acc, m) = floor((2*acc*m + 2^31) / 2^32) =
   * floor((acc*m + 2^30) / 2^31) = SRDHM; and with right >= 1, t + 2^(right-1) cannot overflow, so
   * (t + 2^(right-1) + (t >> 31)) >> right = RoundingDivideByPOT(t, right) (ties away from zero). */
  if (rq.left == 0 && rq.right > 0) {
    const int32_t t = (int32_t)(((int64_t)(acc * 2) * rq.mult + 0x80000000ll) >> 32);
    int32_t v = ((t + rq.half + (t >> 31)) >> rq.right) + out_zp;
    v = v < act_min ? act_min : v;
    return (int8_t)(v > act_max ? act_max : v);
  }
#endif
  return se_rq_apply_exact(acc, rq, out_zp, act_min, act_max);
}

/* The tight requantization of the sparse kernels' output-stationary loops, from 2*acc (the weights are
 * doubled once per channel, so the SMLAD chain yields 2*acc directly). Exact (= qmath.requantize,
 * TFLite's MultiplyByQuantizedMultiplier) under the SE_FAST_REQUANT proof |acc| < 2^30, for a
 * multiplier m >= 0 and a right shift r in [1, 21] (se_rq2_prepare refuses anything else and the
 * caller takes the general path):
 *   t = SMMULR(2*acc, m)                    = SRDHM(acc, m), |t| <= 2^30
 *   RDBP(t, r) + out_zp = (t + c + (t >> 31)) >> r with c = 2^(r-1) + out_zp * 2^r
 *                                           (|t| + |c| + 1 < 2^31 for r <= 21, |out_zp| <= 128; adding
 *                                            out_zp * 2^r inside the floor shift adds out_zp outside)
 *   t >> 31 may be replaced by acc >> 31: with m >= 0, t < 0 implies acc < 0, and acc < 0 with t = 0
 *   gives (c - 1) >> r = (c) >> r = out_zp because 0 <= 2^(r-1) - 1 < 2^r.
 *   SMMLAR(2*acc, m, c') = c' + t for any c' (its accumulator is added as the high word), so
 *   v = SMMLAR(2*acc, m, c + (acc >> 31)) >> r,   out = SSAT(v, 8) without an activation
 *   (else min(max(v, act_min), act_max)).
 * Per output: ADD (ASR #31 operand), SMMLAR, ASR, SSAT, STRB = 5 instructions: the floor. */
typedef struct {
  int32_t mult, c, right, lo, hi, clamp;
} se_rq2_t;

/* `se_rq2_t rq2 SE_RQ2_UNSET;`: GCC (the exported firmware's compiler, -Werror) cannot see that rq2 is only
 * read after se_rq2_prepare() succeeded and warns -Wmaybe-uninitialized; zeroing it for GCC only keeps
 * clang's (measured) code unchanged. */
#if defined(__clang__)
#define SE_RQ2_UNSET
#else
#define SE_RQ2_UNSET = {0, 0, 0, 0, 0, 0}
#endif

SE_INLINE int se_rq2_prepare(se_rq2_t *rq, int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min,
                             int32_t act_max) {
  if (mult < 0 || shift > -1 || shift < -21 || out_zp < -128 || out_zp > 128) return 0;
  rq->mult = mult;
  rq->right = -shift;
  rq->c = (int32_t)((uint32_t)(2 * out_zp + 1) << (rq->right - 1)); /* 2^(r-1) + out_zp * 2^r */
  rq->lo = act_min;
  rq->hi = act_max;
  rq->clamp = !(act_min == -128 && act_max == 127);
  return 1;
}

/* the same constants with the clamp known to be the int8 range (so the compiler drops the branch) */
SE_INLINE se_rq2_t se_rq2_noclamp(se_rq2_t rq) {
  se_rq2_t r = {rq.mult, rq.c, rq.right, -128, 127, 0};
  return r;
}

SE_INLINE int8_t se_rq2_store(int32_t acc2, se_rq2_t rq) {
  const int32_t c = rq.c + (acc2 >> 31);
  int32_t v = __smmlar(acc2, rq.mult, c) >> rq.right;
  if (rq.clamp) {
    v = v < rq.lo ? rq.lo : v;
    return (int8_t)(v > rq.hi ? rq.hi : v);
  }
  return (int8_t)__ssat(v, 8);
}

/* the general path of se_rq_apply (any accumulator, any shift) */
SE_INLINE int8_t se_rq_apply_exact(int32_t acc, se_rq_t rq, int32_t out_zp, int32_t act_min, int32_t act_max) {
  int32_t x = acc;
  if (__builtin_expect(rq.left != 0, 0)) {
    const int64_t wide = (int64_t)x * (int64_t)(1u << rq.left);
    x = wide > INT32_MAX ? INT32_MAX : (wide < INT32_MIN ? INT32_MIN : (int32_t)wide);
  }
  const int32_t t = (int32_t)(((int64_t)x * rq.mult + (1ll << 30)) >> 31);
  int32_t v = (t >> rq.right) + ((t & rq.mask) > rq.threshold + (int32_t)((uint32_t)t >> 31)) + out_zp;
  v = v < act_min ? act_min : v;
  v = v > act_max ? act_max : v;
  return (int8_t)v;
}

/* out[i*stride] = requant(acc[i]) for i < n: one output channel of a weight-stationary kernel.
 * A separate function so that its loop gets all registers (inlined, the constants spill). */
void se_requant_column(const int32_t *acc, int32_t n, int8_t *out, int32_t stride, int32_t mult, int32_t shift,
                       int32_t out_zp, int32_t act_min, int32_t act_max);

/* exact for any accumulator (LayerNorm, add and other element-wise users) */
SE_INLINE int8_t se_requant(int32_t acc, int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min,
                            int32_t act_max) {
  return se_rq_apply_exact(acc, se_rq_prepare(mult, shift), out_zp, act_min, act_max);
}

/* 4 int8 from memory (unaligned is fine on the M7) */
SE_INLINE uint32_t se_read_u32(const int8_t *p) {
  uint32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

SE_INLINE int32_t se_read_q15x2(const int16_t *p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

SE_INLINE void se_write_q15x2(int16_t *p, int32_t v) { __builtin_memcpy(p, &v, 4); }

/* w rotated right by 8 bits. Written out because GCC's <arm_acle.h> (arm-none-eabi-gcc 12, the exported
 * firmware's compiler) has no __ror; clang's __ror is this same expression, so its code does not change. */
SE_INLINE uint32_t se_ror8(uint32_t w) { return (w >> 8) | (w << 24); }

/* [x0,x1,x2,x3] int8 -> *lo = [x0,x2], *hi = [x1,x3] as q15 pairs (the CMSIS-NN "reordered" layout) */
SE_INLINE void se_unpack_reordered(uint32_t w, int32_t *lo, int32_t *hi) {
  *lo = (int32_t)__sxtb16(w);
  *hi = (int32_t)__sxtb16(se_ror8(w));
}

/* defined in startup.c and never inlined, so the call ends an emulator block before the layer starts */
void se_mark(uint32_t layer);

#endif
