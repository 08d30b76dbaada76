"""Memory planner: peak live bytes vs brute force, no overlap of co-live buffers, aliases."""

from __future__ import annotations

import random

import pytest

from core.errors import WorkbenchError
from core.tinyformer import memory, space
from core.tinyformer.graph import Graph, Op, TensorSpec, graph_of


def _random_graph(seed: int, n_ops: int) -> Graph:
    rng = random.Random(seed)
    tensors = {"t0": TensorSpec("t0", (rng.randint(1, 64),))}
    ops = []
    for i in range(1, n_ops + 1):
        names = list(tensors)
        name = f"t{i}"
        src = rng.choice(names[-4:])
        if rng.random() < 0.2:  # a zero-cost view of an existing tensor
            tensors[name] = TensorSpec(name, (1, *tensors[src].shape))
            ops.append(Op(name, "reshape", (src,), name))
            continue
        inputs = tuple(sorted({src, rng.choice(names)}))
        tensors[name] = TensorSpec(name, (rng.randint(1, 64),))
        ops.append(Op(name, "add", inputs, name))
    return Graph(tensors=tensors, ops=tuple(ops), input="t0", output=f"t{n_ops}")


def _brute_peak(graph: Graph, scratch: dict[str, int]) -> int:
    """Enumerate every step; a storage root is live when any tensor viewing it is live."""
    root = {graph.input: graph.input}
    produced = {graph.input: 0}
    for t, op in enumerate(graph.ops):
        root[op.output] = root[op.inputs[0]] if op.kind == "reshape" else op.output
        produced[op.output] = t
    last_read = {name: produced[name] for name in root}
    for t, op in enumerate(graph.ops):
        for name in op.inputs:
            last_read[name] = t
    last_read[graph.output] = len(graph.ops) - 1
    size = {}
    for name, r in root.items():
        size[r] = max(size.get(r, 0), graph.tensors[name].numel)
    peak = 0
    for t, op in enumerate(graph.ops):
        live = {root[n] for n in root if produced[n] <= t <= last_read[n]}
        peak = max(peak, sum(size[r] for r in live) + scratch.get(op.name, 0))
    return peak


def _assert_no_overlap(plan: memory.Plan, align: int) -> None:
    bufs = list(plan.sizes)
    for b in bufs:
        assert plan.offsets[b] % align == 0
    for i, a in enumerate(bufs):
        for b in bufs[i + 1:]:
            (s1, e1), (s2, e2) = plan.lifetimes[a], plan.lifetimes[b]
            if s1 <= e2 and s2 <= e1:
                disjoint = (plan.offsets[a] + plan.sizes[a] <= plan.offsets[b]
                            or plan.offsets[b] + plan.sizes[b] <= plan.offsets[a])
                assert disjoint, (a, b)
    assert plan.arena_bytes == max(plan.offsets[b] + plan.sizes[b] for b in bufs)
    assert plan.arena_bytes >= plan.peak_live_bytes


def test_chain_hand_count() -> None:
    tensors = {n: TensorSpec(n, (s,)) for n, s in (("a", 10), ("b", 20), ("c", 30))}
    g = Graph(tensors, (Op("b", "add", ("a",), "b"), Op("c", "add", ("b",), "c")), "a", "c")
    p = memory.plan(g, align=1)
    assert p.peak_live_bytes == 50 and p.peak_step == 1
    assert p.lifetimes == {"a": (0, 0), "b": (0, 1), "c": (1, 1)}
    # greedy by size: c at 0; b co-lives with c -> 30; a co-lives only with b -> back at 0
    assert p.offsets == {"c": 0, "b": 30, "a": 0} and p.arena_bytes == 50


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_match_brute_force(seed: int) -> None:
    g = _random_graph(seed, n_ops=3 + seed % 12)
    rng = random.Random(seed)
    scratch = {op.name: rng.choice([0, 0, 8, 33]) for op in g.ops}
    align = rng.choice([1, 4])
    p = memory.plan(g, scratch, align=align)
    assert p.peak_live_bytes == _brute_peak(g, scratch)
    _assert_no_overlap(p, align)


@pytest.mark.parametrize("seed", range(4))
def test_real_graphs_match_brute_force(seed: int) -> None:
    sp = space.SpaceConfig(mbv2_widths=(8, 12), vit_dims=(8, 16), vit_mlp=(16,), last_widths=(16,),
                           ds_widths=(8,), resolution=16)
    g = graph_of(space.sample(sp, random.Random(seed)))
    scratch = memory.default_scratch(g)
    p = memory.plan(g, scratch)
    # the in-place softmax aliases its input, like a reshape does, for the brute force
    as_views = Graph(g.tensors, tuple(Op(o.name, "reshape", o.inputs, o.output) if o.kind == "softmax" else o
                                      for o in g.ops), g.input, g.output)
    assert p.peak_live_bytes == _brute_peak(as_views, scratch)
    _assert_no_overlap(p, 4)
    for op in g.ops:
        if op.kind in ("reshape", "softmax"):
            assert p.buffer_of[op.output] == p.buffer_of[op.inputs[0]]


def test_attention_map_dominates_sram() -> None:
    arch = space.extreme(space.SpaceConfig(), largest=True)
    g = graph_of(arch)
    p = memory.plan(g)
    heads, n = arch["vit"][0]["heads"], 16 * 16
    assert p.peak_live_bytes >= heads * n * n
    assert g.tensors[g.ops[p.peak_step].output].shape in ((heads, n, n), (n, arch["vit"][0]["dim"]))


def test_bad_inputs() -> None:
    tensors = {n: TensorSpec(n, (4,)) for n in "abc"}
    ops = (Op("b", "softmax", ("a",), "b", attrs={"inplace": True}), Op("c", "add", ("a", "b"), "c"))
    g = Graph(tensors, ops, "a", "c")
    with pytest.raises(WorkbenchError, match="in-place"):
        memory.plan(g)
    ok = Graph(tensors, (Op("b", "add", ("a",), "b"),), "a", "b")
    with pytest.raises(WorkbenchError, match="unknown op"):
        memory.plan(ok, {"zzz": 4})
    with pytest.raises(WorkbenchError, match=">= 0"):
        memory.plan(ok, {"b": -1})
    bad = Graph(tensors, (Op("b", "add", ("c",), "b"),), "a", "b")
    with pytest.raises(WorkbenchError, match="before any op writes"):
        memory.plan(bad)
