"""The int8 quantization records every layer of the toolchain passes around: `QTensor` and `QOp`.

They sit below `core.tinyformer.quant` (calibration, `run_int8`) and the per-operator registry
`core.tinyformer.ops` (which fills and executes QOps), so that neither imports the other's module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from core.tinyformer.graph import Op


@dataclass(frozen=True)
class QTensor:
    """Asymmetric int8 quantization of one activation tensor: real = scale·(q − zero_point)."""

    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.round(np.asarray(x) / self.scale) + self.zero_point, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (np.asarray(q, dtype=np.float64) - self.zero_point) * self.scale


@dataclass
class QOp:
    """One quantized op: everything the C kernel needs, with the meaning fixed by `intref`.

    weight: int8 in `op.weight_shape` layout (conv (O, kh, kw, I), dw (C, kh, kw, 1), linear (out, in));
    for layernorm int16 γ_q (D,). bias: int32 (conv/linear bias, layernorm β_q), else None.
    w_scale: float per out-channel (conv, dw) or shape (1,) (linear, layernorm s_γ), else None.
    multiplier / shift: int32 arrays — (Cout,) for conv/dw; (1,) for linear, matmuls, layernorm;
    (3,) for add = [input a, input b, output]; (0,) for softmax, pools and reshape.
    in_q: one QTensor per input; out_q: the output's. act_min/act_max: int8 clamp bounds.
    extra: "lut" (int32[256]) for softmax; "left_shift" (20) for add.
    """

    op: Op
    weight: np.ndarray | None
    bias: np.ndarray | None
    w_scale: np.ndarray | None
    multiplier: np.ndarray
    shift: np.ndarray
    in_q: tuple[QTensor, ...]
    out_q: QTensor
    act_min: int = -128
    act_max: int = 127
    extra: dict[str, Any] = field(default_factory=dict)
