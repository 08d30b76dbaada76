"""Attention op kinds: matmul_qk (S = QKᵀ/√dh), softmax (rows of S, in place), matmul_av (O = P·V),
and `attention`, the three fused and row-tiled (what `core.tinyformer.schedule` runs instead).

MACs: matmul_qk heads·Nq·Nk·dh = Nq·Nk·D; matmul_av heads·Nq·Nk·dh (its output is (Nq, D)).
Flash: the softmax's 256-entry int32 exp LUT (1024 B); the matmuls have no constants.
Scratch of the SparseEngine kernels (q15 operands, rows padded to K4 = 4·⌈K/4⌉):
    matmul_qk: K_h (Nk rows) + 2 Q rows, K = dh:  2·K4·(Nk + 2)
    matmul_av: V_hᵀ (dh rows) + 2 P rows, K = Nk: 2·K4·(dh + 2)
    softmax:   one int32 row of exponentials:     4·L
    attention: both matmuls' q15 operands + 2 int8 score rows + one int32 exp row: the sum + 6·Nk
(no (heads, Nq, Nk) map: `attention_scratch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from core.tinyformer import intref
from core.tinyformer.ops import OpKind, Shape
from core.tinyformer.qmath import quantize_multiplier, single, softmax_lut

if TYPE_CHECKING:
    from core.tinyformer.graph import Op
    from core.tinyformer.qtypes import QOp, QTensor

SOFTMAX_LUT_BYTES = 256 * 4


def matmul_qk_scratch(nk: int, d: int) -> int:
    """QKᵀ: q15 K_h (Nk rows) + 2 q15 Q rows, rows padded to K4 = ⌈d/4⌉·4: 2·K4·(Nk + 2) bytes."""
    k4 = (d + 3) // 4 * 4
    return 2 * k4 * (nk + 2)


def matmul_av_scratch(nk: int, d: int) -> int:
    """AV: q15 V_hᵀ (d rows) + 2 q15 P rows, rows padded to K4 = ⌈Nk/4⌉·4: 2·K4·(d + 2) bytes."""
    k4 = (nk + 3) // 4 * 4
    return 2 * k4 * (d + 2)


def split_heads(t: Any, heads: int) -> Any:
    b, n, d = t.shape
    return t.reshape(b, n, heads, d // heads).transpose(1, 2)  # (B, N, D) -> (B, heads, N, dh)


class _Matmul(OpKind):
    def lower_cmsis(self, qop: Any, shapes: list[Shape], out: Shape) -> Any:
        from core.engine import lowering

        return lowering.cmsis_matmul(qop, shapes, out)


class MatmulQK(_Matmul):
    name = "matmul_qk"

    def macs(self, ins: list[Shape], out: Shape, attrs: dict[str, Any]) -> int:
        (nq, d), (nk, _) = ins
        return nq * nk * d

    def scratch(self, op: Op, ins: list[Shape], out: Shape, sparse: bool = False) -> int:
        return matmul_qk_scratch(ins[1][0], ins[0][1] // int(op.attrs["heads"]))

    def run_float(self, op: Op, args: list[Any], p: dict[str, Any] | None) -> Any:
        heads = op.attrs["heads"]
        return (split_heads(args[0], heads) @ split_heads(args[1], heads).transpose(-1, -2)) \
            * op.attrs.get("scale", 1.0)

    def quantize(self, op: Op, p: dict[str, Any] | None, ins: tuple[QTensor, ...], out_q: QTensor
                 ) -> dict[str, Any]:
        real = ins[0].scale * ins[1].scale * op.attrs.get("scale", 1.0) / out_q.scale
        mult, shift = single(quantize_multiplier(real))
        return {"multiplier": mult, "shift": shift}

    def run_int8(self, q: QOp, args: list[np.ndarray]) -> np.ndarray:
        return intref.matmul_qk(args[0], args[1], heads=q.op.attrs["heads"], q_zp=q.in_q[0].zero_point,
                                k_zp=q.in_q[1].zero_point, out_zp=q.out_q.zero_point, mult=q.multiplier[0],
                                shift=q.shift[0], act_min=q.act_min, act_max=q.act_max)

    def lower(self, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
        from core.engine import lowering

        return lowering.lower_matmul_qk(qop, shapes, out, fmt)


class MatmulAV(_Matmul):
    name = "matmul_av"

    def macs(self, ins: list[Shape], out: Shape, attrs: dict[str, Any]) -> int:
        (_, nq, nk), (_, d) = ins[0], out
        return nq * nk * d

    def scratch(self, op: Op, ins: list[Shape], out: Shape, sparse: bool = False) -> int:
        return matmul_av_scratch(ins[0][2], ins[1][1] // int(op.attrs["heads"]))

    def run_float(self, op: Op, args: list[Any], p: dict[str, Any] | None) -> Any:
        x = args[0]
        o = x @ split_heads(args[1], op.attrs["heads"])  # (B, heads, Nq, dh)
        return o.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)  # -> (B, Nq, heads·dh)

    def quantize(self, op: Op, p: dict[str, Any] | None, ins: tuple[QTensor, ...], out_q: QTensor
                 ) -> dict[str, Any]:
        mult, shift = single(quantize_multiplier(ins[0].scale * ins[1].scale / out_q.scale))
        return {"multiplier": mult, "shift": shift}

    def run_int8(self, q: QOp, args: list[np.ndarray]) -> np.ndarray:
        return intref.matmul_av(args[0], args[1], p_zp=q.in_q[0].zero_point, v_zp=q.in_q[1].zero_point,
                                out_zp=q.out_q.zero_point, mult=q.multiplier[0], shift=q.shift[0],
                                act_min=q.act_min, act_max=q.act_max)

    def lower(self, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
        from core.engine import lowering

        return lowering.lower_matmul_av(qop, shapes, out, fmt)


class Softmax(OpKind):
    """Integer softmax over the last axis with an exp LUT (`intref.softmax`); output (1/256, −128)."""

    name = "softmax"
    out_q_rule = "softmax"

    def flash(self, op: Op, weight_bytes: int | None = None) -> int:
        return SOFTMAX_LUT_BYTES

    def scratch(self, op: Op, ins: list[Shape], out: Shape, sparse: bool = False) -> int:
        return 4 * out[-1]

    def run_float(self, op: Op, args: list[Any], p: dict[str, Any] | None) -> Any:
        import torch

        return torch.softmax(args[0], dim=-1)

    def quantize(self, op: Op, p: dict[str, Any] | None, ins: tuple[QTensor, ...], out_q: QTensor
                 ) -> dict[str, Any]:
        return {"extra": {"lut": softmax_lut(ins[0].scale)}}

    def run_int8(self, q: QOp, args: list[np.ndarray]) -> np.ndarray:
        return intref.softmax(args[0], q.extra["lut"])

    def lower(self, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
        from core.engine import lowering

        return lowering.lower_softmax(qop, shapes, out, fmt)

    def lower_cmsis(self, qop: Any, shapes: list[Shape], out: Shape) -> Any:
        from core.engine import lowering

        return lowering.cmsis_softmax(qop, shapes, out)


def attention_scratch(nk: int, d: int) -> int:
    """Row-tiled attention (se_attention): int32 exp row (4·Nk) + q15 K_h and 2 Q rows + q15 V_hᵀ and
    2 P rows + 2 int8 score rows (2·Nk) = matmul_qk_scratch + matmul_av_scratch + 6·Nk bytes."""
    return matmul_qk_scratch(nk, d) + matmul_av_scratch(nk, d) + 6 * nk


class Attention(OpKind):
    """softmax(Q Kᵀ/√dh)·V over heads, two query rows at a time: the (heads, Nq, Nk) map never exists.

    Inputs q (Nq, D), k (Nk, D), v (Nk, D); output (Nq, D). The QOp is built from the three source
    QOps (`fuse_qops`), so its integer reference (`intref.attention`) equals them bit for bit.
    """

    name = "attention"
    #: query rows per tile (the C kernel's se_mm2_q15 computes two rows at once)
    tile_rows = 2

    def macs(self, ins: list[Shape], out: Shape, attrs: dict[str, Any]) -> int:
        (nq, d), (nk, _) = ins[0], ins[1]
        return 2 * nq * nk * d

    def flash(self, op: Op, weight_bytes: int | None = None) -> int:
        return SOFTMAX_LUT_BYTES

    def scratch(self, op: Op, ins: list[Shape], out: Shape, sparse: bool = False) -> int:
        return attention_scratch(ins[1][0], ins[0][1] // int(op.attrs["heads"]))

    def run_float(self, op: Op, args: list[Any], p: dict[str, Any] | None) -> Any:
        import torch

        q, k, v = args
        heads = op.attrs["heads"]
        s = (split_heads(q, heads) @ split_heads(k, heads).transpose(-1, -2)) * op.attrs.get("scale", 1.0)
        o = torch.softmax(s, dim=-1) @ split_heads(v, heads)  # (B, heads, Nq, dh)
        return o.transpose(1, 2).reshape(q.shape[0], q.shape[1], -1)  # -> (B, Nq, heads·dh)

    def run_int8(self, q: QOp, args: list[np.ndarray]) -> np.ndarray:
        x, (qz, kz, vz) = q.extra, (t.zero_point for t in q.in_q)
        return intref.attention(
            *args, heads=q.op.attrs["heads"], q_zp=qz, k_zp=kz, s_zp=x["s_zp"], s_mult=q.multiplier[0],
            s_shift=q.shift[0], s_min=x["s_min"], s_max=x["s_max"], lut=x["lut"], p_zp=x["p_zp"], v_zp=vz,
            out_zp=q.out_q.zero_point, mult=q.multiplier[1], shift=q.shift[1], act_min=q.act_min,
            act_max=q.act_max, rows=self.tile_rows)

    def lower(self, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
        from core.engine import lowering

        return lowering.lower_attention(qop, shapes, out, fmt)


def fuse_qops(op: Op, qk: QOp, sm: QOp, av: QOp) -> QOp:
    """The `attention` QOp of fused graph op `op` from its matmul_qk, softmax and matmul_av QOps."""
    from core.tinyformer.qtypes import QOp

    return QOp(op=op, weight=None, bias=None, w_scale=None,
               multiplier=np.array([qk.multiplier[0], av.multiplier[0]], np.int32),
               shift=np.array([qk.shift[0], av.shift[0]], np.int32),
               in_q=(qk.in_q[0], qk.in_q[1], av.in_q[1]), out_q=av.out_q, act_min=av.act_min,
               act_max=av.act_max,
               extra={"lut": sm.extra["lut"], "s_zp": int(qk.out_q.zero_point), "s_min": int(qk.act_min),
                      "s_max": int(qk.act_max), "p_zp": int(av.in_q[0].zero_point)})


KINDS = (MatmulQK(), MatmulAV(), Softmax())
#: kinds that only a schedule creates (graph_of never emits them)
FUSED = (Attention(),)
