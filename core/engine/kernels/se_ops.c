/* SparseEngine shape-generic int8 kernels: attention matmuls, softmax, LayerNorm, add, pooling.
 * Bit-exact ports of core/tinyformer/intref.py (see the docstring of each Python function). */
#include "se_ops.h"

void se_requant_column(const int32_t *acc, int32_t n, int8_t *out, int32_t stride, int32_t mult, int32_t shift,
                       int32_t out_zp, int32_t act_min, int32_t act_max) {
  const se_rq_t rq = se_rq_prepare(mult, shift);
  const int32_t *const end = acc + n;
#if SE_FAST_REQUANT
  if (rq.left == 0 && rq.right > 0) { /* se_rq_apply's shortcut, unswitched so the loop stays small */
    const int32_t right = rq.right, half = rq.half;
    if (act_min == -128 && act_max == 127) { /* no activation: one SSAT clamps; two outputs per step */
      for (; acc + 1 < end; acc += 2, out += 2 * stride) {
        const int32_t t0 = (int32_t)(((int64_t)(acc[0] * 2) * mult + 0x80000000ll) >> 32);
        const int32_t t1 = (int32_t)(((int64_t)(acc[1] * 2) * mult + 0x80000000ll) >> 32);
        out[0] = (int8_t)__ssat(((t0 + half + (t0 >> 31)) >> right) + out_zp, 8);
        out[stride] = (int8_t)__ssat(((t1 + half + (t1 >> 31)) >> right) + out_zp, 8);
      }
      if (acc < end) {
        const int32_t t = (int32_t)(((int64_t)(*acc * 2) * mult + 0x80000000ll) >> 32);
        *out = (int8_t)__ssat(((t + half + (t >> 31)) >> right) + out_zp, 8);
      }
      return;
    }
    for (; acc < end; acc++, out += stride) {
      const int32_t t = (int32_t)(((int64_t)(*acc * 2) * mult + 0x80000000ll) >> 32);
      int32_t v = ((t + half + (t >> 31)) >> right) + out_zp;
      v = v < act_min ? act_min : v;
      *out = (int8_t)(v > act_max ? act_max : v);
    }
    return;
  }
#endif
  for (; acc < end; acc++, out += stride) *out = se_rq_apply_exact(*acc, rq, out_zp, act_min, act_max);
}

/* rows of int8 (minus zp) -> q15 rows of length K4 = K rounded up to 4, reordered [x0,x2,x1,x3] per
 * group of 4, zero padded. `stride` is the distance between consecutive elements of a row. */
void se_q15_rows(const int8_t *src, int32_t row_stride, int32_t elem_stride, int32_t rows, int32_t K,
                 int32_t zp, int16_t *dst) {
  static const uint8_t perm[4] = {0, 2, 1, 3};
  const int32_t K4 = (K + 3) & ~3;
  for (int32_t r = 0; r < rows; r++) {
    const int8_t *s = src + r * row_stride;
    int16_t *d = dst + r * K4;
    for (int32_t k = 0; k < K4; k++) {
      const int32_t v = k < K ? s[k * elem_stride] - zp : 0;
      d[(k & ~3) + perm[k & 3]] = (int16_t)v;
    }
  }
}

/* out0[n*ostride], out1[n*ostride] = requant(a0 . B[n], a1 . B[n]) for n < N (a1 may be 0) */
void se_mm2_q15(const int16_t *a0, const int16_t *a1, const int16_t *B, int32_t N, int32_t K4, int8_t *out0,
                int8_t *out1, int32_t ostride, int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min,
                int32_t act_max) {
  const int16_t *b1row = a1 ? a1 : a0;
  const se_rq_t rq = se_rq_prepare(mult, shift);
  int32_t n = 0;
  for (; n + 1 < N; n += 2) {
    const int16_t *p = B + n * K4, *q = p + K4;
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
    for (int32_t k = 0; k < K4; k += 2) {
      const int32_t x0 = se_read_q15x2(a0 + k), x1 = se_read_q15x2(b1row + k);
      const int32_t y0 = se_read_q15x2(p + k), y1 = se_read_q15x2(q + k);
      s00 = __smlad(x0, y0, s00);
      s01 = __smlad(x0, y1, s01);
      s10 = __smlad(x1, y0, s10);
      s11 = __smlad(x1, y1, s11);
    }
    out0[n * ostride] = se_rq_apply(s00, rq, out_zp, act_min, act_max);
    out0[(n + 1) * ostride] = se_rq_apply(s01, rq, out_zp, act_min, act_max);
    if (a1) {
      out1[n * ostride] = se_rq_apply(s10, rq, out_zp, act_min, act_max);
      out1[(n + 1) * ostride] = se_rq_apply(s11, rq, out_zp, act_min, act_max);
    }
  }
  if (n < N) {
    const int16_t *p = B + n * K4;
    int32_t s0 = 0, s1 = 0;
    for (int32_t k = 0; k < K4; k += 2) {
      s0 = __smlad(se_read_q15x2(a0 + k), se_read_q15x2(p + k), s0);
      s1 = __smlad(se_read_q15x2(b1row + k), se_read_q15x2(p + k), s1);
    }
    out0[n * ostride] = se_rq_apply(s0, rq, out_zp, act_min, act_max);
    if (a1) out1[n * ostride] = se_rq_apply(s1, rq, out_zp, act_min, act_max);
  }
}

/* S[h, i, j] = requant(sum_c (q[i, h*d+c] - q_zp) (k[j, h*d+c] - k_zp)); scratch 2*K4*(Nk + 2) bytes */
void se_matmul_qk(const int8_t *q, const int8_t *k, int8_t *s, int32_t Nq, int32_t Nk, int32_t D, int32_t heads,
                  int32_t q_zp, int32_t k_zp, int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min,
                  int32_t act_max, int16_t *scratch) {
  const int32_t d = D / heads, K4 = (d + 3) & ~3;
  int16_t *kb = scratch, *qa = scratch + Nk * K4;
  for (int32_t h = 0; h < heads; h++) {
    se_q15_rows(k + h * d, D, 1, Nk, d, k_zp, kb);
    int8_t *sh = s + h * Nq * Nk;
    for (int32_t i = 0; i < Nq; i += 2) {
      const int32_t two = i + 1 < Nq;
      se_q15_rows(q + i * D + h * d, D, 1, 1 + two, d, q_zp, qa);
      se_mm2_q15(qa, two ? qa + K4 : 0, kb, Nk, K4, sh + i * Nk, sh + (i + 1) * Nk, 1, mult, shift, out_zp,
                 act_min, act_max);
    }
  }
}

/* O[i, h*d+c] = requant(sum_j (p[h, i, j] - p_zp) (v[j, h*d+c] - v_zp)); scratch 2*K4*(d + 2) bytes */
void se_matmul_av(const int8_t *p, const int8_t *v, int8_t *o, int32_t heads, int32_t Nq, int32_t Nk, int32_t D,
                  int32_t p_zp, int32_t v_zp, int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min,
                  int32_t act_max, int16_t *scratch) {
  const int32_t d = D / heads, K4 = (Nk + 3) & ~3;
  int16_t *vt = scratch, *pa = scratch + d * K4;
  for (int32_t h = 0; h < heads; h++) {
    se_q15_rows(v + h * d, 1, D, d, Nk, v_zp, vt); /* V_h transposed: row c = column h*d+c of v */
    const int8_t *ph = p + h * Nq * Nk;
    for (int32_t i = 0; i < Nq; i += 2) {
      const int32_t two = i + 1 < Nq;
      se_q15_rows(ph + i * Nk, Nk, 1, 1 + two, Nk, p_zp, pa);
      se_mm2_q15(pa, two ? pa + K4 : 0, vt, d, K4, o + i * D + h * d, o + (i + 1) * D + h * d, 1, mult, shift,
                 out_zp, act_min, act_max);
    }
  }
}

/* intref.softmax over rows of length L, in place allowed; scratch: 4*L bytes of exponentials */
void se_softmax(const int8_t *x, int8_t *y, int32_t rows, int32_t L, const int32_t *lut, int32_t *e) {
  for (int32_t r = 0; r < rows; r++) {
    const int8_t *xr = x + r * L;
    int32_t m = -128;
    for (int32_t j = 0; j < L; j++) m = xr[j] > m ? xr[j] : m;
    int32_t sum = 0;
    for (int32_t j = 0; j < L; j++) {
      e[j] = lut[m - xr[j]];
      sum += e[j];
    }
    const int64_t recip = (int64_t)((1ull << 46) / (uint32_t)sum);
    int8_t *yr = y + r * L;
    for (int32_t j = 0; j < L; j++) {
      const int32_t v = (int32_t)(((int64_t)e[j] * recip + (1ll << 37)) >> 38) - 128;
      yr[j] = (int8_t)(v > 127 ? 127 : v);
    }
  }
}

/* Row-tiled attention (MCUFormer / depth-first attention): O = softmax(Q K^T) V without the
 * (heads, Nq, Nk) map. Per head h: K_h and V_h^T go to q15 once; then per pair of query rows
 * S = requant(Q_rows K_h^T) (2 x Nk int8), softmax in place, O_rows = requant(P V_h). Bit for bit
 * se_matmul_qk + se_softmax + se_matmul_av (every row of S is computed and normalised alone).
 * p = {q_zp, k_zp, s_mult, s_shift, s_zp, s_min, s_max, p_zp, v_zp, mult, shift, out_zp, act_min,
 * act_max}. scratch (4-aligned): e int32[Nk] | K_h q15[Nk*K4d] | V_h^T q15[d*K4n] | 2 Q rows q15[2*K4d]
 * | 2 P rows q15[2*K4n] | 2 S rows int8[2*Nk]: 6*Nk + 2*K4d*(Nk + 2) + 2*K4n*(d + 2) bytes. */
void se_attention(const int8_t *q, const int8_t *k, const int8_t *v, int8_t *o, int32_t Nq, int32_t Nk, int32_t D,
                  int32_t heads, const int32_t *p, const int32_t *lut, int8_t *scratch) {
  const int32_t d = D / heads, K4d = (d + 3) & ~3, K4n = (Nk + 3) & ~3;
  int32_t *e = (int32_t *)scratch;
  int16_t *kb = (int16_t *)(e + Nk), *vt = kb + Nk * K4d, *qa = vt + d * K4n, *pa = qa + 2 * K4d;
  int8_t *sr = (int8_t *)(pa + 2 * K4n);
  for (int32_t h = 0; h < heads; h++) {
    se_q15_rows(k + h * d, D, 1, Nk, d, p[1], kb);
    se_q15_rows(v + h * d, 1, D, d, Nk, p[8], vt); /* V_h transposed: row c = column h*d+c of v */
    for (int32_t i = 0; i < Nq; i += 2) {
      const int32_t two = i + 1 < Nq;
      se_q15_rows(q + i * D + h * d, D, 1, 1 + two, d, p[0], qa);
      se_mm2_q15(qa, two ? qa + K4d : 0, kb, Nk, K4d, sr, sr + Nk, 1, p[2], p[3], p[4], p[5], p[6]);
      se_softmax(sr, sr, 1 + two, Nk, lut, e);
      se_q15_rows(sr, Nk, 1, 1 + two, Nk, p[7], pa);
      se_mm2_q15(pa, two ? pa + K4n : 0, vt, d, K4n, o + i * D + h * d, o + (i + 1) * D + h * d, 1, p[9], p[10],
                 p[11], p[12], p[13]);
    }
  }
}

static uint32_t se_isqrt64(uint64_t v) {
  uint64_t res = 0, bit = 1ull << 62;
  while (bit > v) bit >>= 2;
  while (bit) {
    if (v >= res + bit) {
      v -= res + bit;
      res = (res >> 1) + bit;
    } else {
      res >>= 1;
    }
    bit >>= 2;
  }
  return (uint32_t)res;
}

/* intref.layernorm on (N, D) tokens */
void se_layernorm(const int8_t *x, int8_t *y, int32_t N, int32_t D, const int32_t *gamma, const int32_t *beta,
                  int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min, int32_t act_max) {
  for (int32_t n = 0; n < N; n++) {
    const int8_t *xr = x + n * D;
    int32_t s = 0, q = 0;
    for (int32_t j = 0; j < D; j++) {
      s += xr[j];
      q += xr[j] * xr[j];
    }
    const int64_t V = (int64_t)D * q - (int64_t)s * s;
    uint32_t sigma = se_isqrt64((uint64_t)V);
    sigma = sigma ? sigma : 1u;
    const int64_t inv = (int64_t)((1ull << 40) / sigma);
    int8_t *yr = y + n * D;
    for (int32_t j = 0; j < D; j++) {
      const int32_t nj = (int32_t)(((int64_t)(D * xr[j] - s) * inv + (1ll << 29)) >> 30);
      yr[j] = se_requant(nj * gamma[j] + beta[j], mult, shift, out_zp, act_min, act_max);
    }
  }
}

/* intref.add (TFLite int8 ADD, left shift 20) over n elements */
void se_add(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, int32_t a_zp, int32_t b_zp,
            const int32_t *p /* a_mult, a_shift, b_mult, b_shift, out_mult, out_shift */, int32_t out_zp,
            int32_t act_min, int32_t act_max) {
  for (int32_t i = 0; i < n; i++) {
    const int32_t sa = se_mbqm((a[i] - a_zp) * (1 << 20), p[0], p[1]);
    const int32_t sb = se_mbqm((b[i] - b_zp) * (1 << 20), p[2], p[3]);
    y[i] = se_requant(sa + sb, p[4], p[5], out_zp, act_min, act_max);
  }
}

/* intref.maxpool, k x k window, stride s, no padding */
void se_maxpool(const int8_t *x, int8_t *y, int32_t H, int32_t W, int32_t C, int32_t k, int32_t s, int32_t Ho,
                int32_t Wo, int32_t act_min, int32_t act_max) {
  (void)H;
  for (int32_t oy = 0; oy < Ho; oy++) {
    for (int32_t ox = 0; ox < Wo; ox++) {
      int8_t *yo = y + (oy * Wo + ox) * C;
      for (int32_t c = 0; c < C; c++) {
        int32_t m = -129;
        for (int32_t ky = 0; ky < k; ky++) {
          for (int32_t kx = 0; kx < k; kx++) {
            const int32_t v = x[((oy * s + ky) * W + ox * s + kx) * C + c];
            m = v > m ? v : m;
          }
        }
        m = m < act_min ? act_min : m;
        yo[c] = (int8_t)(m > act_max ? act_max : m);
      }
    }
  }
}

/* intref.avgpool with a global window: (H, W, C) -> (C); round half away from zero */
void se_avgpool_global(const int8_t *x, int8_t *y, int32_t HW, int32_t C, int32_t act_min, int32_t act_max,
                       int32_t *acc) {
  for (int32_t c = 0; c < C; c++) acc[c] = 0;
  for (int32_t p = 0; p < HW; p++) {
    const int8_t *xp = x + p * C;
    for (int32_t c = 0; c < C; c++) acc[c] += xp[c];
  }
  const int32_t half = HW / 2;
  for (int32_t c = 0; c < C; c++) {
    const int32_t t = acc[c];
    int32_t v = t > 0 ? (t + half) / HW : (t - half) / HW;
    v = v < act_min ? act_min : v;
    y[c] = (int8_t)(v > act_max ? act_max : v);
  }
}
