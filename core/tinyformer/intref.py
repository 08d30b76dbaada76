"""Integer-only reference of every int8 operator: the ground truth the C kernels must match bit for bit.

Layouts (no batch axis): feature maps are HWC `(H, W, C)` int8; tokens are `(N, D)` int8 (the HWC
map viewed as N = H·W rows, no data movement); attention maps are `(heads, N, N)` int8. Weights:
conv `(Cout, kh, kw, Cin)`, depthwise `(C, kh, kw, 1)`, linear `(Dout, Din)`, all int8, symmetric
(zero point 0). Biases are int32. Activations are asymmetric int8: real = scale·(q − zero_point).

Common rules (C must do exactly this):

* Sums are int32 accumulators. This module computes them in int64 and raises `WorkbenchError` if any
  accumulator, or any intermediate stated as int32 below, leaves the int32 range.
* "requant(acc)" means `qmath.requantize`: clamp(MBQM(acc, mult, shift) + out_zp, act_min, act_max)
  with MBQM = TFLite MultiplyByQuantizedMultiplier (see `core.tinyformer.qmath`). Per-channel
  `mult[c], shift[c]` index the output channel (last axis).
* ReLU / ReLU6 are not separate ops: they are `act_min/act_max` (see `qmath.activation_range`).
* Spatial padding `pad = (ph, pw)` is symmetric (ph rows at top AND bottom, pw columns left AND
  right, PyTorch semantics); output size Ho = (H + 2·ph − kh) // sh + 1, likewise Wo. Taps that fall
  in the padding are skipped: for convolutions that equals padding with the input zero point (real
  0); for pooling they are excluded from the max and from the average's count (TFLite semantics).
* `>>` is an arithmetic (floor) shift on signed values; "/" in the formulas is C truncating division
  of non-negative operands unless stated.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from core.errors import WorkbenchError
from core.tinyformer.qmath import (
    ADD_LEFT_SHIFT,
    INT8_MAX,
    INT8_MIN,
    LN_NORM_FRAC_BITS,
    LN_RECIP_BITS,
    SOFTMAX_OUT_ZP,
    SOFTMAX_RECIP_BITS,
    check_int32,
    isqrt_floor,
    multiply_by_quantized_multiplier,
    requantize,
)

Pair = tuple[int, int]


def _pair(v: int | Pair) -> Pair:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _int8(x: np.ndarray, name: str, ndim: int) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim != ndim:
        raise WorkbenchError(f"{name} must be an int8 array with {ndim} dims, got {x.dtype} {x.shape}")
    return x


def _windows(x: np.ndarray, kernel: Pair, stride: Pair, pad: Pair, fill: int) -> np.ndarray:
    """(H, W, C) int64 -> (Ho, Wo, C, kh, kw) view of the padded input (`fill` in the padding)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, pad
    h, w = x.shape[0] + 2 * ph, x.shape[1] + 2 * pw
    if kh > h or kw > w or min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
        raise WorkbenchError(f"kernel {kernel}, stride {stride}, pad {pad} do not fit input {x.shape[:2]}")
    xp = np.pad(x, ((ph, ph), (pw, pw), (0, 0)), constant_values=fill)  # (H+2ph, W+2pw, C)
    return sliding_window_view(xp, (kh, kw), axis=(0, 1))[::sh, ::sw]  # (Ho, Wo, C, kh, kw)


def conv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, *, in_zp: int, out_zp: int,
           mult: np.ndarray, shift: np.ndarray, stride: int | Pair = 1, pad: int | Pair = 0,
           act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """Convolution, int8 HWC in -> int8 HWC out, per-output-channel requantization.

    x (H, W, Cin), w (Cout, kh, kw, Cin), bias (Cout,) int32 or None (= 0), mult/shift (Cout,).
    acc[oy, ox, o] = bias[o] + Σ_{ky, kx, i} (x[oy·sh − ph + ky, ox·sw − pw + kx, i] − in_zp)·w[o, ky, kx, i]
    (out-of-bounds taps skipped); out[oy, ox, o] = requant(acc, mult[o], shift[o]).
    """
    x, w = _int8(x, "conv2d input", 3), _int8(w, "conv2d weight", 4)
    cout, kh, kw, cin = w.shape
    if x.shape[2] != cin:
        raise WorkbenchError(f"conv2d input has {x.shape[2]} channels but the weight expects {cin}")
    win = _windows(x.astype(np.int64) - int(in_zp), (kh, kw), _pair(stride), _pair(pad), 0)
    ho, wo = win.shape[:2]
    cols = win.transpose(0, 1, 3, 4, 2).reshape(ho * wo, kh * kw * cin)  # (Ho·Wo, kh·kw·Cin)
    acc = cols @ w.reshape(cout, -1).astype(np.int64).T  # (Ho·Wo, Cout)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    check_int32(acc, "conv2d accumulator")
    return requantize(acc, mult, shift, out_zp, act_min, act_max).reshape(ho, wo, cout)


def dwconv2d(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, *, in_zp: int, out_zp: int,
             mult: np.ndarray, shift: np.ndarray, stride: int | Pair = 1, pad: int | Pair = 0,
             act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """Depthwise convolution (depth multiplier 1), int8 HWC -> int8 HWC, per-channel requantization.

    x (H, W, C), w (C, kh, kw, 1), bias (C,) int32 or None, mult/shift (C,).
    acc[oy, ox, c] = bias[c] + Σ_{ky, kx} (x[oy·sh − ph + ky, ox·sw − pw + kx, c] − in_zp)·w[c, ky, kx, 0]
    (out-of-bounds taps skipped); out = requant(acc, mult[c], shift[c]).
    """
    x, w = _int8(x, "dwconv2d input", 3), _int8(w, "dwconv2d weight", 4)
    c, kh, kw, one = w.shape
    if one != 1 or x.shape[2] != c:
        raise WorkbenchError(f"dwconv2d weight {w.shape} does not match input channels {x.shape[2]}")
    win = _windows(x.astype(np.int64) - int(in_zp), (kh, kw), _pair(stride), _pair(pad), 0)
    acc = np.einsum("yxcij,cij->yxc", win, w[..., 0].astype(np.int64))  # (Ho, Wo, C)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    check_int32(acc, "dwconv2d accumulator")
    return requantize(acc, mult, shift, out_zp, act_min, act_max)


def linear(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None, *, in_zp: int, out_zp: int,
           mult: int | np.ndarray, shift: int | np.ndarray, act_min: int = INT8_MIN,
           act_max: int = INT8_MAX) -> np.ndarray:
    """Fully connected layer on tokens: x (N, Din) int8, w (Dout, Din) int8 -> (N, Dout) int8.

    acc[n, o] = bias[o] + Σ_i (x[n, i] − in_zp)·w[o, i]; out = requant(acc, mult, shift). Weights are
    per-tensor (mult/shift scalars); (Dout,) arrays are accepted and index the output feature.
    """
    x, w = _int8(x, "linear input", 2), _int8(w, "linear weight", 2)
    if x.shape[1] != w.shape[1]:
        raise WorkbenchError(f"linear input has {x.shape[1]} features but the weight expects {w.shape[1]}")
    acc = (x.astype(np.int64) - int(in_zp)) @ w.astype(np.int64).T  # (N, Dout)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    check_int32(acc, "linear accumulator")
    return requantize(acc, mult, shift, out_zp, act_min, act_max)


def _heads(t: np.ndarray, heads: int) -> np.ndarray:
    """(N, D) -> (heads, N, D/heads): head h owns columns [h·d, (h+1)·d) (a strided view, no copy in C)."""
    n, dim = t.shape
    if heads < 1 or dim % heads:
        raise WorkbenchError(f"embedding dim {dim} is not divisible by heads={heads}")
    return t.reshape(n, heads, dim // heads).transpose(1, 0, 2)  # (heads, N, d)


def matmul_qk(q: np.ndarray, k: np.ndarray, *, heads: int, q_zp: int, k_zp: int, out_zp: int,
              mult: int, shift: int, act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """Attention scores S_h = Q_h K_hᵀ (the 1/√d factor lives in the multiplier): -> (heads, Nq, Nk) int8.

    q (Nq, D), k (Nk, D) int8 with heads concatenated along D (d = D / heads, head h = columns h·d … h·d+d−1).
    acc[h, i, j] = Σ_{c<d} (q[i, h·d+c] − q_zp)·(k[j, h·d+c] − k_zp); out = requant(acc, mult, shift)
    (per-tensor).
    """
    q, k = _int8(q, "matmul_qk q", 2), _int8(k, "matmul_qk k", 2)
    if q.shape[1] != k.shape[1]:
        raise WorkbenchError(f"matmul_qk needs q and k of one width D, got {q.shape} and {k.shape}")
    qh = _heads(q.astype(np.int64) - int(q_zp), heads)  # (heads, Nq, d)
    kh = _heads(k.astype(np.int64) - int(k_zp), heads)  # (heads, Nk, d)
    acc = qh @ kh.transpose(0, 2, 1)  # (heads, Nq, Nk)
    check_int32(acc, "matmul_qk accumulator")
    return requantize(acc, mult, shift, out_zp, act_min, act_max)


def matmul_av(p: np.ndarray, v: np.ndarray, *, p_zp: int, v_zp: int, out_zp: int, mult: int, shift: int,
              act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """Attention output O_h = P_h V_h, heads concatenated: p (heads, Nq, Nk), v (Nk, D) -> (Nq, D) int8.

    acc[i, h·d+c] = Σ_j (p[h, i, j] − p_zp)·(v[j, h·d+c] − v_zp); out = requant(acc, mult, shift)
    (per-tensor). p is normally a softmax output (p_zp = −128). Attention pooling uses heads = 1,
    Nq = 1 (one learned query).
    """
    p, v = _int8(p, "matmul_av p", 3), _int8(v, "matmul_av v", 2)
    heads, nq, nk = p.shape
    if v.shape[0] != nk:
        raise WorkbenchError(f"matmul_av shapes do not chain: p {p.shape}, v {v.shape}")
    vh = _heads(v.astype(np.int64) - int(v_zp), heads)  # (heads, Nk, d)
    acc = (p.astype(np.int64) - int(p_zp)) @ vh  # (heads, Nq, d)
    acc = acc.transpose(1, 0, 2).reshape(nq, v.shape[1])  # (Nq, heads·d): concat heads
    check_int32(acc, "matmul_av accumulator")
    return requantize(acc, mult, shift, out_zp, act_min, act_max)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, *, heads: int, q_zp: int, k_zp: int, s_zp: int,
              s_mult: int, s_shift: int, s_min: int, s_max: int, lut: np.ndarray, p_zp: int, v_zp: int,
              out_zp: int, mult: int, shift: int, act_min: int = INT8_MIN, act_max: int = INT8_MAX,
              rows: int = 2) -> np.ndarray:
    """Row-tiled attention: q (Nq, D), k (Nk, D), v (Nk, D) int8 -> (Nq, D) int8, no (heads, Nq, Nk) map.

    For each tile of `rows` query rows: S = `matmul_qk` of the tile (s_mult, s_shift, s_zp, clamp
    [s_min, s_max]), P = `softmax`(S, lut), O[tile] = `matmul_av`(P, v) (mult, shift, out_zp, clamp
    [act_min, act_max]). Every row of S is requantized and normalised on its own, so the result is
    bit for bit the three ops on the whole map; only `heads·rows·Nk` scores exist at a time.
    """
    q, k, v = _int8(q, "attention q", 2), _int8(k, "attention k", 2), _int8(v, "attention v", 2)
    if rows < 1:
        raise WorkbenchError(f"attention row tile {rows} must be at least 1 query row")
    out = np.empty((q.shape[0], v.shape[1]), np.int8)
    for i in range(0, q.shape[0], rows):
        s = matmul_qk(q[i : i + rows], k, heads=heads, q_zp=q_zp, k_zp=k_zp, out_zp=s_zp, mult=s_mult,
                      shift=s_shift, act_min=s_min, act_max=s_max)  # (heads, rows, Nk)
        out[i : i + rows] = matmul_av(softmax(s, lut), v, p_zp=p_zp, v_zp=v_zp, out_zp=out_zp, mult=mult,
                                      shift=shift, act_min=act_min, act_max=act_max)
    return out


def softmax(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Integer softmax over the last axis: int8 (..., L) -> int8 (..., L), output scale 1/256, zp −128.

    lut = `qmath.softmax_lut(input_scale)`: int32[256], lut[d] = round(2^16·exp(−s_in·d)). Per row:
      m = max_j x_j;  e_j = lut[m − x_j]            (index in [0, 255]; e_j ≤ 2^16)
      S = Σ_j e_j                                   (int32; 2^16 ≤ S ≤ L·2^16, so L ≤ 32767)
      R = ⌊2^46 / S⌋                                (int64 division once per row; R ≤ 2^30)
      y_j = (e_j·R + 2^37) >> 38                    (int64; ≈ round(256·e_j / S))
      out_j = min(y_j − 128, 127)                   (y_j ≥ 0, so only the upper clamp can bite)
    """
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim < 1:
        raise WorkbenchError(f"softmax input must be an int8 array, got {x.dtype} {x.shape}")
    lut = np.asarray(lut)
    if lut.shape != (256,) or lut.min() < 0 or lut.max() > 1 << 16:
        raise WorkbenchError("softmax LUT must be 256 int32 entries in [0, 2^16] (see qmath.softmax_lut)")
    if x.shape[-1] > 32767:
        raise WorkbenchError(f"softmax row length {x.shape[-1]} exceeds 32767 (int32 sum of exp)")
    xi = x.astype(np.int64)
    e = lut.astype(np.int64)[xi.max(axis=-1, keepdims=True) - xi]  # (..., L)
    s = check_int32(e.sum(axis=-1, keepdims=True), "softmax sum")  # (..., 1)
    r = (np.int64(1) << SOFTMAX_RECIP_BITS) // s
    shift = SOFTMAX_RECIP_BITS - 8
    y = (e * r + (np.int64(1) << (shift - 1))) >> shift
    return np.clip(y + SOFTMAX_OUT_ZP, INT8_MIN, INT8_MAX).astype(np.int8)


def layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, *, out_zp: int, mult: int, shift: int,
              act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """Integer LayerNorm over the last axis: x (N, D) int8 -> (N, D) int8. The input zero point cancels.

    gamma (D,) int32 (|γ_q| ≤ 32767), beta (D,) int32, from `quant`: γ_q = round(γ/s_γ),
    β_q = round(β·2^10/s_γ), real multiplier s_γ·2^−10/s_out -> (mult, shift). Per row (x_j raw int8):
      s = Σ_j x_j,  q = Σ_j x_j²                     (int32)
      V = D·q − s²                                   (int64; = D²·var)
      σ = max(⌊√V⌋, 1)                               (exact integer floor square root; ≈ D·std)
      inv = ⌊2^40 / σ⌋                               (int64 division once per row)
      n_j = ((D·x_j − s)·inv + 2^29) >> 30           (int64 product; n_j ≈ 2^10·(x_j − mean)/std)
      acc_j = n_j·γ_q[j] + β_q[j]                    (int32)
      out_j = requant(acc_j, mult, shift)            (per-tensor)
    This is the paper's (x − mean)·⌊2^k/⌊√var⌋⌋ computed in units of D (so the square root keeps
    log2(D) more bits) with k = 40 and the result held in Q10.
    """
    x = _int8(x, "layernorm input", 2)
    d = x.shape[1]
    xi = x.astype(np.int64)
    s = check_int32(xi.sum(axis=1, keepdims=True), "layernorm sum")  # (N, 1)
    q = check_int32((xi * xi).sum(axis=1, keepdims=True), "layernorm sum of squares")  # (N, 1)
    sigma = np.maximum(isqrt_floor(d * q - s * s), 1)  # (N, 1)
    inv = (np.int64(1) << LN_RECIP_BITS) // sigma
    dev = check_int32(d * xi - s, "layernorm deviation")  # (N, D)
    rshift = LN_RECIP_BITS - LN_NORM_FRAC_BITS
    n = (dev * inv + (np.int64(1) << (rshift - 1))) >> rshift
    acc = check_int32(n * np.asarray(gamma, dtype=np.int64) + np.asarray(beta, dtype=np.int64),
                      "layernorm accumulator")
    return requantize(acc, mult, shift, out_zp, act_min, act_max)


def add(a: np.ndarray, b: np.ndarray, *, a_zp: int, b_zp: int, out_zp: int, a_mult: int, a_shift: int,
        b_mult: int, b_shift: int, out_mult: int, out_shift: int, act_min: int = INT8_MIN,
        act_max: int = INT8_MAX) -> np.ndarray:
    """Element-wise a + b of two int8 tensors of equal shape with different scales (TFLite int8 ADD).

    Parameters from `qmath.add_multipliers(s_a, s_b, s_out)`. Element-wise (all int32):
      a' = MBQM((a − a_zp)·2^20, a_mult, a_shift);  b' = MBQM((b − b_zp)·2^20, b_mult, b_shift)
      out = clamp(MBQM(a' + b', out_mult, out_shift) + out_zp, act_min, act_max)
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != np.int8 or b.dtype != np.int8 or a.shape != b.shape:
        raise WorkbenchError(f"add needs two int8 arrays of one shape, got {a.dtype}{a.shape}, "
                             f"{b.dtype}{b.shape}")
    sa = multiply_by_quantized_multiplier((a.astype(np.int64) - int(a_zp)) << ADD_LEFT_SHIFT, a_mult, a_shift)
    sb = multiply_by_quantized_multiplier((b.astype(np.int64) - int(b_zp)) << ADD_LEFT_SHIFT, b_mult, b_shift)
    return requantize(check_int32(sa + sb, "add sum"), out_mult, out_shift, out_zp, act_min, act_max)


def maxpool(x: np.ndarray, *, kernel: int | Pair, stride: int | Pair | None = None, pad: int | Pair = 0,
            act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """Max pooling, int8 HWC -> int8 HWC, same quantization in and out (stride defaults to kernel).

    out[oy, ox, c] = clamp(max over in-bounds taps of x, act_min, act_max); padded taps are ignored.
    """
    x = _int8(x, "maxpool input", 3)
    k = _pair(kernel)
    win = _windows(x.astype(np.int64), k, _pair(stride if stride is not None else k), _pair(pad),
                   INT8_MIN - 1)  # below any int8 value, so padding never wins
    return np.clip(win.max(axis=(3, 4)), act_min, act_max).astype(np.int8)


def avgpool(x: np.ndarray, *, kernel: int | Pair, stride: int | Pair | None = None, pad: int | Pair = 0,
            act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """Average pooling, int8 HWC -> int8 HWC, same quantization in and out (stride defaults to kernel).

    sum = Σ in-bounds x (raw int8, int32), cnt = number of in-bounds taps;
    avg = (sum + cnt/2)/cnt if sum > 0 else (sum − cnt/2)/cnt (C truncating division: round half away
    from zero, as TFLite); out = clamp(avg, act_min, act_max). Global pooling: kernel = (H, W) gives
    (1, 1, C), which the graph views as its (1, C) pooled token.
    """
    x = _int8(x, "avgpool input", 3)
    k, st, p = _pair(kernel), _pair(stride if stride is not None else kernel), _pair(pad)
    total = _windows(x.astype(np.int64), k, st, p, 0).sum(axis=(3, 4))  # (Ho, Wo, C)
    ones = np.ones((x.shape[0], x.shape[1], 1), dtype=np.int64)
    cnt = _windows(ones, k, st, p, 0).sum(axis=(3, 4))  # (Ho, Wo, 1)
    half = cnt // 2
    num = np.where(total > 0, total + half, total - half)
    avg = np.sign(num) * (np.abs(num) // cnt)  # truncating division
    return np.clip(avg, act_min, act_max).astype(np.int8)
