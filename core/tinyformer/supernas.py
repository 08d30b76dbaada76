"""SuperNAS: choose the search space, the TinyNAS way (MCUNet, Lin et al. 2020).

For each candidate space (width multiplier × number of downsample stages × input resolution) draw
M uniformly random subnets (seeded), compute their int8 flash (`cost.flash_bytes`, code included) and
peak SRAM (`cost.sram_bytes`), and keep those within both budgets (and `max_mmacs`, a latency proxy,
when given). With `max_sparsity` > 0 a subnet fits when it fits with every weighted layer block-pruned
to that sparsity (analytic encoded size, largest block): at the paper's scale (width ≥ 2) the largest
dense subnets exceed 1 MB and only fit sparse, which is what SparseNAS then searches.
A space whose *fitting* subnets have more MACs is expected to give better accuracy (MCUNet's
observation: within a budget, accuracy grows with FLOPs), so spaces are ranked by the mean MACs of
their fitting subnets (ties: the higher 80th percentile). A space where fewer than `min_fit` of the
M samples fit is not eligible (its distribution is not a distribution). The CDF of
MACs among fitting subnets is returned per space for plotting.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import WorkbenchError, brief, unknown
from core.io import Progress, no_progress
from core.tinyformer.cost import flash_bytes, sram_bytes
from core.tinyformer.graph import graph_of
from core.tinyformer.space import SpaceConfig, extreme, sample

WIDTH_MULTS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
DOWNSAMPLES = (1, 2)
RESOLUTIONS = (24, 32)


def space_name(width_mult: float, n_downsample: int, resolution: int) -> str:
    return f"tf-w{width_mult:g}-d{n_downsample}-r{resolution}"


def candidate_spaces(
    width_mults: tuple[float, ...] = WIDTH_MULTS,
    downsamples: tuple[int, ...] = DOWNSAMPLES,
    resolutions: tuple[int, ...] = RESOLUTIONS,
) -> list[SpaceConfig]:
    """The grid of candidate spaces, named `tf-w<mult>-d<stages>-r<resolution>`."""
    base = SpaceConfig()
    return [
        replace(base, name=space_name(m, d, r), width_mult=m, n_downsample=d, resolution=r)
        for m in width_mults
        for d in downsamples
        for r in resolutions
    ]


def space_by_name(name: str) -> SpaceConfig:
    """A candidate space by name (`tf-w1-d1-r32`, ...)."""
    spaces = {s.name: s for s in candidate_spaces()}
    if name not in spaces:
        raise unknown("search space", name, spaces)
    return spaces[name]


@dataclass(frozen=True)
class SpaceScore:
    """Sampled statistics of one space under the budgets."""

    name: str
    samples: int
    fitting: int
    mean_macs: float
    p80_macs: float
    macs_sorted: tuple[int, ...]  # MACs of fitting subnets, ascending: the CDF's x values
    min_flash: int
    min_sram: int

    @property
    def fraction(self) -> float:
        return self.fitting / self.samples


def sparse_flash(g: Any, sparsity: float) -> int:
    """Flash of graph `g` with every weighted layer at `sparsity` (analytic size, largest block;
    dense where that is smaller)."""
    if sparsity <= 0:
        return flash_bytes(g)
    from core.tinyformer import sparse
    from core.tinyformer.cost import analytic_encoded_size

    wb, blocks = {}, {}
    for op in g.ops:
        if op.kind in ("conv2d", "dwconv2d", "linear"):
            b = max(sparse.block_size_choices(op.weight_shape))
            wb[op.name], blocks[op.name] = analytic_encoded_size(op.weight_shape, sparsity, b), b
    return flash_bytes(g, wb, blocks)


def fits(g: Any, flash_budget: int, sram_budget: int, max_sparsity: float = 0.0,
         max_mmacs: float | None = None) -> bool:
    """True when graph `g` fits the budgets (pruned to `max_sparsity` where that is given)."""
    if max_mmacs is not None and g.macs > max_mmacs * 1e6:
        return False
    return sparse_flash(g, max_sparsity) <= flash_budget and sram_bytes(g) <= sram_budget


def score_space(space: SpaceConfig, flash_budget: int, sram_budget: int, m: int, seed: int,
                max_sparsity: float = 0.0, max_mmacs: float | None = None) -> SpaceScore:
    """Sample `m` subnets of `space` and summarize the MACs of those within the budgets."""
    rng = random.Random(seed)
    macs = []
    for _ in range(m):
        g = graph_of(sample(space, rng))
        if fits(g, flash_budget, sram_budget, max_sparsity, max_mmacs):
            macs.append(g.macs)
    small = graph_of(extreme(space, largest=False))
    arr = np.sort(np.asarray(macs, dtype=np.int64))
    return SpaceScore(
        space.name,
        m,
        len(macs),
        float(arr.mean()) if len(arr) else 0.0,
        float(np.quantile(arr, 0.8)) if len(arr) else 0.0,
        tuple(int(v) for v in arr),
        flash_bytes(small),
        sram_bytes(small),
    )


def run_supernas(
    flash_budget: int,
    sram_budget: int,
    m: int = 200,
    seed: int = 0,
    spaces: list[SpaceConfig] | None = None,
    min_fit: int = 5,
    progress: Progress = no_progress,
    max_sparsity: float = 0.0,
    max_mmacs: float | None = None,
) -> dict[str, Any]:
    """Score every candidate space; return {"best", "spaces": [...], "cdf": {...}} (JSON-able).

    Raises `WorkbenchError` naming the smallest reachable flash and SRAM when no space is eligible.
    """
    if not 0 <= max_sparsity <= 0.95:
        raise WorkbenchError(f"max sparsity {max_sparsity} must be in [0, 0.95]")
    if max_mmacs is not None and not max_mmacs > 0:
        raise WorkbenchError(f"MAC budget {max_mmacs} MMACs must be positive")
    if min_fit < 1 or m < min_fit:
        raise WorkbenchError(f"samples per space ({m}) must be >= min_fit ({min_fit}), which must be >= 1")
    spaces = spaces or candidate_spaces()
    smallest = [graph_of(extreme(s, largest=False)) for s in spaces]  # refuse hopeless budgets first
    if not any(flash_bytes(g) <= flash_budget and sram_bytes(g) <= sram_budget for g in smallest):
        raise WorkbenchError(
            f"no subnet of any search space fits {flash_budget / 1024:g} KB flash and "
            f"{sram_budget / 1024:g} KB SRAM; the smallest reachable are "
            f"{min(flash_bytes(g) for g in smallest) / 1024:.1f} KB flash (dense) and "
            f"{min(sram_bytes(g) for g in smallest) / 1024:.1f} KB SRAM"
        )
    scores = []
    for i, space in enumerate(spaces):
        scores.append(score_space(space, flash_budget, sram_budget, m, seed + i, max_sparsity, max_mmacs))
        progress(i + 1, len(spaces), space.name)
    eligible = [s for s in scores if s.fitting >= min_fit]
    if not eligible:
        raise WorkbenchError(
            f"no search space has {min_fit} of {m} subnets within {flash_budget / 1024:g} KB flash and "
            f"{sram_budget / 1024:g} KB SRAM; the smallest reachable are "
            f"{min(s.min_flash for s in scores) / 1024:.1f} KB flash (dense) and "
            f"{min(s.min_sram for s in scores) / 1024:.1f} KB SRAM"
        )
    best = max(eligible, key=lambda s: (s.mean_macs, s.p80_macs))
    table = [
        {
            "space": s.name,
            "fitting": s.fitting,
            "samples": s.samples,
            "fraction": s.fraction,
            "mean_mmacs": s.mean_macs / 1e6,
            "p80_mmacs": s.p80_macs / 1e6,
            "eligible": s.fitting >= min_fit,
            "min_flash_kb": s.min_flash / 1024,
            "min_sram_kb": s.min_sram / 1024,
        }
        for s in scores
    ]
    cdf = {
        s.name: {
            "macs": list(s.macs_sorted),
            "p": [(k + 1) / len(s.macs_sorted) for k in range(len(s.macs_sorted))],
        }
        for s in scores
    }
    return {
        "best": best.name,
        "flash_budget": flash_budget,
        "sram_budget": sram_budget,
        "samples": m,
        "seed": seed,
        "max_sparsity": max_sparsity,
        "max_mmacs": max_mmacs,
        "spaces": table,
        "cdf": cdf,
    }


def read_result(path: Path | str) -> dict[str, Any]:
    """A SuperNAS result written by `python -m core nas supernas` (spaces table, CDFs, best)."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(
            f"SuperNAS result {str(path)!r} does not exist; run `python -m core nas supernas`"
        )
    try:
        doc = json.loads(path.read_text())
        if not isinstance(doc, dict) or not isinstance(doc.get("best"), str):
            raise ValueError("no 'best' space")
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"SuperNAS result {str(path)!r} is garbled ({brief(exc)}); "
                             "re-create it with `python -m core nas supernas`") from exc
    return doc
