"""Integer reference ops: hand-computed cases and brute-force loops written from the docstrings."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import WorkbenchError
from core.tinyformer import intref, qmath

HALF = qmath.quantize_multiplier(0.5)   # (2^30, 0)
ONE = qmath.quantize_multiplier(1.0)    # (2^30, 1)


def _i8(a) -> np.ndarray:
    return np.asarray(a, dtype=np.int8)


def test_conv1x1_on_2x2x2_by_hand():
    x = _i8([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])                 # (H=2, W=2, C=2)
    w = _i8([[[[1, -2]]], [[[2, 3]]]])                              # (Cout=2, 1, 1, Cin=2)
    bias = np.array([10, -5], dtype=np.int32)
    m, s = np.array([HALF[0]] * 2), np.array([HALF[1]] * 2)
    y = intref.conv2d(x, w, bias, in_zp=1, out_zp=-3, mult=m, shift=s)
    # x - zp: (0,1) (2,3) (4,5) (6,7); ch0 acc = 10 + a - 2b = 8, 6, 4, 2; ch1 = -5 + 2a + 3b = -2, 8, 18, 28
    # ×0.5 -> 4, 3, 2, 1 and -1, 4, 9, 14; + (-3)
    assert y.tolist() == [[[1, -4], [0, 1]], [[-1, 6], [-2, 11]]]
    relu = intref.conv2d(x, w, bias, in_zp=1, out_zp=-3, mult=m, shift=s, act_min=-3)
    assert relu[0, 0].tolist() == [1, -3]


def _conv_loops(x, w, bias, in_zp, stride, pad, depthwise):
    """Direct loops over output pixels and taps, skipping taps outside the input."""
    h, wd, _ = x.shape
    cout, kh, kw, _ = w.shape
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    acc = np.zeros((ho, wo, cout), dtype=np.int64)
    for oy in range(ho):
        for ox in range(wo):
            for o in range(cout):
                total = int(bias[o])
                for ky in range(kh):
                    for kx in range(kw):
                        iy, ix = oy * stride - pad + ky, ox * stride - pad + kx
                        if 0 <= iy < h and 0 <= ix < wd:
                            xs = x[iy, ix, o:o + 1] if depthwise else x[iy, ix]
                            total += int(np.dot(xs.astype(np.int64) - in_zp, w[o, ky, kx].astype(np.int64)))
                acc[oy, ox, o] = total
    return acc


@pytest.mark.parametrize(("k", "stride", "pad", "hw"), [
    (3, 1, 1, (5, 6)), (3, 2, 1, (6, 5)), (1, 2, 0, (5, 5)), (5, 2, 2, (7, 7)), (3, 1, 0, (4, 4))])
@pytest.mark.parametrize("depthwise", [False, True])
def test_conv_and_dwconv_match_loops(k, stride, pad, hw, depthwise):
    rng = np.random.default_rng(k * 10 + stride + pad)
    cin = 3
    cout = cin if depthwise else 4
    x = rng.integers(-128, 128, (*hw, cin)).astype(np.int8)
    w = rng.integers(-127, 128, (cout, k, k, 1 if depthwise else cin)).astype(np.int8)
    bias = rng.integers(-3000, 3000, cout).astype(np.int32)
    m, s = qmath.quantize_multipliers(rng.uniform(0.0005, 0.01, cout))
    acc = _conv_loops(x, w, bias, -7, stride, pad, depthwise)
    want = qmath.requantize(acc, m, s, 5, -128, 127)
    op = intref.dwconv2d if depthwise else intref.conv2d
    got = op(x, w, bias, in_zp=-7, out_zp=5, mult=m, shift=s, stride=stride, pad=pad)
    assert got.dtype == np.int8 and np.array_equal(got, want)


def test_dwconv_all_ones_kernel_sums_neighbourhoods():
    x = _i8(np.arange(9).reshape(3, 3, 1))
    w = np.ones((1, 3, 3, 1), dtype=np.int8)
    m, s = np.array([ONE[0]]), np.array([ONE[1]])
    y = intref.dwconv2d(x, w, None, in_zp=0, out_zp=0, mult=m, shift=s, pad=1)
    # corner (0,0): 0+1+3+4 = 8; centre: 0+...+8 = 36; edge (0,1): 0+1+2+3+4+5 = 15
    assert y[..., 0].tolist() == [[8, 15, 12], [21, 36, 27], [20, 33, 24]]


def test_linear_by_hand():
    x = _i8([[1, 2, 3]])
    w = _i8([[1, 0, -1], [2, 2, 2]])
    y = intref.linear(x, w, np.array([0, 1], dtype=np.int32), in_zp=0, out_zp=0, mult=ONE[0], shift=ONE[1])
    assert y.tolist() == [[-2, 13]]


def test_matmuls_match_loops():
    rng = np.random.default_rng(3)
    n, nk, d, heads = 5, 7, 8, 2
    q = rng.integers(-128, 128, (n, d)).astype(np.int8)
    k = rng.integers(-128, 128, (nk, d)).astype(np.int8)
    m, s = qmath.quantize_multiplier(0.0007)
    dh = d // heads
    acc = np.zeros((heads, n, nk), dtype=np.int64)
    for h in range(heads):
        for i in range(n):
            for j in range(nk):
                cols = range(h * dh, h * dh + dh)
                acc[h, i, j] = sum((int(q[i, c]) - 3) * (int(k[j, c]) + 2) for c in cols)
    sc = intref.matmul_qk(q, k, heads=heads, q_zp=3, k_zp=-2, out_zp=1, mult=m, shift=s)
    assert np.array_equal(sc, qmath.requantize(acc, m, s, 1, -128, 127))
    acc2 = np.zeros((n, d), dtype=np.int64)
    for h in range(heads):
        for i in range(n):
            for c in range(dh):
                col = h * dh + c
                acc2[i, col] = sum((int(sc[h, i, j]) + 128) * (int(k[j, col]) + 2) for j in range(nk))
    out = intref.matmul_av(sc, k, p_zp=-128, v_zp=-2, out_zp=0, mult=m, shift=s)
    assert np.array_equal(out, qmath.requantize(acc2, m, s, 0, -128, 127))


def test_softmax_by_hand():
    lut = qmath.softmax_lut(0.1)
    # two equal logits: S = 2^17, R = 2^29, y = (2^45 + 2^37) >> 38 = 128 -> 0 (= 0.5 at scale 1/256, zp -128)
    assert intref.softmax(_i8([[5, 5]]), lut).tolist() == [[0, 0]]
    assert intref.softmax(_i8([[9, 9, 9, 9]]), lut).tolist() == [[-64] * 4]
    assert intref.softmax(_i8([[42]]), lut).tolist() == [[127]]             # 256 - 128 clamps to 127
    lut2 = qmath.softmax_lut(np.log(2.0))                                    # e = 2^16, 2^15: p = 2/3, 1/3
    # round(170.67) - 128, round(85.33) - 128
    assert intref.softmax(_i8([[1, 0]]), lut2).tolist() == [[43, -43]]


def test_softmax_matches_float_within_one_lsb():
    rng = np.random.default_rng(4)
    scale = 0.07
    x = rng.integers(-128, 128, (3, 16, 16)).astype(np.int8)
    got = (intref.softmax(x, qmath.softmax_lut(scale)).astype(np.float64) + 128) / 256
    z = x.astype(np.float64) * scale
    want = np.exp(z - z.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    assert np.max(np.abs(got - np.minimum(want, 255 / 256))) <= 1 / 256 + 1e-12


def test_layernorm_by_hand():
    m, s = qmath.quantize_multiplier(2.0 ** -10)
    gamma, beta = np.array([100, 100]), np.array([0, 5])
    # x = [-1, 1]: s=0, V=2·2=4, σ=2, inv=2^39, dev=±2, n=±1024 (±1.0 in Q10); acc = -102400, 102405
    y = intref.layernorm(_i8([[-1, 1]]), gamma, beta, out_zp=3, mult=m, shift=s)
    assert y.tolist() == [[-97, 103]]
    # a constant row has zero variance: n = 0, so the output is β alone
    assert intref.layernorm(_i8([[7, 7]]), gamma, beta, out_zp=3, mult=m, shift=s).tolist() == [[3, 3]]


def test_layernorm_matches_float_within_two_lsb():
    rng = np.random.default_rng(5)
    n, d = 16, 48
    x = rng.integers(-100, 120, (n, d)).astype(np.int8)
    g_real, b_real = rng.uniform(-1.5, 1.5, d), rng.uniform(-0.5, 0.5, d)
    s_out, zp_out = 0.03, -4
    s_g = np.abs(g_real).max() / 32767
    gq = np.round(g_real / s_g).astype(np.int64)
    bq = np.round(b_real * 1024 / s_g).astype(np.int64)
    m, s = qmath.quantize_multiplier(s_g / 1024 / s_out)
    got = intref.layernorm(x, gq, bq, out_zp=zp_out, mult=m, shift=s).astype(np.int64)
    xf = x.astype(np.float64)
    nrm = (xf - xf.mean(1, keepdims=True)) / xf.std(1, keepdims=True)
    want = np.clip(np.round((nrm * g_real + b_real) / s_out) + zp_out, -128, 127)
    assert np.max(np.abs(got - want)) <= 2


def test_add_by_hand_and_against_float():
    p = qmath.add_multipliers(1.0, 1.0, 1.0)
    assert intref.add(_i8([3, -4]), _i8([4, -6]), a_zp=0, b_zp=0, out_zp=0, **p).tolist() == [7, -10]
    rng = np.random.default_rng(6)
    a = rng.integers(-128, 128, 500).astype(np.int8)
    b = rng.integers(-128, 128, 500).astype(np.int8)
    sa, sb, so = 0.031, 0.012, 0.04
    got = intref.add(a, b, a_zp=-3, b_zp=10, out_zp=2, **qmath.add_multipliers(sa, sb, so)).astype(np.int64)
    real = sa * (a.astype(np.float64) + 3) + sb * (b.astype(np.float64) - 10)
    want = np.clip(np.round(real / so) + 2, -128, 127)
    assert np.max(np.abs(got - want)) <= 1


def test_pools_by_hand():
    x = _i8(np.arange(-100, -84).reshape(4, 4, 1))
    assert intref.maxpool(x, kernel=2)[..., 0].tolist() == [[-95, -93], [-87, -85]]
    # 3×3 stride 2 pad 1: padded taps are ignored (all inputs negative, so padding with 0 would win)
    assert intref.maxpool(x, kernel=3, stride=2, pad=1)[..., 0].tolist() == [[-95, -93], [-87, -85]]
    y = _i8([[[1], [2]], [[-1], [-2]]])                   # (2, 2, 1)
    assert intref.avgpool(y, kernel=(1, 2))[..., 0].tolist() == [[2], [-2]]   # 1.5 -> 2, -1.5 -> -2
    assert intref.avgpool(y, kernel=(2, 2))[..., 0].tolist() == [[0]]
    z = _i8([[[1], [1]], [[1], [2]]])
    assert intref.avgpool(z, kernel=2).ravel().tolist() == [1]              # 5/4 = 1.25 -> 1
    # pad 1, kernel 2, stride 2 on 2×2: each window holds exactly one in-bounds tap
    assert intref.avgpool(z, kernel=2, stride=2, pad=1)[..., 0].tolist() == [[1, 1], [1, 2]]
    assert intref.avgpool(z, kernel=2, act_max=0).ravel().tolist() == [0]


def test_bad_inputs_raise_workbench_errors():
    x = np.zeros((4, 4, 3), dtype=np.int8)
    w = np.zeros((2, 1, 1, 4), dtype=np.int8)
    m, s = np.ones(2, dtype=np.int64), np.zeros(2, dtype=np.int64)
    with pytest.raises(WorkbenchError, match="channels"):
        intref.conv2d(x, w, None, in_zp=0, out_zp=0, mult=m, shift=s)
    with pytest.raises(WorkbenchError, match="int8"):
        intref.conv2d(x.astype(np.int16), w, None, in_zp=0, out_zp=0, mult=m, shift=s)
    with pytest.raises(WorkbenchError, match="overflows int32"):
        intref.conv2d(x, np.ones((2, 1, 1, 3), np.int8), np.array([2**31 - 1, 0]), in_zp=-128, out_zp=0,
                      mult=m, shift=s)
    with pytest.raises(WorkbenchError, match="heads"):
        intref.matmul_qk(np.zeros((3, 6), np.int8), np.zeros((3, 6), np.int8), heads=4, q_zp=0, k_zp=0,
                         out_zp=0, mult=1, shift=0)
    with pytest.raises(WorkbenchError, match="do not fit"):
        intref.maxpool(x, kernel=5)


def test_conv_dwconv_linear_match_float_math_within_one_lsb():
    """Float conv of the dequantized operands, quantized once, vs the integer pipeline."""
    import torch

    rng = np.random.default_rng(7)
    x = rng.integers(-128, 128, (6, 6, 8)).astype(np.int8)
    s_in, zp_in, s_out, zp_out = 0.05, -9, 0.2, 4
    w = rng.integers(-127, 128, (5, 3, 3, 8)).astype(np.int8)
    s_w = rng.uniform(0.002, 0.01, 5)
    bias = rng.integers(-2000, 2000, 5).astype(np.int32)
    m, s = qmath.quantize_multipliers(s_in * s_w / s_out)
    got = intref.conv2d(x, w, bias, in_zp=zp_in, out_zp=zp_out, mult=m, shift=s, stride=2, pad=1)
    xf = torch.tensor((x.astype(np.float64) - zp_in) * s_in).permute(2, 0, 1)[None]       # (1, C, H, W)
    wf = torch.tensor(w.astype(np.float64) * s_w[:, None, None, None]).permute(0, 3, 1, 2)  # (O, I, kh, kw)
    bf = torch.tensor(bias * s_in * s_w)
    yf = torch.nn.functional.conv2d(xf, wf, bf, stride=2, padding=1)[0].permute(1, 2, 0).numpy()
    want = np.clip(np.round(yf / s_out) + zp_out, -128, 127)
    assert np.max(np.abs(got.astype(np.int64) - want)) <= 1

    wd = rng.integers(-127, 128, (8, 3, 3, 1)).astype(np.int8)
    s_wd = rng.uniform(0.002, 0.01, 8)
    m, s = qmath.quantize_multipliers(s_in * s_wd / s_out)
    got = intref.dwconv2d(x, wd, None, in_zp=zp_in, out_zp=zp_out, mult=m, shift=s, pad=1, act_min=zp_out)
    wdf = torch.tensor(wd.astype(np.float64) * s_wd[:, None, None, None]).permute(0, 3, 1, 2)  # (C,1,kh,kw)
    yf = torch.nn.functional.conv2d(xf, wdf, padding=1, groups=8)[0].permute(1, 2, 0).numpy()
    want = np.clip(np.round(np.maximum(yf, 0) / s_out) + zp_out, -128, 127)     # ReLU via act_min
    assert np.max(np.abs(got.astype(np.int64) - want)) <= 1

    t = x.reshape(36, 8)                                                           # (N, D) token view
    wl = rng.integers(-127, 128, (12, 8)).astype(np.int8)
    m, s = qmath.quantize_multiplier(s_in * 0.004 / s_out)
    got = intref.linear(t, wl, None, in_zp=zp_in, out_zp=zp_out, mult=m, shift=s)
    yf = ((t.astype(np.float64) - zp_in) * s_in) @ (wl.astype(np.float64) * 0.004).T
    want = np.clip(np.round(yf / s_out) + zp_out, -128, 127)
    assert np.max(np.abs(got.astype(np.int64) - want)) <= 1


def test_attention_matmuls_match_float_math_within_one_lsb():
    rng = np.random.default_rng(8)
    n, d, heads = 12, 16, 4
    sq, zq, sk, zk, ss, zs = 0.03, 5, 0.025, -7, 0.02, 3
    q = rng.integers(-128, 128, (n, d)).astype(np.int8)
    k = rng.integers(-128, 128, (n, d)).astype(np.int8)
    scale = 1 / np.sqrt(d // heads)
    m, s = qmath.quantize_multiplier(sq * sk * scale / ss)
    got = intref.matmul_qk(q, k, heads=heads, q_zp=zq, k_zp=zk, out_zp=zs, mult=m, shift=s)
    qf = ((q.astype(np.float64) - zq) * sq).reshape(n, heads, -1).transpose(1, 0, 2)   # (heads, N, dh)
    kf = ((k.astype(np.float64) - zk) * sk).reshape(n, heads, -1).transpose(1, 0, 2)   # (heads, N, dh)
    want = np.clip(np.round(qf @ kf.transpose(0, 2, 1) * scale / ss) + zs, -128, 127)
    assert np.max(np.abs(got.astype(np.int64) - want)) <= 1
    p = intref.softmax(got, qmath.softmax_lut(ss))
    m, s = qmath.quantize_multiplier(sk / 256 / 0.01)
    out = intref.matmul_av(p, k, p_zp=-128, v_zp=zk, out_zp=-2, mult=m, shift=s)
    pf = (p.astype(np.float64) + 128) / 256
    of = (pf @ kf).transpose(1, 0, 2).reshape(n, d)                                      # concat heads
    assert np.max(np.abs(out.astype(np.int64) - np.clip(np.round(of / 0.01) - 2, -128, 127))) <= 1
