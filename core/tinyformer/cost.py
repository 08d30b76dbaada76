"""Deployment cost of a candidate: flash bytes (exact or analytic) and peak SRAM bytes.

Flash of a layer (int8 deployment, TinyFormer/CMSIS-NN conventions):

    conv2d / dwconv2d / linear: weights + 8·out (per-channel Q31 multiplier + int32 shift) + 4·bias
        weights = numel (dense int8) or `sparse.encoded_size` when that is smaller (dense fallback)
    layernorm: 4·(γ + β) (int32 parameters)
    softmax:   1024 (the 256-entry int32 exp lookup table of the integer softmax)

Code: `code_bytes` -- the SparseEngine's per-op code-size model (`core.engine.codesize`, measured
from built ELFs: each distinct kernel once, the library functions the op kinds call, startup and
per-layer glue). `flash_bytes` is constants + code, what the linked ELF programs into flash.

SRAM = the arena of the execution schedule (`core.tinyformer.schedule`: row-tiled attention, kernel
scratch from `OpKind.scratch`), the one the engine links.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np

from core.tinyformer import sparse
from core.tinyformer.graph import Graph, Op
from core.tinyformer.ops import kinds_where, op_kind
from core.tinyformer.ops.attention import SOFTMAX_LUT_BYTES
from core.tinyformer.ops.conv import QPARAM_BYTES_PER_CHANNEL
from core.tinyformer.schedule import schedule

__all__ = ["QPARAM_BYTES_PER_CHANNEL", "SOFTMAX_LUT_BYTES", "analytic_encoded_size", "code_bytes",
           "constants_bytes", "exact_weight_bytes", "flash_bytes", "layer_flash", "sram_bytes", "storage_of"]


def analytic_encoded_size(shape: tuple[int, ...], sparsity: float, b: int) -> int:
    """Encoded size when every row keeps ⌈(1 − s)·blocks⌉ blocks and no gap needs a filler.

    A lower bound of `sparse.encoded_size` for that many kept blocks per row (fillers only add).
    """
    sparse.check_block(shape, b)
    blocks = math.prod(shape[1:]) // b
    kept = blocks - int(math.floor(sparsity * blocks + 1e-9))
    return shape[0] * (2 + kept * (1 + b))


def layer_flash(op: Op, weight_bytes: int | None = None) -> int:
    """Flash bytes of one op (`OpKind.flash`); `weight_bytes` overrides the dense weight storage."""
    return op_kind(op.kind).flash(op, weight_bytes)


def constants_bytes(graph: Graph, weight_bytes: dict[str, int] | None = None) -> int:
    """Flash of the model's constants; `weight_bytes[op]` = stored weight bytes of sparse layers."""
    weight_bytes = weight_bytes or {}
    return sum(layer_flash(op, weight_bytes.get(op.name)) for op in graph.ops)


def storage_of(graph: Graph, weight_bytes: dict[str, int] | None = None) -> dict[str, str]:
    """"sparse" for layers whose stored weights are smaller than dense int8, else "dense"."""
    weight_bytes = weight_bytes or {}
    return {op.name: "sparse" if weight_bytes.get(op.name, op.weight_count) < op.weight_count else "dense"
            for op in graph.ops if op.kind in kinds_where("sparse_capable")}


def code_bytes(graph: Graph, storage: dict[str, str] | None = None,
               blocks: dict[str, int] | None = None) -> int:
    """Code bytes of the SparseEngine program for the graph it executes (attention fused and row-tiled,
    `core.tinyformer.schedule`; `core.engine.codesize.estimate`; block sizes default to the largest
    valid one for sparse layers)."""
    from core.engine.codesize import estimate
    from core.tinyformer.schedule import fuse_attention

    return int(estimate(fuse_attention(graph)[0], storage, blocks)["bytes"])


def flash_bytes(graph: Graph, weight_bytes: dict[str, int] | None = None,
                blocks: dict[str, int] | None = None) -> int:
    """Flash of the deployed model: constants (`weight_bytes[op]` = stored weight bytes of sparse
    layers) + code (`code_bytes`, with the storage that `weight_bytes` implies)."""
    return constants_bytes(graph, weight_bytes) + code_bytes(graph, storage_of(graph, weight_bytes), blocks)


def exact_weight_bytes(op: Op, weight: np.ndarray, b: int) -> int:
    """Stored bytes of a pruned weight (layout `op.weight_shape`): min(encoded size, dense)."""
    return sparse.storage_bytes(np.asarray(weight).reshape(op.weight_shape), b)[1]


def sram_bytes(graph: Graph, sparse_layers: Collection[str] = (), attention: str = "tiled") -> int:
    """SRAM of the activation arena the SparseEngine links: the arena of `schedule.schedule` (row-tiled
    attention by default, the kernels' scratch; `sparse_layers`: layers stored sparse, whose kernels
    keep int32 accumulators instead of im2col columns). The engine places tensors at that very plan."""
    return schedule(graph, sparse_layers, attention).arena_bytes
