"""Static activation arena: lifetimes, peak live bytes and greedy-by-size offsets (TFLM style).

Every activation is int8, one byte per element. Ops run in graph order; step `t` is op `t`.

- Buffers. A tensor produced by an op that aliases its input (`Op.aliases_input`: reshape views and
  the in-place softmax) shares its input's buffer. A buffer's size is the largest of its tensors'.
- Lifetimes. A buffer is live from the step of the op that first writes it (step 0 for the graph
  input) to the step of the last op that reads any of its tensors (the last step for the graph
  output), inclusive: at step t an op's inputs, its output and its scratch are live together.
- Scratch. `scratch[op_name]` bytes (im2col columns, int32 accumulators) are a buffer live at that
  op's step only. `default_scratch(graph, sparse_layers)` gives the SparseEngine kernels' own numbers.
- Peak live bytes = max over steps of the sum of the sizes of the buffers live at that step; this is
  the lower bound of any arena. `arena_bytes` is what the greedy placement needs (≥ peak): buffers
  in a fixed order, each at the lowest `align`-aligned offset that does not overlap a placed buffer
  whose lifetime intersects its own; three orders are tried (decreasing size, decreasing
  size × lifetime, first use) and the smallest arena is kept (on the shipped candidates it equals
  the peak; decreasing size alone left 0.5–9% unused).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from core.errors import WorkbenchError
from core.tinyformer.graph import Graph
from core.tinyformer.ops import op_kind
from core.tinyformer.ops.attention import matmul_av_scratch, matmul_qk_scratch
from core.tinyformer.ops.conv import conv_scratch

__all__ = ["Plan", "conv_scratch", "default_scratch", "matmul_av_scratch", "matmul_qk_scratch", "peak_sram",
           "plan"]


@dataclass(frozen=True)
class Plan:
    """Where each activation lives in the arena. Scratch buffers are keyed `"<op>.scratch"`."""

    offsets: dict[str, int]
    sizes: dict[str, int]
    lifetimes: dict[str, tuple[int, int]]
    buffer_of: dict[str, str]
    arena_bytes: int
    peak_live_bytes: int
    peak_step: int

    def live_at(self, step: int) -> list[str]:
        """Buffers live at op index `step`."""
        return [b for b, (s, e) in self.lifetimes.items() if s <= step <= e]


def default_scratch(graph: Graph, sparse_layers: Collection[str] = ()) -> dict[str, int]:
    """Scratch bytes per op of the SparseEngine int8 kernels (`core.engine`), which plans its arena
    with exactly these numbers, so NAS's SRAM figure and the engine's arena agree.

    `sparse_layers` names the conv/linear/depthwise layers stored sparse (their kernels keep int32
    accumulators instead of im2col columns). Each op kind states its own (`OpKind.scratch`, see
    `core.tinyformer.ops`): softmax keeps one int32 row of exponentials (4·L), global average
    pooling one int32 per channel (4·C), the matmuls their q15 operands; others need none.
    """
    out: dict[str, int] = {}
    for op in graph.ops:
        ins = [graph.tensors[t].shape for t in op.inputs]
        n = op_kind(op.kind).scratch(op, ins, graph.tensors[op.output].shape, op.name in sparse_layers)
        if n:
            out[op.name] = n
    return out


def _buffers(graph: Graph) -> tuple[dict[str, str], dict[str, int], dict[str, tuple[int, int]]]:
    """Tensor -> buffer map, buffer sizes and lifetimes (aliases merged)."""
    buffer_of = {graph.input: graph.input}
    first = {graph.input: 0}
    last = {graph.input: 0}
    for t, op in enumerate(graph.ops):
        for name in op.inputs:
            if name not in buffer_of:
                raise WorkbenchError(f"op {op.name!r} reads tensor {name!r} before any op writes it")
            last[buffer_of[name]] = t
        if op.aliases_input:
            src = buffer_of[op.inputs[0]]
            # an in-place op overwrites its input: nobody may read that buffer afterwards
            later = [o.name for o in graph.ops[t + 1 :] if any(buffer_of.get(i) == src for i in o.inputs)]
            if op.kind != "reshape" and later:
                raise WorkbenchError(
                    f"in-place op {op.name!r} overwrites a buffer that {later[0]!r} reads later"
                )
            buffer_of[op.output] = src
        else:
            buffer_of[op.output] = op.output
            first[op.output] = t
        last[buffer_of[op.output]] = max(last.get(buffer_of[op.output], t), t)
    last[buffer_of[graph.output]] = len(graph.ops) - 1
    sizes: dict[str, int] = {}
    for name, buf in buffer_of.items():
        sizes[buf] = max(sizes.get(buf, 0), graph.tensors[name].numel)
    return buffer_of, sizes, {b: (first[b], last[b]) for b in sizes}


#: placement orders `plan` tries (the first that gives the smallest arena wins): biggest buffer first,
#: biggest size × lifetime first, earliest first use first
ORDERS = {
    "size": lambda sz, lt: sorted(sz, key=lambda b: (-sz[b], lt[b][0], b)),
    "area": lambda sz, lt: sorted(sz, key=lambda b: (-sz[b] * (lt[b][1] - lt[b][0] + 1), lt[b][0], b)),
    "first_use": lambda sz, lt: sorted(sz, key=lambda b: (lt[b][0], -sz[b], b)),
}


def _place(sizes: dict[str, int], lifetimes: dict[str, tuple[int, int]], align: int,
           order_by: str = "size") -> dict[str, int]:
    """Greedy: buffers in `ORDERS[order_by]` order, each at the lowest aligned offset clear of every
    co-live placed buffer."""
    order = ORDERS[order_by](sizes, lifetimes)
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    offsets: dict[str, int] = {}
    for b in order:
        s, e = lifetimes[b]
        clashes = sorted((o, end) for o, end, fs, fe in placed if fs <= e and s <= fe)
        offset = 0
        for o, end in clashes:
            if offset + sizes[b] <= o:
                break
            offset = max(offset, -(-end // align) * align)
        offsets[b] = offset
        placed.append((offset, offset + sizes[b], s, e))
    return offsets


def _live(
    graph: Graph, scratch: dict[str, int] | None
) -> tuple[dict[str, str], dict[str, int], dict[str, tuple[int, int]], int, int]:
    """Buffers (incl. scratch), their lifetimes, and the peak live bytes with its step."""
    buffer_of, sizes, lifetimes = _buffers(graph)
    index = {op.name: t for t, op in enumerate(graph.ops)}
    for name, nbytes in (scratch or {}).items():
        if name not in index:
            raise WorkbenchError(f"scratch given for unknown op {name!r}")
        if nbytes < 0:
            raise WorkbenchError(f"scratch of op {name!r} is {nbytes} bytes; it must be >= 0")
        if nbytes:
            key = f"{name}.scratch"
            sizes[key] = int(nbytes)
            lifetimes[key] = (index[name], index[name])
    delta = [0] * (len(graph.ops) + 2)  # difference array: +size at first step, −size after the last
    for b, (s, e) in lifetimes.items():
        delta[s] += sizes[b]
        delta[e + 1] -= sizes[b]
    live, peak, peak_step = 0, -1, 0
    for t in range(max(1, len(graph.ops))):
        live += delta[t]
        if live > peak:
            peak, peak_step = live, t
    return buffer_of, sizes, lifetimes, peak, peak_step


def plan(graph: Graph, scratch: dict[str, int] | None = None, align: int = 4) -> Plan:
    """Lifetimes, peak live bytes and arena offsets for `graph` (+ per-op `scratch` bytes).

    Peak: P = max_t Σ_{b live at t} size(b). Offsets of buffers with intersecting lifetimes never
    overlap; `arena_bytes` = max(offset + size) ≥ P.
    """
    if align < 1:
        raise WorkbenchError(f"alignment {align} must be a positive number of bytes")
    buffer_of, sizes, lifetimes, peak, peak_step = _live(graph, scratch)
    offsets, arena = {}, -1
    for order_by in ORDERS:  # the smallest arena of the greedy orders; ties keep the earlier order
        offs = _place(sizes, lifetimes, align, order_by)
        end = max((offs[b] + sizes[b] for b in sizes), default=0)
        if arena < 0 or end < arena:
            offsets, arena = offs, end
    return Plan(
        offsets=offsets,
        sizes=sizes,
        lifetimes=lifetimes,
        buffer_of=buffer_of,
        arena_bytes=arena,
        peak_live_bytes=peak,
        peak_step=peak_step,
    )


def peak_sram(graph: Graph, scratch: dict[str, int] | None = None) -> int:
    """Peak live activation bytes incl. scratch (the SRAM figure NAS uses; default kernel scratch).

    Same number as `plan(...).peak_live_bytes`, without placing buffers (what NAS needs, fast).
    """
    return _live(graph, default_scratch(graph) if scratch is None else scratch)[3]
