"""Graph IR: shapes, MACs and parameter counts against hand counts on tiny configs."""

from __future__ import annotations

import pytest

from core.errors import WorkbenchError
from core.tinyformer.graph import OP_KINDS, graph_of

TINY = {"resolution": 8, "classes": 3, "downsample": [{"kind": "conv_pool", "out": 4}],
        "mbv2": {"out": 4, "expand": [2]}, "vit": [{"dim": 4, "heads": 2, "mlp": 8, "layers": 1}],
        "last": 8, "pool": "avg"}

# op -> (MACs, weights, biases), counted by hand for TINY (4×4 map after the tokenizer, N = 16)
HAND = {
    "ds0.conv": (8 * 8 * 4 * 9 * 3, 4 * 9 * 3, 4),
    "mb0.expand": (16 * 8 * 4, 32, 8), "mb0.dw": (16 * 8 * 9, 72, 8), "mb0.project": (16 * 4 * 8, 32, 4),
    "vit0.local": (16 * 4 * 9 * 4, 144, 4), "vit0.to_tokens": (16 * 4 * 4, 16, 4),
    "vit0.layer0.ln1": (0, 4, 4), "vit0.layer0.q": (256, 16, 4), "vit0.layer0.k": (256, 16, 4),
    "vit0.layer0.v": (256, 16, 4), "vit0.layer0.attn.qk": (16 * 16 * 4, 0, 0),
    "vit0.layer0.attn.av": (16 * 16 * 4, 0, 0), "vit0.layer0.proj": (256, 16, 4),
    "vit0.layer0.ln2": (0, 4, 4), "vit0.layer0.fc1": (16 * 8 * 4, 32, 8),
    "vit0.layer0.fc2": (16 * 4 * 8, 32, 4),
    "vit0.back": (256, 16, 4), "vit0.fuse": (16 * 4 * 9 * 4, 144, 4), "last": (16 * 8 * 4, 32, 8),
    "classifier": (3 * 8, 24, 3),
}


def test_tiny_counts_by_hand() -> None:
    g = graph_of(TINY)
    for op in g.ops:
        assert op.kind in OP_KINDS
        assert (op.macs, op.weight_count, op.bias_count) == HAND.get(op.name, (0, 0, 0)), op.name
    assert g.macs == 18840 and g.params == 756 + 87


def test_tiny_shapes_and_layouts() -> None:
    g = graph_of(TINY)
    shape = {name: t.shape for name, t in g.tensors.items()}
    assert shape["input"] == (8, 8, 3) and shape["ds0.conv"] == (8, 8, 4) and shape["ds0.pool"] == (4, 4, 4)
    assert shape["vit0.tokens"] == (16, 4) and shape["vit0.layer0.attn.qk"] == (2, 16, 16)
    assert shape["pool"] == (1, 8) and shape[g.output] == (1, 3)
    assert g.op("ds0.conv").weight_shape == (4, 3, 3, 3) and g.op("mb0.dw").weight_shape == (8, 3, 3, 1)
    assert g.op("vit0.layer0.fc1").weight_shape == (8, 4) and g.op("vit0.layer0.fc1").attrs["act"] == "relu"
    assert g.op("mb0.add").inputs == ("ds0.pool", "mb0.project")
    assert g.op("vit0.layer0.attn.softmax").aliases_input and g.op("vit0.tokens").aliases_input
    assert g.op("vit0.layer0.attn.qk").attrs["scale"] == pytest.approx(2 ** -0.5)


def test_attention_pool_and_stride2_block() -> None:
    arch = dict(TINY, pool="attn", downsample=[{"kind": "mbv2", "out": 4, "expand": 3}])
    g = graph_of(arch)
    assert g.op("ds0.dw").attrs["stride"] == 2 and g.tensors["ds0.dw"].shape == (4, 4, 9)
    assert "ds0.add" not in g.tensors  # stride 2: no residual
    assert (g.op("pool.score").macs, g.op("pool.av").macs) == (16 * 8, 16 * 8)
    assert g.tensors["pool.av"].shape == (1, 8)
    base = graph_of(TINY)
    delta = (64 * 9 * 3 + 16 * 9 * 9 + 16 * 4 * 9) - 8 * 8 * 4 * 9 * 3 + 2 * 16 * 8  # expand at 8×8, dw s2
    assert g.macs - base.macs == delta


@pytest.mark.parametrize("bad,match", [
    ({**TINY, "pool": "max"}, "pool"),
    ({**TINY, "vit": [{"dim": 6, "heads": 4, "mlp": 8, "layers": 1}]}, "divisible"),
    ({**TINY, "downsample": []}, "downsample"),
    ({k: v for k, v in TINY.items() if k != "last"}, "keys"),
    ({**TINY, "mbv2": {"out": 4, "expand": []}}, "expand"),
])
def test_bad_arch(bad: dict, match: str) -> None:
    with pytest.raises(WorkbenchError, match=match):
        graph_of(bad)
