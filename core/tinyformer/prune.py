"""Block-magnitude pruning at the granularity of the sparse format, and the gradual cubic schedule.

Blocks are those of `core.tinyformer.sparse` in the deployed layout `(out, kh, kw, in)`: b input
channels at one kernel position (conv, linear), or b = 3 along the kernel width (depthwise). A
block's score is its mean |w|; pruning a layer to sparsity s zeroes the ⌊s·n⌋ lowest-scoring of its
n blocks (layer-wise ranking; ties → lower index first), so the achieved block sparsity is exactly
⌊s·n⌋/n.

Gradual pruning (Zhu & Gupta 2017): s_t = s_f + (s_i − s_f)·(1 − t/T)³ for 0 ≤ t ≤ T.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import WorkbenchError
from core.tinyformer.graph import Graph, Op
from core.tinyformer.ops import kinds_where
from core.tinyformer.sparse import check_block

PRUNABLE = kinds_where("sparse_capable")


def cubic_schedule(t: int, total: int, s_final: float, s_initial: float = 0.0) -> float:
    """Sparsity at step t of T: s_f + (s_i − s_f)(1 − t/T)³ (clamped to [0, T])."""
    if total < 1:
        raise WorkbenchError(f"schedule length {total} must be >= 1")
    frac = min(max(t, 0), total) / total
    return s_final + (s_initial - s_final) * (1.0 - frac) ** 3


def to_deploy_layout(w: torch.Tensor) -> torch.Tensor:
    """torch conv (out, in, kh, kw) -> (out, kh, kw, in); linear (out, in) unchanged."""
    return w.permute(0, 2, 3, 1) if w.dim() == 4 else w


def from_deploy_layout(w: torch.Tensor) -> torch.Tensor:
    """(out, kh, kw, in) -> torch conv (out, in, kh, kw); 2-D unchanged."""
    return w.permute(0, 3, 1, 2) if w.dim() == 4 else w


def block_magnitude_mask(w: np.ndarray | torch.Tensor, sparsity: float, b: int) -> np.ndarray:
    """Keep-mask (same shape as the deploy-layout `w`) zeroing the ⌊s·n⌋ blocks of least mean |w|."""
    if not 0.0 <= sparsity < 1.0:
        raise WorkbenchError(f"sparsity {sparsity} must be in [0, 1)")
    w = w.detach().cpu().numpy() if isinstance(w, torch.Tensor) else np.asarray(w)
    check_block(w.shape, b)
    scores = np.abs(w.astype(np.float64)).reshape(-1, b).mean(axis=1)  # (n_blocks,), row-major blocks
    k = int(math.floor(sparsity * scores.size + 1e-9))
    keep = np.ones(scores.size, dtype=bool)
    keep[np.argsort(scores, kind="stable")[:k]] = False
    return np.repeat(keep, b).reshape(w.shape)


def weight_of(model: nn.Module, op: Op) -> nn.Parameter:
    """The torch weight of a graph op (through `op.attrs["module"]`)."""
    mod = model.get_submodule(op.attrs["module"])
    return mod.conv.weight if hasattr(mod, "conv") else mod.weight


def prunable_ops(graph: Graph) -> list[Op]:
    return [op for op in graph.ops if op.kind in PRUNABLE]


def make_masks(
    model: nn.Module, graph: Graph, sparsity: dict[str, float], blocks: dict[str, int]
) -> dict[str, torch.Tensor]:
    """Torch-layout keep-masks for every op named in `sparsity` (block size from `blocks`)."""
    masks = {}
    for op in prunable_ops(graph):
        s = sparsity.get(op.name, 0.0)
        if s > 0:
            w = to_deploy_layout(weight_of(model, op).detach())
            keep = torch.from_numpy(block_magnitude_mask(w, s, blocks.get(op.name, 1)))
            masks[op.name] = from_deploy_layout(keep).contiguous()
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, graph: Graph, masks: dict[str, torch.Tensor]) -> None:
    """Zero the pruned weights in place."""
    for name, keep in masks.items():
        weight_of(model, graph.op(name)).mul_(keep.to(torch.float32))


def deploy_weight(model: nn.Module, op: Op) -> np.ndarray:
    """The op's float weight in the deployed `op.weight_shape` layout."""
    return to_deploy_layout(weight_of(model, op).detach()).numpy().reshape(op.weight_shape)


def finetune(
    model: nn.Module,
    graph: Graph,
    sparsity: dict[str, float],
    blocks: dict[str, int],
    x: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    lr: float = 0.01,
    batch: int = 64,
    seed: int = 0,
    gradual: bool = True,
) -> dict[str, torch.Tensor]:
    """Fine-tune with pruning: masks re-ranked every step with the cubic schedule reaching `sparsity`
    at 3/4 of the steps (then fixed), or the final masks from the start when `gradual` is False."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    ramp = max(1, (3 * steps) // 4)
    masks: dict[str, torch.Tensor] = {}
    for t in range(steps + 1):
        if not gradual and t == 0 or gradual and t <= ramp:
            target = {k: cubic_schedule(t, ramp, s) if gradual else s for k, s in sparsity.items()}
            masks = make_masks(model, graph, target, blocks)
        apply_masks(model, graph, masks)
        if t == steps:
            break
        model.train()
        idx = torch.randint(0, len(y), (min(batch, len(y)),), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return masks


def achieved(masks: dict[str, Any], graph: Graph) -> dict[str, float]:
    """Fraction of zero weights per op under `masks` (ops without a mask: 0)."""
    return {
        op.name: (1.0 - float(masks[op.name].double().mean())) if op.name in masks else 0.0
        for op in prunable_ops(graph)
    }
