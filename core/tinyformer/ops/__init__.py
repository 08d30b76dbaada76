"""One operator, one place: the registry of the graph IR's op kinds.

Each op kind (`core.tinyformer.graph.OP_KINDS`) is one `OpKind` object that owns everything the
toolchain needs to know about it, so NAS, the memory planner, the quantizer, the integer reference
and the code generator read one source of truth (the TinyEngine convention):

    kind = op_kind("conv2d")
    kind.macs(in_shapes, out_shape, attrs)      # multiply-accumulates (graph IR, NAS)
    kind.flash(op, weight_bytes)                # constant bytes in flash (cost model)
    kind.scratch(op, in_shapes, out_shape, sparse)  # kernel scratch bytes (planner and engine)
    kind.params(module, op) / kind.run_float(op, args, p)   # float twin (calibration)
    kind.output_q(ins, calibrated) / kind.quantize(op, p, ins, out_q)   # int8 parameters
    kind.run_int8(qop, args)                    # integer reference (`intref`), bit for bit the C
    kind.lower(qop, shapes, out_shape, fmt)     # the SparseEngine kernel call (core.engine.lowering)

`attention` is the fused, row-tiled QKᵀ→softmax→AV that `core.tinyformer.schedule` substitutes for
the three ops. Flags say which family an op belongs to: `weighted` (float parameters in the model:
conv, depthwise, linear, LayerNorm), `sparse_capable` (int8 weights the engine may store blockwise
sparse: conv, depthwise, linear), `aliases_input` (the output is a view of the first input: reshape).

Torch is imported inside the float methods only: `graph_of` and the planner stay torch-free.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import WorkbenchError

if TYPE_CHECKING:
    from core.tinyformer.graph import Op
    from core.tinyformer.qtypes import QOp, QTensor

Shape = tuple[int, ...]


class OpKind(abc.ABC):
    """Defaults shared by all op kinds: no MACs, no flash, no scratch, no parameters. Every kind must
    say how it runs in float and in int8 and how it lowers to the engine (abstract: a kind without
    them cannot be instantiated, so the registry cannot hold one)."""

    name: str = ""
    weighted: bool = False
    sparse_capable: bool = False
    aliases_input: bool = False
    #: how the output's quantization is chosen: "calibrated", "input" (same as the first input),
    #: or "softmax" (the fixed (1/256, −128) of the integer softmax)
    out_q_rule: str = "calibrated"

    def macs(self, ins: list[Shape], out: Shape, attrs: dict[str, Any]) -> int:
        return 0

    def flash(self, op: Op, weight_bytes: int | None = None) -> int:
        """Constant bytes the deployed op keeps in flash; `weight_bytes` overrides dense storage."""
        return 0

    def scratch(self, op: Op, ins: list[Shape], out: Shape, sparse: bool = False) -> int:
        """Scratch bytes of the SparseEngine kernel (what the memory planner reserves)."""
        return 0

    def params(self, module: Any, op: Op) -> dict[str, Any] | None:
        """Float64 parameters of the op read from its torch module (None: the op has none)."""
        return None

    @abc.abstractmethod
    def run_float(self, op: Op, args: list[Any], p: dict[str, Any] | None) -> Any:
        """The op's float64 output from its inputs and parameters."""

    def output_q(self, ins: tuple[QTensor, ...], calibrated: Any) -> QTensor:
        """The output's quantization: `calibrated()` gives the observed range's QTensor."""
        if self.out_q_rule == "input":
            return ins[0]
        if self.out_q_rule == "softmax":
            from core.tinyformer.qmath import SOFTMAX_OUT_SCALE, SOFTMAX_OUT_ZP
            from core.tinyformer.qtypes import QTensor

            return QTensor(SOFTMAX_OUT_SCALE, SOFTMAX_OUT_ZP)
        return calibrated()

    def quantize(self, op: Op, p: dict[str, Any] | None, ins: tuple[QTensor, ...], out_q: QTensor
                 ) -> dict[str, Any]:
        """QOp fields beyond the defaults (weight, bias, w_scale, multiplier, shift, extra)."""
        return {}

    @abc.abstractmethod
    def run_int8(self, q: QOp, args: list[np.ndarray]) -> np.ndarray:
        """The integer reference: the op's int8 output, bit for bit what the kernels compute."""

    @abc.abstractmethod
    def lower(self, qop: Any, shapes: list[Shape], out: Shape, fmt: Any) -> Any:
        """The engine's `Lowered` kernel call (`core.engine.lowering`)."""

    def lower_cmsis(self, qop: Any, shapes: list[Shape], out: Shape) -> Any:
        """The CMSIS-NN call, or None where CMSIS-NN has no kernel with these semantics."""
        return None


def spatial_attrs(op: Op) -> dict[str, Any]:
    """Kernel, stride and pad of a spatial op with the graph's defaults filled in (stride = kernel
    for pooling, pad 0)."""
    at = op.attrs
    kernel = at.get("kernel", (1, 1))
    default_stride = kernel if op.kind in ("maxpool", "avgpool") else 1
    return {"kernel": kernel, "stride": at.get("stride", default_stride), "pad": at.get("pad", 0)}


def _registry() -> dict[str, OpKind]:
    from core.tinyformer.ops import attention, conv, misc

    kinds = [*conv.KINDS, *attention.KINDS, *misc.KINDS, *attention.FUSED]
    return {k.name: k for k in kinds}


#: op kind name -> its OpKind, in the order of `core.tinyformer.graph.OP_KINDS`
OPS: dict[str, OpKind] = _registry()


def op_kind(name: str) -> OpKind:
    """The registered OpKind called `name`; an unknown name lists the known ones."""
    try:
        return OPS[name]
    except KeyError:
        raise WorkbenchError(f"unknown op kind {name!r}; known: {', '.join(OPS)}") from None


def kinds_where(flag: str) -> tuple[str, ...]:
    """Names of the op kinds whose boolean attribute `flag` is true (e.g. "sparse_capable")."""
    return tuple(n for n, k in OPS.items() if getattr(k, flag))


__all__ = ["OPS", "OpKind", "kinds_where", "op_kind", "spatial_attrs"]
