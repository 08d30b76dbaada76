"""Block-magnitude pruning hits the requested sparsity at block granularity; cubic schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.errors import WorkbenchError
from core.tinyformer import prune, sparse
from core.tinyformer.graph import graph_of
from core.tinyformer.model import build


@pytest.mark.parametrize("shape,b", [((8, 3, 3, 4), 2), ((8, 3, 3, 8), 4), ((16, 3, 3, 1), 3), ((10, 12), 1)])
@pytest.mark.parametrize("s", [0.0, 0.3, 0.55, 0.9, 0.95])
def test_block_sparsity_exact(shape: tuple[int, ...], b: int, s: float) -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=shape)
    keep = prune.block_magnitude_mask(w, s, b)
    blocks = keep.reshape(-1, b)
    assert (blocks.all(axis=1) | ~blocks.any(axis=1)).all()  # whole blocks only
    n = blocks.shape[0]
    assert int((~blocks[:, 0]).sum()) == math.floor(s * n + 1e-9)
    scores = np.abs(w).reshape(-1, b).mean(axis=1)
    if 0 < (~blocks[:, 0]).sum() < n:
        assert scores[~blocks[:, 0]].max() <= scores[blocks[:, 0]].min()
    pruned = np.where(keep, np.clip(np.round(w * 40), -127, 127), 0).astype(np.int8)
    assert sparse.block_mask(pruned, b).sum() <= n - math.floor(s * n + 1e-9)


def test_cubic_schedule() -> None:
    assert prune.cubic_schedule(0, 10, 0.8) == 0.0
    assert prune.cubic_schedule(10, 10, 0.8) == pytest.approx(0.8)
    assert prune.cubic_schedule(5, 10, 0.8, 0.2) == pytest.approx(0.8 - 0.6 * 0.125)
    assert prune.cubic_schedule(20, 10, 0.8) == pytest.approx(0.8)
    with pytest.raises(WorkbenchError):
        prune.cubic_schedule(0, 0, 0.5)
    with pytest.raises(WorkbenchError, match="sparsity"):
        prune.block_magnitude_mask(np.ones((2, 4)), 1.0, 1)


def test_model_masks_follow_deploy_layout_and_finetune_keeps_them() -> None:
    arch = {"resolution": 8, "classes": 3, "downsample": [{"kind": "conv_pool", "out": 4}],
            "mbv2": {"out": 4, "expand": [2]}, "vit": [{"dim": 4, "heads": 2, "mlp": 8, "layers": 1}],
            "last": 8, "pool": "avg"}
    torch.manual_seed(0)
    model, g = build(arch), graph_of(arch)
    target = {"mb0.expand": 0.5, "vit0.local": 0.75, "mb0.dw": 0.5}
    blocks = {"mb0.expand": 2, "vit0.local": 4, "mb0.dw": 3}
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 3, (16,))
    masks = prune.finetune(model, g, target, blocks, x, y, steps=4)
    got = prune.achieved(masks, g)
    for name, s in target.items():
        w = prune.deploy_weight(model, g.op(name))
        assert float((w == 0).mean()) == pytest.approx(s) == pytest.approx(got[name])
        mask = sparse.block_mask(w, blocks[name])
        assert mask.sum() == mask.size - round(s * mask.size)
