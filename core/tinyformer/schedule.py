"""One schedule for the memory planner, NAS and the engine: what runs, in which order, with which
scratch, at which arena offsets.

`schedule(graph, sparse_layers)` rewrites the layer graph into the graph the SparseEngine executes
and plans its arena (`core.tinyformer.memory.plan`) with the kernels' own scratch
(`OpKind.scratch`). NAS's SRAM figure (`core.tinyformer.cost.sram_bytes`) and the engine's arena
(`core.engine.codegen.generate`, which places every tensor at this plan's offsets) come from the
same call, so they cannot drift apart.

Memory-aware execution the schedule applies:

- **Row-tiled attention** (`attention="tiled"`, the default; MCUFormer, depth-first attention): each
  `matmul_qk → softmax (in place) → matmul_av` chain whose score map has no other reader becomes one
  `attention` op that computes two query rows at a time (QKᵀ → softmax → AV per row tile), so the
  `heads·Nq·Nk` map is never stored; its scratch holds both matmuls' q15 operands and two score
  rows. Bit for bit the same outputs (`intref.attention`). Its output overwrites Q in place (row i
  of head h is written after Q's row i of head h was read) when nothing else reads Q.
  `attention="full"` keeps the three ops (what a CMSIS-NN deployment runs: CMSIS-NN has no fused
  attention).
- Not applied: in-place depthwise (TinyEngine). The peaks of the benchmark's models sit at an
  attention layer or at the first conv/pool layer (today's NAS candidates), never at a depthwise
  layer, so aliasing a depthwise output with its input lowered no arena (measured with this
  planner); it would cost a 2-row output ring in the dense kernel.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from core.errors import WorkbenchError, unknown
from core.tinyformer import memory
from core.tinyformer.graph import Graph, Op
from core.tinyformer.ops import op_kind

ATTENTION_MODES = ("tiled", "full")


@dataclass(frozen=True)
class Schedule:
    """The executed graph, where its fused ops came from, the kernels' scratch and the arena plan."""

    graph: Graph
    #: fused op name -> names of the source graph's ops it replaces (matmul_qk, softmax, matmul_av)
    fused: dict[str, tuple[str, ...]]
    scratch: dict[str, int]
    plan: memory.Plan

    @property
    def arena_bytes(self) -> int:
        return self.plan.arena_bytes

    @property
    def peak_bytes(self) -> int:
        return self.plan.peak_live_bytes


def _attention_chains(graph: Graph, keep: Collection[str]) -> list[tuple[Op, Op, Op]]:
    """(matmul_qk, softmax, matmul_av) chains whose scores and probabilities only the chain reads."""
    readers: dict[str, list[Op]] = {}
    for op in graph.ops:
        for t in op.inputs:
            readers.setdefault(t, []).append(op)
    chains = []
    for qk in graph.ops:
        if qk.kind != "matmul_qk" or qk.output == graph.output:
            continue
        sm = readers.get(qk.output, [])
        if len(sm) != 1 or sm[0].kind != "softmax" or sm[0].output == graph.output:
            continue
        av = readers.get(sm[0].output, [])
        if len(av) != 1 or av[0].kind != "matmul_av" or av[0].inputs[0] != sm[0].output:
            continue
        if av[0].attrs.get("heads") != qk.attrs.get("heads") or {qk.name, sm[0].name, av[0].name} & set(keep):
            continue
        chains.append((qk, sm[0], av[0]))
    return chains


def _owns_buffer(graph: Graph, tensor: str, reader: Op) -> bool:
    """True when `reader` is the only reader of `tensor`, which has a buffer of its own (not the graph
    input or output, not a view or in-place result of another tensor)."""
    if tensor in (graph.input, graph.output):
        return False
    producer = next((op for op in graph.ops if op.output == tensor), None)
    readers = [op for op in graph.ops if tensor in op.inputs]
    return producer is not None and not producer.aliases_input and readers == [reader]


def fuse_attention(graph: Graph, keep: Collection[str] = ()) -> tuple[Graph, dict[str, tuple[str, ...]]]:
    """`graph` with every eligible attention chain replaced by one row-tiled `attention` op.

    The fused op is named after the chain (`vit0.layer0.attn` for `vit0.layer0.attn.qk`), runs where
    the chain's matmul_av ran, reads (q, k, v) and writes the matmul_av's output tensor. Chains with
    an op named in `keep` stay as they are.
    """
    chains = _attention_chains(graph, keep)
    if not chains:
        return graph, {}
    drop = {op.name for qk, sm, _ in chains for op in (qk, sm)}
    by_av = {av.name: (qk, sm, av) for qk, sm, av in chains}
    ops, fused = [], {}
    for op in graph.ops:
        if op.name in drop:
            continue
        if op.name not in by_av:
            ops.append(op)
            continue
        qk, sm, av = by_av[op.name]
        name = qk.name.removesuffix(".qk") if qk.name.endswith(".qk") else f"{qk.name}+attention"
        inputs = (qk.inputs[0], qk.inputs[1], av.inputs[1])
        attrs = {"heads": qk.attrs["heads"], "scale": qk.attrs.get("scale", 1.0)}
        if _owns_buffer(graph, qk.inputs[0], qk):
            # output row i of head h is written after Q's row i of head h was read (same shape):
            # the output takes Q's buffer
            attrs["inplace"] = True
        shapes = [graph.tensors[t].shape for t in inputs]
        macs = op_kind("attention").macs(shapes, graph.tensors[av.output].shape, attrs)
        ops.append(Op(name=name, kind="attention", inputs=inputs, output=av.output, attrs=attrs, macs=macs))
        fused[name] = (qk.name, sm.name, av.name)
    gone = {qk.output for qk, _, _ in chains} | {sm.output for _, sm, _ in chains}
    tensors = {n: t for n, t in graph.tensors.items() if n not in gone}
    return Graph(tensors=tensors, ops=tuple(ops), input=graph.input, output=graph.output), fused


def schedule(graph: Graph, sparse_layers: Collection[str] = (), attention: str = "tiled",
             keep: Collection[str] = (), scratch: dict[str, int] | None = None, align: int = 4) -> Schedule:
    """The execution schedule of `graph` and its arena plan (see the module docstring).

    sparse_layers: layers stored sparse (their kernels' scratch differs); keep: ops never fused (e.g.
    the layers a CMSIS-NN deployment runs on CMSIS-NN); scratch: per-op scratch bytes that replace the
    engine kernels' own (a CMSIS-NN layer's buffer).
    """
    if attention not in ATTENTION_MODES:
        raise unknown("attention schedule", attention, ATTENTION_MODES)
    g, fused = fuse_attention(graph, keep) if attention == "tiled" else (graph, {})
    need = memory.default_scratch(g, sparse_layers)
    for name, nbytes in (scratch or {}).items():
        if nbytes:
            need[name] = int(nbytes)
        else:
            need.pop(name, None)
    return Schedule(graph=g, fused=fused, scratch=need, plan=memory.plan(g, need, align))


def scheduled_qops(graph: Graph, fused: dict[str, tuple[str, ...]], qops: Sequence[Any]) -> list[Any]:
    """The QOps of the executed `graph` (`Schedule.graph`, with `Schedule.fused`), in execution order:
    the source model's QOps, and for every fused attention op the QOp `ops.attention.fuse_qops`
    builds from its three source QOps."""
    from core.tinyformer.ops.attention import fuse_qops

    by_name = {q.op.name: q for q in qops}
    out = []
    for op in graph.ops:
        if op.name in fused:
            out.append(fuse_qops(op, *(by_name[n] for n in fused[op.name])))
        elif op.name in by_name:
            out.append(by_name[op.name])
        else:
            raise WorkbenchError(f"the quantized model has no op {op.name!r} of the schedule")
    return out
