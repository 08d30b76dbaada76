"""Element-wise and pooling op kinds: layernorm, add, maxpool, avgpool, reshape (0 MACs each).

Flash: LayerNorm keeps γ and β as int32 (4·(γ + β)); the others have no constants. Scratch: global
average pooling one int32 per channel (4·C); the others none. Pooling and reshape outputs share
their input's quantization; reshape is a view (no data movement, the planner aliases its buffer).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from core.tinyformer import intref
from core.tinyformer.ops import OpKind, Shape, spatial_attrs
from core.tinyformer.ops.conv import act_fn, pair, prefix
from core.tinyformer.qmath import (
    ADD_LEFT_SHIFT,
    LN_NORM_FRAC_BITS,
    add_multipliers,
    quantize_multiplier,
    single,
)

if TYPE_CHECKING:
    from core.tinyformer.graph import Op
    from core.tinyformer.qtypes import QOp, QTensor


def _lower(fn: str, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
    from core.engine import lowering

    return getattr(lowering, fn)(qop, shapes, out, fmt)


class LayerNorm(OpKind):
    """Integer LayerNorm over tokens (`intref.layernorm`); γ int16 with one scale s_γ, β int32."""

    name = "layernorm"
    weighted = True

    def flash(self, op: Op, weight_bytes: int | None = None) -> int:
        return 4 * (op.weight_count + op.bias_count)

    def params(self, module: Any, op: Op) -> dict[str, Any]:
        (d,) = op.weight_shape
        return {"gamma": prefix(module.weight.detach().cpu().double(), (d,)),
                "beta": prefix(module.bias.detach().cpu().double(), (d,)), "eps": float(module.eps)}

    def run_float(self, op: Op, args: list[Any], p: dict[str, Any] | None) -> Any:
        import torch.nn.functional as F

        x = args[0]
        return F.layer_norm(x, (x.shape[-1],), p["gamma"].to(x.dtype), p["beta"].to(x.dtype), p["eps"])

    def quantize(self, op: Op, p: dict[str, Any] | None, ins: tuple[QTensor, ...], out_q: QTensor
                 ) -> dict[str, Any]:
        # |n| ≤ √D·2^10 (Q10 normalized value), so |γ_q|·|n| and |β_q| each stay ≤ 2^29
        gamma, beta = p["gamma"].numpy(), p["beta"].numpy()
        frac = float(1 << LN_NORM_FRAC_BITS)
        g_max = min(32767.0, 2.0**29 / ((math.sqrt(gamma.size) + 1.0) * frac))
        s_g = max(np.abs(gamma).max() / g_max, np.abs(beta).max() * frac / 2.0**29, 1e-12)
        mult, shift = single(quantize_multiplier(s_g / frac / out_q.scale))
        gq, bq = np.round(gamma / s_g).astype(np.int16), np.round(beta * frac / s_g).astype(np.int32)
        return {"weight": gq, "bias": bq, "w_scale": np.array([s_g]), "multiplier": mult, "shift": shift}

    def run_int8(self, q: QOp, args: list[np.ndarray]) -> np.ndarray:
        return intref.layernorm(args[0], q.weight, q.bias, out_zp=q.out_q.zero_point, mult=q.multiplier[0],
                                shift=q.shift[0], act_min=q.act_min, act_max=q.act_max)

    def lower(self, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
        return _lower("lower_layernorm", qop, shapes, out, fmt)


class Add(OpKind):
    """Residual add with TFLite ADD requantization (multipliers [a, b, out], left shift 20)."""

    name = "add"

    def run_float(self, op: Op, args: list[Any], p: dict[str, Any] | None) -> Any:
        return act_fn(op.attrs.get("act", "none"))(args[0] + args[1])

    def quantize(self, op: Op, p: dict[str, Any] | None, ins: tuple[QTensor, ...], out_q: QTensor
                 ) -> dict[str, Any]:
        a = add_multipliers(ins[0].scale, ins[1].scale, out_q.scale)
        return {"multiplier": np.array([a["a_mult"], a["b_mult"], a["out_mult"]], dtype=np.int32),
                "shift": np.array([a["a_shift"], a["b_shift"], a["out_shift"]], dtype=np.int32),
                "extra": {"left_shift": ADD_LEFT_SHIFT}}

    def run_int8(self, q: QOp, args: list[np.ndarray]) -> np.ndarray:
        m, s = q.multiplier, q.shift
        return intref.add(args[0], args[1], a_zp=q.in_q[0].zero_point, b_zp=q.in_q[1].zero_point,
                          out_zp=q.out_q.zero_point, a_mult=m[0], a_shift=s[0], b_mult=m[1], b_shift=s[1],
                          out_mult=m[2], out_shift=s[2], act_min=q.act_min, act_max=q.act_max)

    def lower(self, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
        return _lower("lower_add", qop, shapes, out, fmt)


class _Pool(OpKind):
    out_q_rule = "input"

    def run_float(self, op: Op, args: list[Any], p: dict[str, Any] | None) -> Any:
        """Max / average pooling of (B, H, W, C); global average pooling gives (B, 1, C)."""
        import torch.nn.functional as F

        x, act = args[0], act_fn(op.attrs.get("act", "none"))
        if self.name == "avgpool" and op.attrs.get("global", False):
            return act(x.mean(dim=(1, 2))[:, None, :])  # (B, H, W, C) -> (B, 1, C)
        k = pair(op.attrs["kernel"])
        s = pair(op.attrs.get("stride", k))
        pd = pair(op.attrs.get("pad", 0))
        xc = x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        if self.name == "maxpool":
            y = F.max_pool2d(xc, k, s, pd)
        else:
            y = F.avg_pool2d(xc, k, s, pd, count_include_pad=False)
        return act(y.permute(0, 2, 3, 1))  # (B, C, Ho, Wo) -> (B, Ho, Wo, C)

    def run_int8(self, q: QOp, args: list[np.ndarray]) -> np.ndarray:
        a = spatial_attrs(q.op)
        fn = intref.maxpool if self.name == "maxpool" else intref.avgpool
        return fn(args[0], kernel=a["kernel"], stride=a["stride"], pad=a["pad"], act_min=q.act_min,
                  act_max=q.act_max)


class MaxPool(_Pool):
    name = "maxpool"

    def lower(self, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
        return _lower("lower_maxpool", qop, shapes, out, fmt)


class AvgPool(_Pool):
    name = "avgpool"

    def scratch(self, op: Op, ins: list[Shape], out: Shape, sparse: bool = False) -> int:
        return 4 * ins[0][2]

    def lower(self, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
        return _lower("lower_avgpool", qop, shapes, out, fmt)


class Reshape(OpKind):
    """A zero-cost view: HWC memory is already token-major (the planner shares the input's buffer)."""

    name = "reshape"
    aliases_input = True
    out_q_rule = "input"

    def run_float(self, op: Op, args: list[Any], p: dict[str, Any] | None) -> Any:
        return args[0]

    def run_int8(self, q: QOp, args: list[np.ndarray]) -> np.ndarray:
        return args[0]

    def lower(self, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
        return _lower("lower_reshape", qop, shapes, out, fmt)


KINDS = (LayerNorm(), Add(), MaxPool(), AvgPool(), Reshape())
