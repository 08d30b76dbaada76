"""Per-op quantization (float params + tensor quantization -> `QOp`) and per-op int8 execution.

`quantize_op` implements the rules listed in `core.tinyformer.quant`; `run_qop` calls the matching
`intref` function with exactly the QOp's fields, so the engine's C call per op takes the same
arguments in the same meaning.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.errors import WorkbenchError
from core.tinyformer import intref
from core.tinyformer.graph import Op
from core.tinyformer.qmath import (
    ADD_LEFT_SHIFT,
    LN_NORM_FRAC_BITS,
    activation_range,
    add_multipliers,
    quantize_multiplier,
    quantize_multipliers,
    softmax_lut,
)
from core.tinyformer.quant import QOp, QTensor

#: biases are kept within ±2^30 so that accumulator + bias stays far from int32 overflow
_BIAS_LIMIT = float(1 << 30)
_NONE = np.zeros(0, dtype=np.int32)


def _one(mult_shift: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([mult_shift[0]], dtype=np.int32), np.array([mult_shift[1]], dtype=np.int32)


def _weights(w: np.ndarray, b: np.ndarray, s_in: float, per_channel: bool
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Symmetric int8 weights (per output channel or per tensor) and int32 bias.

    s_w = max|W|/127 over the channel (or tensor), raised where needed so |bias_q| ≤ 2^30; an
    all-zero channel (e.g. fully pruned) with zero bias gets s_w = 1.
    """
    axes = tuple(range(1, w.ndim))
    w_abs = np.abs(w).max(axis=axes) if per_channel else np.full(w.shape[0], np.abs(w).max())
    b_need = np.abs(b) / (s_in * _BIAS_LIMIT)
    s_w = np.maximum(w_abs / 127.0, b_need if per_channel else np.full(w.shape[0], b_need.max()))
    s_w = np.where(s_w > 0, s_w, 1.0)
    shape = (-1,) + (1,) * (w.ndim - 1)
    wq = np.clip(np.round(w / s_w.reshape(shape)), -127, 127).astype(np.int8)
    bq = np.round(b / (s_in * s_w)).astype(np.int32)
    return wq, bq, s_w


def _quantize_weighted(op: Op, p: dict[str, Any], s_in: float, out_q: QTensor) -> dict[str, Any]:
    if op.kind in ("conv2d", "dwconv2d"):
        w = p["w"].numpy().transpose(0, 2, 3, 1)  # (O, I, kh, kw) -> (O, kh, kw, I); dw: (C, kh, kw, 1)
        wq, bq, s_w = _weights(w, p["b"].numpy(), s_in, per_channel=True)
        mult, shift = quantize_multipliers(s_in * s_w / out_q.scale)
        return {"weight": wq, "bias": bq, "w_scale": s_w, "multiplier": mult, "shift": shift}
    if op.kind == "linear":
        wq, bq, s_w = _weights(p["w"].numpy(), p["b"].numpy(), s_in, per_channel=False)
        mult, shift = _one(quantize_multiplier(s_in * s_w[0] / out_q.scale))
        return {"weight": wq, "bias": bq, "w_scale": s_w[:1], "multiplier": mult, "shift": shift}
    # layernorm: |n| ≤ √D·2^10 (Q10 normalized value), so |γ_q|·|n| and |β_q| each stay ≤ 2^29
    gamma, beta = p["gamma"].numpy(), p["beta"].numpy()
    frac = float(1 << LN_NORM_FRAC_BITS)
    g_max = min(32767.0, 2.0**29 / ((math.sqrt(gamma.size) + 1.0) * frac))
    s_g = max(np.abs(gamma).max() / g_max, np.abs(beta).max() * frac / 2.0**29, 1e-12)
    mult, shift = _one(quantize_multiplier(s_g / frac / out_q.scale))
    gq, bq = np.round(gamma / s_g).astype(np.int16), np.round(beta * frac / s_g).astype(np.int32)
    return {"weight": gq, "bias": bq, "w_scale": np.array([s_g]), "multiplier": mult, "shift": shift}


def quantize_op(op: Op, p: dict[str, Any] | None, ins: tuple[QTensor, ...], out_q: QTensor) -> QOp:
    """The QOp of graph op `op` given its float params `p` and its tensors' quantization."""
    fields: dict[str, Any] = {"weight": None, "bias": None, "w_scale": None, "multiplier": _NONE,
                              "shift": _NONE, "extra": {}}
    act_min, act_max = activation_range(op.attrs.get("act", "none"), out_q.scale, out_q.zero_point)
    if op.kind in ("conv2d", "dwconv2d", "linear", "layernorm"):
        if p is None:
            raise WorkbenchError(f"op {op.name!r} has no parameters in the model")
        fields.update(_quantize_weighted(op, p, ins[0].scale, out_q))
    elif op.kind == "matmul_qk":
        real = ins[0].scale * ins[1].scale * op.attrs.get("scale", 1.0) / out_q.scale
        fields["multiplier"], fields["shift"] = _one(quantize_multiplier(real))
    elif op.kind == "matmul_av":
        real = ins[0].scale * ins[1].scale / out_q.scale
        fields["multiplier"], fields["shift"] = _one(quantize_multiplier(real))
    elif op.kind == "softmax":
        fields["extra"] = {"lut": softmax_lut(ins[0].scale)}
    elif op.kind == "add":
        a = add_multipliers(ins[0].scale, ins[1].scale, out_q.scale)
        fields["multiplier"] = np.array([a["a_mult"], a["b_mult"], a["out_mult"]], dtype=np.int32)
        fields["shift"] = np.array([a["a_shift"], a["b_shift"], a["out_shift"]], dtype=np.int32)
        fields["extra"] = {"left_shift": ADD_LEFT_SHIFT}
    elif op.kind not in ("maxpool", "avgpool", "reshape"):
        raise WorkbenchError(f"op {op.name!r} has kind {op.kind!r}, which the quantizer does not support")
    return QOp(op=op, in_q=ins, out_q=out_q, act_min=act_min, act_max=act_max, **fields)


def run_qop(q: QOp, args: list[np.ndarray]) -> np.ndarray:
    """Execute one QOp with the integer reference; args are the int8 inputs in graph shapes."""
    op, a = q.op, op_attrs(q)
    zp_out, clamp = q.out_q.zero_point, {"act_min": q.act_min, "act_max": q.act_max}
    if op.kind in ("conv2d", "dwconv2d"):
        fn = intref.conv2d if op.kind == "conv2d" else intref.dwconv2d
        return fn(args[0], q.weight, q.bias, in_zp=q.in_q[0].zero_point, out_zp=zp_out, mult=q.multiplier,
                  shift=q.shift, stride=a["stride"], pad=a["pad"], **clamp)
    if op.kind == "linear":
        return intref.linear(args[0], q.weight, q.bias, in_zp=q.in_q[0].zero_point, out_zp=zp_out,
                             mult=q.multiplier[0], shift=q.shift[0], **clamp)
    if op.kind == "layernorm":
        return intref.layernorm(args[0], q.weight, q.bias, out_zp=zp_out, mult=q.multiplier[0],
                                shift=q.shift[0], **clamp)
    if op.kind == "matmul_qk":
        return intref.matmul_qk(args[0], args[1], heads=op.attrs["heads"], q_zp=q.in_q[0].zero_point,
                                k_zp=q.in_q[1].zero_point, out_zp=zp_out, mult=q.multiplier[0],
                                shift=q.shift[0], **clamp)
    if op.kind == "matmul_av":
        return intref.matmul_av(args[0], args[1], p_zp=q.in_q[0].zero_point, v_zp=q.in_q[1].zero_point,
                                out_zp=zp_out, mult=q.multiplier[0], shift=q.shift[0], **clamp)
    if op.kind == "softmax":
        return intref.softmax(args[0], q.extra["lut"])
    if op.kind == "add":
        m, s = q.multiplier, q.shift
        return intref.add(args[0], args[1], a_zp=q.in_q[0].zero_point, b_zp=q.in_q[1].zero_point,
                          out_zp=zp_out, a_mult=m[0], a_shift=s[0], b_mult=m[1], b_shift=s[1],
                          out_mult=m[2], out_shift=s[2], **clamp)
    if op.kind in ("maxpool", "avgpool"):
        x = args[0]
        fn = intref.maxpool if op.kind == "maxpool" else intref.avgpool
        return fn(x, kernel=a["kernel"], stride=a["stride"], pad=a["pad"], **clamp)
    if op.kind == "reshape":
        return args[0]
    raise WorkbenchError(f"op {op.name!r} has kind {op.kind!r}, which run_int8 does not support")


def op_attrs(q: QOp) -> dict[str, Any]:
    """Kernel, stride and pad of a spatial op with the graph's defaults filled in (stride = kernel
    for pooling, pad 0)."""
    at = q.op.attrs
    kernel = at.get("kernel", (1, 1))
    default_stride = kernel if q.op.kind in ("maxpool", "avgpool") else 1
    return {"kernel": kernel, "stride": at.get("stride", default_stride), "pad": at.get("pad", 0)}
