"""Quantized models for the engine: NAS candidates from data/nas/, or seeded random ones for benchmarks.

Cycle counts and bit-exactness do not depend on what the weights learned, so calibration uses a
fixed-seed batch of random images unless the caller gives a loader. Sparsity is applied to the int8
weights with NAS's block-magnitude rule (`core.tinyformer.prune.block_magnitude_mask`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from core.io import Progress, data_dir, no_progress
from core.tinyformer.ops import kinds_where


def calibration_batches(seed: int = 0, batches: int = 2, size: int = 8, resolution: int = 32) -> list:
    """Random N(0, 1) images (B, 3, r, r) as calibration batches (seeded)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(size, 3, resolution, resolution, generator=gen) for _ in range(batches)]


def quantize_arch(
    arch: dict[str, Any],
    model: Any = None,
    seed: int = 0,
    calib: Any = None,
    progress: Progress = no_progress,
) -> Any:
    """int8 QuantizedModel of `arch` (random init with `seed` when `model` is None)."""
    import torch

    from core.tinyformer.model import build
    from core.tinyformer.quant import QuantConfig, quantize

    if model is None:
        torch.manual_seed(seed)
        model = build(arch)
    calib = calib or calibration_batches(seed, resolution=arch["resolution"])
    return quantize(model, arch, calib, progress, QuantConfig(calib_batches=len(calib)))


def prune_int8(qm: Any, sparsity: float | dict[str, float], block: int | dict[str, int] = 4) -> Any:
    """A copy of `qm` whose conv/dwconv/linear int8 weights are block-pruned to `sparsity`.

    Scalar arguments apply to every weighted layer (the block size falls back to the largest valid
    one for layers where `block` is not allowed, e.g. 3 or 1 for depthwise).
    """
    from core.tinyformer.prune import block_magnitude_mask
    from core.tinyformer.sparse import block_size_choices

    qops = []
    for q in qm.qops:
        op = q.op
        s = sparsity.get(op.name, 0.0) if isinstance(sparsity, dict) else float(sparsity)
        if op.kind not in kinds_where("sparse_capable") or q.weight is None or s <= 0:
            qops.append(q)
            continue
        w = np.asarray(q.weight, np.int8)
        choices = block_size_choices(w.shape)
        b = block.get(op.name, max(choices)) if isinstance(block, dict) else int(block)
        b = b if b in choices else max(choices)
        keep = block_magnitude_mask(w, s, b)
        qops.append(dataclasses.replace(q, weight=np.where(keep, w, 0).astype(np.int8)))
    return dataclasses.replace(qm, qops=tuple(qops))


def candidate(cid: int, nas_dir: Path | None = None, progress: Progress = no_progress) -> tuple[Any, dict]:
    """(QuantizedModel, candidate row) of NAS candidate `cid` from data/nas/candidates.parquet.

    Uses the fine-tuned weights in data/nas/finetuned.pt when the candidate has them, else the
    candidate's architecture with seeded random weights pruned to its per-layer sparsity (the row's
    `weights` field says which).
    """
    from core.tinyformer.candidates import NoFinetuned, load_candidate, load_finetuned

    nas_dir = Path(nas_dir) if nas_dir is not None else data_dir() / "nas"
    row = load_candidate(nas_dir / "candidates.parquet", int(cid))
    arch = row["arch"]
    model = None
    try:
        model, _ = load_finetuned(nas_dir / "finetuned.pt", int(cid))
        row["weights"] = "finetuned"
    except NoFinetuned:  # absent only: a damaged or foreign file is an error, never random weights
        row["weights"] = "random (seed 0), pruned to the candidate's sparsity"
    qm = quantize_arch(arch, model, progress=progress)
    if model is None:
        qm = prune_int8(qm, row.get("sparsity") or {}, row.get("block") or {})
    return qm, row
