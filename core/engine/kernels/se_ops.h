/* SparseEngine shape-generic kernels (se_ops.c); the specialised conv kernels are generated. */
#ifndef SE_OPS_H
#define SE_OPS_H
#include "se_common.h"

void se_q15_rows(const int8_t *src, int32_t row_stride, int32_t elem_stride, int32_t rows, int32_t K,
                 int32_t zp, int16_t *dst);
void se_mm2_q15(const int16_t *a0, const int16_t *a1, const int16_t *B, int32_t N, int32_t K4, int8_t *out0,
                int8_t *out1, int32_t ostride, int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min,
                int32_t act_max);
void se_matmul_qk(const int8_t *q, const int8_t *k, int8_t *s, int32_t Nq, int32_t Nk, int32_t D, int32_t heads,
                  int32_t q_zp, int32_t k_zp, int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min,
                  int32_t act_max, int16_t *scratch);
void se_matmul_av(const int8_t *p, const int8_t *v, int8_t *o, int32_t heads, int32_t Nq, int32_t Nk, int32_t D,
                  int32_t p_zp, int32_t v_zp, int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min,
                  int32_t act_max, int16_t *scratch);
void se_softmax(const int8_t *x, int8_t *y, int32_t rows, int32_t L, const int32_t *lut, int32_t *e);
void se_attention(const int8_t *q, const int8_t *k, const int8_t *v, int8_t *o, int32_t Nq, int32_t Nk, int32_t D,
                  int32_t heads, const int32_t *p, const int32_t *lut, int8_t *scratch);
void se_layernorm(const int8_t *x, int8_t *y, int32_t N, int32_t D, const int32_t *gamma, const int32_t *beta,
                  int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min, int32_t act_max);
void se_add(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, int32_t a_zp, int32_t b_zp, const int32_t *p,
            int32_t out_zp, int32_t act_min, int32_t act_max);
void se_maxpool(const int8_t *x, int8_t *y, int32_t H, int32_t W, int32_t C, int32_t k, int32_t s, int32_t Ho,
                int32_t Wo, int32_t act_min, int32_t act_max);
void se_avgpool_global(const int8_t *x, int8_t *y, int32_t HW, int32_t C, int32_t act_min, int32_t act_max,
                       int32_t *acc);
#endif
