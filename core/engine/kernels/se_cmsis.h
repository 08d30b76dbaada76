/* SparseEngine -> CMSIS-NN glue (se_cmsis.c); included by generated programs with CMSIS-NN layers. */
#ifndef SE_CMSIS_H
#define SE_CMSIS_H
#include <stdint.h>

extern volatile int32_t se_cmsis_status;       /* first non-success arm_cmsis_nn_status, 0 if none */
extern volatile int32_t se_cmsis_failed_layer; /* the layer that returned it */

void se_cmsis_conv(int32_t layer, const int8_t *in, int32_t H, int32_t W, int32_t Cin, const int8_t *wt,
                   const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out, int32_t Ho,
                   int32_t Wo, int32_t Cout, int32_t kh, int32_t kw, int32_t stride, int32_t pad, int32_t in_zp,
                   int32_t out_zp, int32_t act_min, int32_t act_max, void *buf, int32_t buf_bytes);
void se_cmsis_dwconv(int32_t layer, const int8_t *in, int32_t H, int32_t W, int32_t C, const int8_t *wt,
                     const int32_t *bias, const int32_t *mult, const int32_t *shift, int8_t *out, int32_t Ho,
                     int32_t Wo, int32_t kh, int32_t kw, int32_t stride, int32_t pad, int32_t in_zp, int32_t out_zp,
                     int32_t act_min, int32_t act_max, void *buf, int32_t buf_bytes);
void se_cmsis_fc(int32_t layer, const int8_t *in, int32_t N, int32_t Cin, const int8_t *wt, const int32_t *bias,
                 const int32_t *mult, const int32_t *shift, int32_t per_channel, int8_t *out, int32_t Cout,
                 int32_t in_zp, int32_t out_zp, int32_t act_min, int32_t act_max);
void se_cmsis_matmul_qk(int32_t layer, const int8_t *q, const int8_t *k, int8_t *s, int32_t Nq, int32_t Nk,
                        int32_t D, int32_t heads, int32_t q_zp, int32_t k_zp, int32_t mult, int32_t shift,
                        int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *buf);
void se_cmsis_matmul_av(int32_t layer, const int8_t *p, const int8_t *v, int8_t *o, int32_t heads, int32_t Nq,
                        int32_t Nk, int32_t D, int32_t p_zp, int32_t v_zp, int32_t mult, int32_t shift,
                        int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *buf);
void se_cmsis_softmax(int32_t layer, const int8_t *x, int8_t *y, int32_t rows, int32_t L, int32_t mult,
                      int32_t shift, int32_t diff_min);
#endif
