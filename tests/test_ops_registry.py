"""The per-operator registry (core.tinyformer.ops): every op kind is registered once and the planner,
the cost model, the quantizer and the engine read the same numbers from it."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from core.engine import synth
from core.engine.lowering import WeightFormat, lower_op
from core.errors import WorkbenchError
from core.tinyformer import cost, memory
from core.tinyformer.graph import OP_KINDS, graph_of
from core.tinyformer.ops import OPS, kinds_where, op_kind
from core.tinyformer.quant_ops import run_qop

ROOT = Path(__file__).resolve().parents[1]
ARCH = {"resolution": 16, "classes": 4, "downsample": [{"kind": "conv_pool", "out": 8}],
        "mbv2": {"out": 8, "expand": [2]}, "vit": [{"dim": 8, "heads": 2, "mlp": 16, "layers": 1}],
        "last": 16, "pool": "attn"}


def test_every_graph_kind_is_registered_once_under_its_name():
    assert tuple(OPS) == OP_KINDS
    assert all(OPS[name].name == name for name in OPS)
    assert kinds_where("sparse_capable") == ("conv2d", "dwconv2d", "linear")
    assert kinds_where("aliases_input") == ("reshape",)
    with pytest.raises(WorkbenchError, match=r"unknown op kind 'gelu'; known: conv2d, dwconv2d"):
        op_kind("gelu")


@pytest.mark.parametrize("kind", [k for k in OP_KINDS if k != "reshape"])
@pytest.mark.parametrize("sparse", [False, True])
def test_engine_planner_and_registry_agree_per_kind(kind, sparse):
    """Lowered scratch == OpKind.scratch == memory.default_scratch; MACs by the kind's formula; the
    registry's integer reference gives the graph's output shape."""
    rng = np.random.default_rng(3)
    sparse = sparse and kind in kinds_where("sparse_capable")
    extra = {"sparsity": 0.5, "block": 1} if sparse else {}
    model = synth.single_op(kind, rng, **extra)
    qop, graph = model.qops[-1], model.graph
    op = qop.op
    ins = [graph.tensors[t].shape for t in op.inputs]
    out = graph.tensors[op.output].shape
    low = lower_op(qop, graph, WeightFormat(sparse, 1 if sparse else 0))
    planned = memory.default_scratch(graph, {op.name} if sparse else ())
    assert low.scratch == op_kind(kind).scratch(op, ins, out, sparse) == planned.get(op.name, 0)
    assert op.macs == op_kind(kind).macs(ins, out, op.attrs)
    assert cost.layer_flash(op) == op_kind(kind).flash(op)
    args = [rng.integers(-128, 128, s).astype(np.int8) for s in ins]
    assert run_qop(qop, args).reshape(out).shape == out


def test_graph_macs_come_from_the_kinds_hand_formulas():
    g = graph_of(ARCH)
    by_kind = {}
    for op in g.ops:
        by_kind.setdefault(op.kind, []).append(op)
    qk = by_kind["matmul_qk"][0]
    (nq, d), (nk, _) = (g.tensors[t].shape for t in qk.inputs)
    assert qk.macs == nq * nk * d == 64 * 64 * 8
    conv = g.op("ds0.conv")
    assert conv.macs == 16 * 16 * 8 * 3 * 3 * 3
    dw = g.op("mb0.dw")
    assert dw.macs == 8 * 8 * 16 * 3 * 3
    pool_av = g.op("pool.av")
    assert pool_av.macs == 64 * 16  # one query over N = 64 tokens of width 16
    assert sum(op.macs for op in by_kind["softmax"] + by_kind["add"] + by_kind["reshape"]) == 0


def _imports(path: Path) -> set[str]:
    """Every module a source file imports, at module level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("module, forbidden", [
    ("core/tinyformer/model.py", "core.tinyformer.space"),
    ("core/tinyformer/quant_ops.py", "core.tinyformer.quant"),
    ("core/tinyformer/qtypes.py", "core.tinyformer.quant"),
])
def test_no_import_cycle(module, forbidden):
    assert forbidden not in _imports(ROOT / module)


def test_an_op_kind_without_its_float_int8_or_lowering_cannot_be_registered():
    from core.tinyformer.ops import OpKind

    class Half(OpKind):
        name = "half"

        def run_float(self, op, args, p):
            return args[0]

        def lower(self, qop, shapes, out, fmt):
            return None

    with pytest.raises(TypeError, match="run_int8"):
        Half()
