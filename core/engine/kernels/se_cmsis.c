/* SparseEngine -> CMSIS-NN glue: the engine's call convention (HWC int8 tensors, per-channel
 * multiplier/shift arrays, zero points) mapped onto CMSIS-NN's structs. Compiled only into programs
 * that run layers on CMSIS-NN (core/engine/cmsis.py builds the library from the user's checkout).
 * CMSIS-NN's conventions: input_offset = -input zero point, output_offset = +output zero point,
 * filter layouts [Cout, kh, kw, Cin] (conv), [1, kh, kw, C] (depthwise), [Cout, Cin] (fully connected)
 * -- the engine's dense layouts for conv (OHWI, unpacked) and depthwise (tap-major) are these.
 * A non-success status is stored in se_cmsis_status (read by the host after the run). */
#include <stdbool.h>

#include "arm_nnfunctions.h"
#include "arm_nnsupportfunctions.h"
#include "se_cmsis.h"

volatile int32_t se_cmsis_status = 0;
volatile int32_t se_cmsis_failed_layer = -1;

static void se_cmsis_check(arm_cmsis_nn_status st, int32_t layer) {
  if (st != ARM_CMSIS_NN_SUCCESS && se_cmsis_status == 0) {
    se_cmsis_status = (int32_t)st;
    se_cmsis_failed_layer = layer;
  }
}

void se_cmsis_conv(int32_t layer, const int8_t *in, int32_t H, int32_t W, int32_t Cin, const int8_t *wt,
                   const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out, int32_t Ho,
                   int32_t Wo, int32_t Cout, int32_t kh, int32_t kw, int32_t stride, int32_t pad, int32_t in_zp,
                   int32_t out_zp, int32_t act_min, int32_t act_max, void *buf, int32_t buf_bytes) {
  const cmsis_nn_conv_params cp = {-in_zp, out_zp, {stride, stride}, {pad, pad}, {1, 1}, {act_min, act_max}};
  const cmsis_nn_per_channel_quant_params qp = {(int32_t *)mult, (int32_t *)shift};
  const cmsis_nn_dims id = {1, H, W, Cin}, fd = {Cout, kh, kw, Cin}, bd = {1, 1, 1, Cout}, od = {1, Ho, Wo, Cout};
  if (arm_convolve_wrapper_s8_get_buffer_size(&cp, &id, &fd, &od) > buf_bytes) {
    se_cmsis_check(ARM_CMSIS_NN_ARG_ERROR, layer);
    return;
  }
  const cmsis_nn_context ctx = {buf, buf_bytes};
  se_cmsis_check(arm_convolve_wrapper_s8(&ctx, &cp, &qp, &id, in, &fd, wt, &bd, bias, &od, out), layer);
}

void se_cmsis_dwconv(int32_t layer, const int8_t *in, int32_t H, int32_t W, int32_t C, const int8_t *wt,
                     const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out, int32_t Ho,
                     int32_t Wo, int32_t kh, int32_t kw, int32_t stride, int32_t pad, int32_t in_zp, int32_t out_zp,
                     int32_t act_min, int32_t act_max, void *buf, int32_t buf_bytes) {
  const cmsis_nn_dw_conv_params dp = {-in_zp, out_zp, 1, {stride, stride}, {pad, pad}, {1, 1}, {act_min, act_max}};
  const cmsis_nn_per_channel_quant_params qp = {(int32_t *)mult, (int32_t *)shift};
  const cmsis_nn_dims id = {1, H, W, C}, fd = {1, kh, kw, C}, bd = {1, 1, 1, C}, od = {1, Ho, Wo, C};
  if (arm_depthwise_conv_wrapper_s8_get_buffer_size(&dp, &id, &fd, &od) > buf_bytes) {
    se_cmsis_check(ARM_CMSIS_NN_ARG_ERROR, layer);
    return;
  }
  const cmsis_nn_context ctx = {buf, buf_bytes};
  se_cmsis_check(arm_depthwise_conv_wrapper_s8(&ctx, &dp, &qp, &id, in, &fd, wt, &bd, bias, &od, out), layer);
}

void se_cmsis_fc(int32_t layer, const int8_t *in, int32_t N, int32_t Cin, const int8_t *wt, const int32_t *bias,
                 const int32_t *mult, const int32_t *shift, int32_t per_channel, int8_t *out, int32_t Cout,
                 int32_t in_zp, int32_t out_zp, int32_t act_min, int32_t act_max) {
  const cmsis_nn_fc_params fp = {-in_zp, 0, out_zp, {act_min, act_max}};
  const cmsis_nn_dims id = {N, 1, 1, Cin}, fd = {Cin, 1, 1, Cout}, bd = {1, 1, 1, Cout}, od = {N, 1, 1, Cout};
  const cmsis_nn_context ctx = {0, 0};
  if (per_channel) {
    const cmsis_nn_per_channel_quant_params qp = {(int32_t *)mult, (int32_t *)shift};
    se_cmsis_check(arm_fully_connected_per_channel_s8(&ctx, &fp, &qp, &id, in, &fd, wt, &bd, bias, &od, out), layer);
  } else {
    const cmsis_nn_per_tensor_quant_params qp = {mult[0], shift[0]};
    se_cmsis_check(arm_fully_connected_s8(&ctx, &fp, &qp, &id, in, &fd, wt, &bd, bias, &od, out), layer);
  }
}

/* rows x cols int8 block at src (row stride src_stride, element stride elem) -> contiguous dst */
static void se_cmsis_gather(const int8_t *src, int32_t src_stride, int32_t elem, int32_t rows, int32_t cols,
                            int8_t *dst) {
  for (int32_t r = 0; r < rows; r++, src += src_stride)
    for (int32_t c = 0; c < cols; c++) *dst++ = src[c * elem];
}

void se_cmsis_matmul_qk(int32_t layer, const int8_t *q, const int8_t *k, int8_t *s, int32_t Nq, int32_t Nk,
                        int32_t D, int32_t heads, int32_t q_zp, int32_t k_zp, int32_t mult, int32_t shift,
                        int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *buf) {
  const int32_t d = D / heads;
  const cmsis_nn_bmm_params bp = {false, false, {-q_zp, -k_zp, out_zp, {act_min, act_max}}};
  const cmsis_nn_per_tensor_quant_params qp = {mult, shift};
  const cmsis_nn_dims ld = {1, 1, Nq, d}, rd = {1, 1, Nk, d}, od = {1, 1, Nq, Nk};
  const cmsis_nn_context ctx = {0, 0};
  int8_t *qh = buf, *kh = buf + Nq * d;
  for (int32_t h = 0; h < heads; h++) {
    const int8_t *lhs = q + h * d, *rhs = k + h * d;
    if (heads > 1) { /* a head's columns are strided: gather them (a transpose in a TFLM graph) */
      se_cmsis_gather(q + h * d, D, 1, Nq, d, qh);
      se_cmsis_gather(k + h * d, D, 1, Nk, d, kh);
      lhs = qh;
      rhs = kh;
    }
    se_cmsis_check(arm_batch_matmul_s8(&ctx, &bp, &qp, &ld, lhs, &rd, rhs, &od, s + h * Nq * Nk), layer);
  }
}

void se_cmsis_matmul_av(int32_t layer, const int8_t *p, const int8_t *v, int8_t *o, int32_t heads, int32_t Nq,
                        int32_t Nk, int32_t D, int32_t p_zp, int32_t v_zp, int32_t mult, int32_t shift,
                        int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *buf) {
  const int32_t d = D / heads;
  for (int32_t h = 0; h < heads; h++) {
    se_cmsis_gather(v + h * d, 1, D, d, Nk, buf); /* V_h^T: row c = column h*d + c of v */
    const int8_t *ph = p + h * Nq * Nk;
    for (int32_t i = 0; i < Nq; i++)
      se_cmsis_check(arm_nn_vec_mat_mult_t_s8(ph + i * Nk, buf, 0, 0, o + i * D + h * d, -p_zp, out_zp, mult, shift,
                                              Nk, d, act_min, act_max, 1, -v_zp),
                     layer);
  }
}

void se_cmsis_softmax(int32_t layer, const int8_t *x, int8_t *y, int32_t rows, int32_t L, int32_t mult,
                      int32_t shift, int32_t diff_min) {
  (void)layer;
  arm_softmax_s8(x, rows, L, mult, shift, diff_min, y);
}
