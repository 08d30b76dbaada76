"""Weighted conv-like op kinds: conv2d, dwconv2d, linear (int8 weights, dense or blockwise sparse).

MACs: conv2d Ho·Wo·Cout·kh·kw·Cin, dwconv2d Ho·Wo·C·kh·kw, linear N·out·in. Flash: weights (dense
int8 or the sparse encoding when smaller) + 8·out (Q31 multiplier + shift per channel) + 4·bias.
Scratch: dense kernels keep 2 im2col columns of K4 = 4·⌈kh·kw·Cin/4⌉ q15 values (4·K4 bytes), sparse
(weight-stationary) kernels one int32 accumulator per output pixel (4·Ho·Wo); dense depthwise none.
Quantization: BatchNorm folded; symmetric int8 weights per output channel (conv, depthwise) or per
tensor (linear); int32 bias; Q31 requantization multipliers (`core.tinyformer.quant`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import WorkbenchError
from core.tinyformer import intref
from core.tinyformer.ops import OpKind, Shape, spatial_attrs
from core.tinyformer.qmath import quantize_multiplier, quantize_multipliers, quantize_weights, single

if TYPE_CHECKING:
    from core.tinyformer.graph import Op
    from core.tinyformer.qtypes import QOp, QTensor

#: per output channel: int32 Q31 multiplier + int32 shift
QPARAM_BYTES_PER_CHANNEL = 8


def conv_scratch(kh: int, kw: int, cin: int, npix: int, sparse: bool) -> int:
    """conv2d/linear: dense kernels keep 2 im2col columns of K4 = 4·⌈kh·kw·Cin/4⌉ q15 values (4·K4
    bytes); sparse (weight-stationary) kernels one int32 accumulator per output pixel (4·Ho·Wo)."""
    return 4 * npix if sparse else 4 * (-(-kh * kw * cin // 4) * 4)


def act_fn(name: str) -> Any:
    """The float activation `name` ("none" | "relu" | "relu6") as a torch function."""
    import torch.nn.functional as F

    return {"none": lambda x: x, "relu": F.relu, "relu6": F.relu6}[name]


def pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def prefix(t: Any, shape: tuple[int, ...]) -> Any:
    """The leading slice of `t` with `shape` (a supernet's shared weight sliced to one path)."""
    if t.dim() != len(shape) or any(s > n for s, n in zip(shape, t.shape)):
        raise WorkbenchError(f"weight of shape {tuple(t.shape)} cannot hold the graph's {shape}")
    return t[tuple(slice(0, s) for s in shape)]


def conv_params(mod: Any, op: Op) -> dict[str, Any]:
    """Folded conv weight in torch layout (O, I, kh, kw) and bias (O,), sliced to the op's shape.

    BatchNorm folding (eval mode): W' = W·γ/√(σ²+ε) per output channel, b' = β − μ·γ/√(σ²+ε).
    """
    import torch

    conv = getattr(mod, "conv", mod)
    bn = getattr(mod, "bn", None)
    o, kh, kw, i = op.weight_shape
    w = prefix(conv.weight.detach().cpu().double(), (o, i, kh, kw))
    b = torch.zeros(o, dtype=torch.float64)
    if getattr(conv, "bias", None) is not None:
        b = prefix(conv.bias.detach().cpu().double(), (o,))
    if bn is not None:
        def vec(t: torch.Tensor) -> torch.Tensor:
            return prefix(t.detach().cpu().double(), (o,))

        g = vec(bn.weight) / torch.sqrt(vec(bn.running_var) + bn.eps)
        b = vec(bn.bias) + (b - vec(bn.running_mean)) * g
        w = w * g[:, None, None, None]
    return {"w": w, "b": b}


class _WeightedInt8(OpKind):
    weighted = True
    sparse_capable = True

    def flash(self, op: Op, weight_bytes: int | None = None) -> int:
        w = op.weight_count if weight_bytes is None else min(weight_bytes, op.weight_count)
        return w + QPARAM_BYTES_PER_CHANNEL * op.weight_shape[0] + 4 * op.bias_count

    def lower(self, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
        from core.engine import lowering

        return lowering.lower_conv_like(qop, shapes, out, fmt)

    def lower_cmsis(self, qop: Any, shapes: list[Shape], out: Shape) -> Any:
        from core.engine import lowering

        return lowering.cmsis_conv_like(qop, shapes, out)


class _Conv(_WeightedInt8):
    """conv2d and dwconv2d over HWC maps."""

    depthwise = False

    def macs(self, ins: list[Shape], out: Shape, attrs: dict[str, Any]) -> int:
        kh, kw = attrs["kernel"]
        ho, wo, cout = out
        return ho * wo * cout * kh * kw * (1 if self.depthwise else ins[0][2])

    def params(self, module: Any, op: Op) -> dict[str, Any]:
        return conv_params(module, op)

    def run_float(self, op: Op, args: list[Any], p: dict[str, Any] | None) -> Any:
        import torch.nn.functional as F

        x = args[0]
        groups = x.shape[3] if self.depthwise else 1
        y = F.conv2d(x.permute(0, 3, 1, 2), p["w"].to(x.dtype), p["b"].to(x.dtype),  # HWC -> CHW
                     pair(op.attrs.get("stride", 1)), pair(op.attrs.get("pad", 0)), 1, groups)
        return act_fn(op.attrs.get("act", "none"))(y.permute(0, 2, 3, 1))  # (B, C, H, W) -> (B, H, W, C)

    def quantize(self, op: Op, p: dict[str, Any] | None, ins: tuple[QTensor, ...], out_q: QTensor
                 ) -> dict[str, Any]:
        s_in = ins[0].scale
        w = p["w"].numpy().transpose(0, 2, 3, 1)  # (O, I, kh, kw) -> (O, kh, kw, I); dw: (C, kh, kw, 1)
        wq, bq, s_w = quantize_weights(w, p["b"].numpy(), s_in, per_channel=True)
        mult, shift = quantize_multipliers(s_in * s_w / out_q.scale)
        return {"weight": wq, "bias": bq, "w_scale": s_w, "multiplier": mult, "shift": shift}

    def run_int8(self, q: QOp, args: list[np.ndarray]) -> np.ndarray:
        a = spatial_attrs(q.op)
        fn = intref.dwconv2d if self.depthwise else intref.conv2d
        return fn(args[0], q.weight, q.bias, in_zp=q.in_q[0].zero_point, out_zp=q.out_q.zero_point,
                  mult=q.multiplier, shift=q.shift, stride=a["stride"], pad=a["pad"],
                  act_min=q.act_min, act_max=q.act_max)


class Conv2d(_Conv):
    name = "conv2d"

    def scratch(self, op: Op, ins: list[Shape], out: Shape, sparse: bool = False) -> int:
        kh, kw = op.attrs["kernel"]
        return conv_scratch(kh, kw, ins[0][2], out[0] * out[1], sparse)


class DwConv2d(_Conv):
    name = "dwconv2d"
    depthwise = True

    def scratch(self, op: Op, ins: list[Shape], out: Shape, sparse: bool = False) -> int:
        return 4 * out[0] * out[1] if sparse else 0

    def lower(self, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
        from core.engine import lowering

        return lowering.lower_dwconv(qop, shapes, out, fmt)

    def lower_cmsis(self, qop: Any, shapes: list[Shape], out: Shape) -> Any:
        from core.engine import lowering

        return lowering.cmsis_dwconv(qop, shapes, out)


class Linear(_WeightedInt8):
    """A fully connected layer over tokens (N, in) -> (N, out): a 1×1 conv with H = 1, W = N."""

    name = "linear"

    def macs(self, ins: list[Shape], out: Shape, attrs: dict[str, Any]) -> int:
        (n, d), (_, o) = ins[0], out
        return n * o * d

    def scratch(self, op: Op, ins: list[Shape], out: Shape, sparse: bool = False) -> int:
        return conv_scratch(1, 1, ins[0][1], ins[0][0], sparse)

    def params(self, module: Any, op: Op) -> dict[str, Any]:
        import torch

        out, inp = op.weight_shape
        b = torch.zeros(out) if module.bias is None else module.bias.detach().cpu()
        w = prefix(module.weight.detach().cpu().double(), (out, inp))
        return {"w": w, "b": prefix(b.double(), (out,))}

    def run_float(self, op: Op, args: list[Any], p: dict[str, Any] | None) -> Any:
        import torch.nn.functional as F

        x = args[0]
        return act_fn(op.attrs.get("act", "none"))(F.linear(x, p["w"].to(x.dtype), p["b"].to(x.dtype)))

    def quantize(self, op: Op, p: dict[str, Any] | None, ins: tuple[QTensor, ...], out_q: QTensor
                 ) -> dict[str, Any]:
        s_in = ins[0].scale
        wq, bq, s_w = quantize_weights(p["w"].numpy(), p["b"].numpy(), s_in, per_channel=False)
        mult, shift = single(quantize_multiplier(s_in * s_w[0] / out_q.scale))
        return {"weight": wq, "bias": bq, "w_scale": s_w[:1], "multiplier": mult, "shift": shift}

    def run_int8(self, q: QOp, args: list[np.ndarray]) -> np.ndarray:
        return intref.linear(args[0], q.weight, q.bias, in_zp=q.in_q[0].zero_point, out_zp=q.out_q.zero_point,
                             mult=q.multiplier[0], shift=q.shift[0], act_min=q.act_min, act_max=q.act_max)


KINDS = (Conv2d(), DwConv2d(), Linear())
