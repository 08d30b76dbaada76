"""Per-op quantization (float params + tensor quantization -> `QOp`) and per-op int8 execution.

Both dispatch to the op's `core.tinyformer.ops` kind: `quantize_op` builds the QOp from the kind's
fields (the rules listed in `core.tinyformer.quant`), `run_qop` calls the kind's integer reference
(`intref`) with exactly the QOp's fields, so the engine's C call per op takes the same arguments in
the same meaning.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import WorkbenchError
from core.tinyformer.graph import Op
from core.tinyformer.ops import op_kind, spatial_attrs
from core.tinyformer.qmath import activation_range
from core.tinyformer.qtypes import QOp, QTensor

_NONE = np.zeros(0, dtype=np.int32)


def quantize_op(op: Op, p: dict[str, Any] | None, ins: tuple[QTensor, ...], out_q: QTensor) -> QOp:
    """The QOp of graph op `op` given its float params `p` and its tensors' quantization."""
    kind = op_kind(op.kind)
    fields: dict[str, Any] = {"weight": None, "bias": None, "w_scale": None, "multiplier": _NONE,
                              "shift": _NONE, "extra": {}}
    act_min, act_max = activation_range(op.attrs.get("act", "none"), out_q.scale, out_q.zero_point)
    if kind.weighted and p is None:
        raise WorkbenchError(f"op {op.name!r} has no parameters in the model")
    fields.update(kind.quantize(op, p, ins, out_q))
    return QOp(op=op, in_q=ins, out_q=out_q, act_min=act_min, act_max=act_max, **fields)


def run_qop(q: QOp, args: list[np.ndarray]) -> np.ndarray:
    """Execute one QOp with the integer reference; args are the int8 inputs in graph shapes."""
    return op_kind(q.op.kind).run_int8(q, args)


def op_attrs(q: QOp) -> dict[str, Any]:
    """Kernel, stride and pad of a spatial op with the graph's defaults filled in (stride = kernel
    for pooling, pad 0)."""
    return spatial_attrs(q.op)
