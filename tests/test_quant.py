"""int8 quantization: float graph == torch model, parameter rules by hand, every op within 1-2 LSB of
float math on its own int8 inputs, and float vs int8 agreement on a sampled architecture."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from core.errors import WorkbenchError
from core.tinyformer import qfloat, quant, space
from core.tinyformer.graph import graph_of
from core.tinyformer.model import build
from core.tinyformer.qmath import LN_NORM_FRAC_BITS


def _randomize_bn(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics, so that folding is actually exercised."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            mod.bias.data.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model.eval()


def _archs() -> list[dict]:
    """Sampled candidates covering both downsample kinds and both pooling kinds."""
    cfg = space.SpaceConfig(resolution=16, vit_dims=(16, 32), vit_mlp=(32,), last_widths=(32,),
                            mbv2_widths=(16,), ds_widths=(16,), mbv2_depths=(1,))
    out, seen = [], set()
    rng = random.Random(0)
    while len(out) < 4:
        a = space.sample(cfg, rng)
        key = (a["downsample"][0]["kind"], a["pool"])
        if key not in seen:
            seen.add(key)
            out.append(a)
    return out


@pytest.mark.parametrize("arch", _archs(), ids=lambda a: f"{a['downsample'][0]['kind']}-{a['pool']}")
def test_float_graph_interpreter_equals_torch_model(arch):
    torch.manual_seed(1)
    model = _randomize_bn(build(arch), 2).double()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        want = model(x)
        got = qfloat.run_float(graph_of(arch), qfloat.extract_params(model, graph_of(arch)),
                               quant.to_hwc(x))
    assert torch.allclose(got.reshape(3, -1), want, atol=1e-10, rtol=1e-8)


def test_bn_folding_by_hand():
    conv = torch.nn.Module()
    conv.conv = torch.nn.Conv2d(1, 1, 1, bias=False)
    conv.bn = torch.nn.BatchNorm2d(1)
    conv.conv.weight.data.fill_(3.0)
    conv.bn.weight.data.fill_(2.0)
    conv.bn.bias.data.fill_(1.0)
    conv.bn.running_mean.fill_(0.5)
    conv.bn.running_var.fill_(4.0 - conv.bn.eps)          # √(var + eps) = 2
    op = type("O", (), {"weight_shape": (1, 1, 1, 1)})()
    p = qfloat._conv_params(conv, op)
    # γ/σ = 1: w' = 3, b' = β − μ·γ/σ = 1 − 0.5 = 0.5
    assert p["w"].item() == pytest.approx(3.0) and p["b"].item() == pytest.approx(0.5)


def test_qtensor_from_range_by_hand():
    assert quant.qtensor_from_range(0.0, 6.0) == quant.QTensor(6 / 255, -128)
    assert quant.qtensor_from_range(-1.0, 1.0) == quant.QTensor(2 / 255, 0)  # round(-0.5) = 0
    assert quant.qtensor_from_range(0.5, 2.0) == quant.QTensor(2 / 255, -128)      # widened to contain 0
    assert quant.qtensor_from_range(0.0, 0.0) == quant.QTensor(1 / 255, -128)      # degenerate
    q = quant.QTensor(0.1, 3)
    assert q.quantize(np.array([0.0, 0.26, -100.0])).tolist() == [3, 6, -128]
    assert q.dequantize(np.array([3, 13])).tolist() == pytest.approx([0.0, 1.0])


def test_config_validation():
    with pytest.raises(WorkbenchError, match="unknown calibration"):
        quant.QuantConfig(calibration="kl")
    with pytest.raises(WorkbenchError, match="percentile"):
        quant.QuantConfig(percentile=20.0)
    with pytest.raises(WorkbenchError, match="calib_batches"):
        quant.QuantConfig(calib_batches=0)


@pytest.fixture(scope="module")
def sampled():
    """A sampled candidate with attention pooling and trained-looking BN, quantized on shapes10."""
    from core.tinyformer.data import get_dataset, resize

    arch = next(a for a in _archs() if a["pool"] == "attn")
    torch.manual_seed(3)
    model = _randomize_bn(build(arch), 4)
    x, y = get_dataset("shapes10", "test", n=40).tensors()
    x = resize(x, 16)
    qm = quant.quantize(model, arch, [(x[:16], y[:16]), (x[16:32], y[16:32])])
    return arch, model, qm, x, y


def _float_params(q: quant.QOp) -> dict | None:
    """The op's float parameters rebuilt from its integer ones (so only activation rounding differs)."""
    if q.op.kind in ("conv2d", "dwconv2d"):
        s_in, s_w = q.in_q[0].scale, q.w_scale
        w = torch.tensor(q.weight * s_w[:, None, None, None]).permute(0, 3, 1, 2)  # -> (O, I, kh, kw)
        return {"w": w, "b": torch.tensor(q.bias * s_in * s_w)}
    if q.op.kind == "linear":
        s = q.in_q[0].scale * q.w_scale[0]
        return {"w": torch.tensor(q.weight * q.w_scale[0]), "b": torch.tensor(q.bias * s)}
    if q.op.kind == "layernorm":
        s_g = q.w_scale[0]
        beta = torch.tensor(q.bias * s_g / 2**LN_NORM_FRAC_BITS)
        return {"gamma": torch.tensor(q.weight * s_g), "beta": beta, "eps": 0.0}
    return None


def test_every_op_matches_float_math_on_its_int8_inputs(sampled):
    _, _, qm, x, _ = sampled
    xq = quant.quantize_input(qm, x[:2])
    kinds = set()
    for img in xq:
        _, trace = quant.run_int8(qm, img, trace=True)
        for q in qm.qops:
            args = [torch.tensor(qi.dequantize(trace[t]))[None] for qi, t in zip(q.in_q, q.op.inputs)]
            yf = qfloat.run_op(q.op, args, _float_params(q)).reshape(qm.graph.tensors[q.op.output].shape)
            want = q.out_q.quantize(yf.numpy()).astype(np.int64)
            want = np.clip(want, q.act_min, q.act_max)
            tol = 2 if q.op.kind == "layernorm" else 1
            diff = np.abs(trace[q.op.output].astype(np.int64) - want).max()
            assert diff <= tol, f"{q.op.name} ({q.op.kind}) differs by {diff} LSB"
            kinds.add(q.op.kind)
    assert {"conv2d", "dwconv2d", "linear", "layernorm", "matmul_qk", "softmax", "matmul_av", "add"} <= kinds


def test_quantized_parameters_follow_the_rules(sampled):
    _, model, qm, _, _ = sampled
    params = qfloat.extract_params(model, qm.graph)
    for q in qm.qops:
        if q.op.kind in ("conv2d", "dwconv2d"):
            w = params[q.op.name]["w"].numpy().transpose(0, 2, 3, 1)   # (O, I, kh, kw) -> (O, kh, kw, I)
            assert q.weight.dtype == np.int8 and q.weight.shape == q.op.weight_shape
            assert np.abs(q.weight).reshape(len(w), -1).max(1).tolist() == [127] * len(w)  # per-channel max
            assert np.allclose(q.weight * q.w_scale[:, None, None, None], w, atol=q.w_scale.max() / 2 + 1e-12)
            assert q.bias.dtype == np.int32 and q.multiplier.shape == q.shift.shape == (len(w),)
        if q.op.kind == "linear":
            assert np.abs(q.weight).max() == 127 and q.multiplier.shape == (1,)
        if q.op.kind == "softmax":
            assert (q.out_q.scale, q.out_q.zero_point) == (1 / 256, -128) and q.extra["lut"][0] == 1 << 16
        if q.op.kind in ("reshape", "maxpool", "avgpool"):
            assert q.out_q == q.in_q[0]
        if q.op.attrs.get("act") == "relu6":
            assert q.act_min == max(-128, q.out_q.zero_point)
    assert qm.input_q == quant.QTensor(1 / 64, 0)


def test_float_and_int8_models_agree_on_a_sampled_arch(sampled):
    _, model, qm, x, y = sampled
    ev = quant.evaluate_int8(qm, [(x[:20], y[:20]), (x[20:], y[20:])], model=model)
    assert ev.n == 40 and ev.agreement >= 0.9
    span = float(np.ptp(qm.output_q.dequantize(np.array([-128, 127]))))
    assert ev.logit_max_abs <= 0.05 * span and ev.logit_mae <= 0.01 * span


def test_trace_and_input_checks(sampled):
    _, _, qm, x, _ = sampled
    xq = quant.quantize_input(qm, x[:1])[0]
    out, trace = quant.run_int8(qm, xq, trace=True)
    assert out.shape == (1, qm.arch["classes"]) and out.dtype == np.int8
    assert set(trace) == set(qm.graph.tensors)
    for t, spec in qm.graph.tensors.items():
        assert trace[t].shape == spec.shape and trace[t].dtype == np.int8
    with pytest.raises(WorkbenchError, match="int8 image"):
        quant.run_int8(qm, xq.astype(np.int16))
    with pytest.raises(WorkbenchError, match="no batches"):
        quant.quantize(build(qm.arch), qm.arch, [])


def test_percentile_calibration_clips_outliers(sampled):
    arch, model, qm, x, y = sampled
    pq = quant.quantize(model, arch, [(x[:16], y[:16])], config=quant.QuantConfig(calibration="percentile",
                                                                                   percentile=99.0))
    narrower = [t for t in qm.tensor_q if pq.tensor_q[t].scale < qm.tensor_q[t].scale - 1e-12]
    assert len(narrower) >= len(qm.tensor_q) // 3


def test_supernet_weights_are_prefix_sliced_for_a_subnet():
    from core.tinyformer.supernet import make_supernet

    cfg = space.SpaceConfig(resolution=16, vit_dims=(16, 32), vit_mlp=(32, 64), last_widths=(32, 48),
                            mbv2_widths=(16, 24), ds_widths=(16,), mbv2_depths=(1, 2))
    torch.manual_seed(5)
    sup = _randomize_bn(make_supernet(cfg), 6).double()
    arch = space.extreme(cfg, largest=False)
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        want = sup(x, arch)
        got = qfloat.run_float(graph_of(arch), qfloat.extract_params(sup, graph_of(arch)), quant.to_hwc(x))
    assert torch.allclose(got.reshape(2, -1), want, atol=1e-10, rtol=1e-8)


def test_save_and_load_round_trip(sampled, tmp_path):
    from core.tinyformer.quant_io import load_quantized, save_quantized

    _, _, qm, x, _ = sampled
    path = save_quantized(qm, tmp_path / "qm.npz")
    back = load_quantized(path)
    assert back.input_q == qm.input_q and back.tensor_q == qm.tensor_q and back.config == qm.config
    for a, b in zip(qm.qops, back.qops):
        assert a.op == b.op and a.in_q == b.in_q and (a.act_min, a.act_max) == (b.act_min, b.act_max)
        for name in ("weight", "bias", "multiplier", "shift"):
            va, vb = getattr(a, name), getattr(b, name)
            assert (va is None and vb is None) or (np.array_equal(va, vb) and va.dtype == vb.dtype)
    xq = quant.quantize_input(qm, x[:2])
    for img in xq:
        assert np.array_equal(quant.run_int8(qm, img), quant.run_int8(back, img))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(WorkbenchError, match="not a quantized model"):
        load_quantized(tmp_path / "bad.npz")


def test_layer_errors_start_at_rounding_level(sampled):
    _, model, qm, x, _ = sampled
    rows = quant.layer_errors(qm, model, x[:4])
    assert [r["name"] for r in rows] == [op.output for op in qm.graph.ops]
    # both graphs see the same (dequantized int8) input, so the first conv only adds its output
    # rounding (uniform: 1/√12 ≈ 0.29 LSB) plus a little weight rounding
    assert rows[0]["rms_lsb"] < 0.6
    assert all(np.isfinite(r["rel"]) for r in rows) and rows[-1]["rel"] < 0.5
