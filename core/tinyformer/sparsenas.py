"""SparseNAS: evolutionary search over single paths × per-layer sparsity × block size, for accuracy and
latency under flash and SRAM (and optionally latency) budgets.

Genome: `{"arch": <space dict>, "sparsity": {op: s}, "block": {op: b}}` for every conv2d, dwconv2d
and linear op of `graph_of(arch)`; s ∈ `SearchConfig.levels` (0 … 0.95), b ∈ the sizes the sparse
format allows for that weight (1, 2, 4 along input channels; 1, 3 for depthwise).

Cost (exact, rejects over-budget genomes before any accuracy is computed):
flash = `cost.flash_bytes` with each layer's weights stored as `sparse.storage_bytes` of its
block-magnitude mask on the supernet weights (dense fallback when smaller), SRAM = `cost.sram_bytes`.
A sampled genome over the flash budget is first *repaired*: the layer with the most stored weights
moves one sparsity level up until the analytic size fits (or every layer is at the top level).

Latency: the per-layer cost model fitted to emulator measurements (`core.tinyformer.latency`,
`data/nas/latency_model.json`), on the genome's achieved per-layer sparsity, block size and storage;
milliseconds at 216 MHz. With `latency_budget_ms`, slower genomes are rejected like over-budget ones.

Evolution (documented choice, NSGA-II-flavoured with elitism; two objectives):
1. generation 0: `population` random valid genomes (uniform path; each layer dense with p = 1/2,
   else a uniform sparsity level; uniform block size);
2. objectives: top-1 accuracy on a held-out slice of the training split of the subnet with the
   supernet's weights, pruned, BatchNorm recalibrated on `calib_size` training images (maximize), and
   the fitted latency (minimize); genomes are ranked by Pareto front, then accuracy;
3. next generation: the `parents` best-ranked genomes survive; the rest are new children (a genome is
   evaluated once: duplicates are drawn again), half by mutation
   of a random parent (each architectural choice and each layer gene resampled with probability
   `mutation_prob`), half by crossover of two parents (uniform per top-level section for the path,
   per layer for genes of layers both parents have), then a light mutation;
4. after the last generation, the `finetune_top` best genomes are fine-tuned (gradual cubic pruning
   schedule, `finetune_steps` SGD steps), BN-recalibrated and scored on the test split (float), and
   through `core.tinyformer.quant` as int8 when that module is importable.

Each generation's new genomes are independent jobs: with a `scheduler` they are evaluated on a Dask
cluster (`core.cluster.run_jobs`), with the same results as in this process (each job sets the torch
thread count; results are placed by index). `core.tinyformer.candidates.run_sparsenas` runs it end to
end and writes the candidates table: every evaluated genome within the budgets.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any

import torch

from core.errors import WorkbenchError
from core.io import Progress, no_progress
from core.tinyformer import cost, latency, prune, sparse
from core.tinyformer.graph import Graph, graph_of
from core.tinyformer.model import extract
from core.tinyformer.pareto import pareto_ranks
from core.tinyformer.space import SpaceConfig, crossover, extreme, mutate, sample
from core.tinyformer.supernet import accuracy, recalibrate_bn

SPARSITY_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


@dataclass(frozen=True)
class SearchConfig:
    """SparseNAS settings; the defaults evaluate 510 genomes (60 + 10 generations × 45 children)."""

    flash_budget: int = 1024 * 1024
    sram_budget: int = 320 * 1024
    dataset: str = "shapes10"
    population: int = 60
    generations: int = 11
    parents: int = 15
    mutation_prob: float = 0.2
    val_size: int = 250
    calib_size: int = 64
    test_size: int = 500
    finetune_top: int = 2
    finetune_steps: int = 25
    int8_size: int = 100
    levels: tuple[float, ...] = SPARSITY_LEVELS
    seed: int = 0
    threads: int = 2
    latency_budget_ms: float | None = None

    def __post_init__(self) -> None:
        if self.latency_budget_ms is not None and not 0 < self.latency_budget_ms < 1e9:
            raise WorkbenchError(f"latency budget {self.latency_budget_ms} ms must be positive")
        if self.flash_budget < 1 or self.sram_budget < 1:
            raise WorkbenchError(
                f"budgets ({self.flash_budget} B flash, {self.sram_budget} B SRAM) must be positive"
            )
        if self.population < 2 or not 1 <= self.parents <= self.population:
            raise WorkbenchError(
                f"population {self.population} must be >= 2 and parents {self.parents} in 1..population"
            )
        for name in ("generations", "val_size", "calib_size", "test_size", "threads"):
            if getattr(self, name) < 1:
                raise WorkbenchError(f"{name} {getattr(self, name)} must be >= 1")
        if self.finetune_top < 0 or self.finetune_steps < 0 or self.int8_size < 0:
            raise WorkbenchError("finetune_top, finetune_steps and int8_size must be >= 0")
        if not self.levels or min(self.levels) < 0 or max(self.levels) > 0.95:
            raise WorkbenchError(f"sparsity levels {self.levels} must lie in [0, 0.95]")


def _key(genome: dict[str, Any]) -> str:
    return json.dumps(genome, sort_keys=True)


def random_genes(
    graph: Graph, rng: random.Random, levels: tuple[float, ...], keep: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Per-layer sparsity/block genes for `graph`, reusing `keep`'s genes for layers it names."""
    keep = keep or {"sparsity": {}, "block": {}}
    sp, bl = {}, {}
    for op in prune.prunable_ops(graph):
        choices = sparse.block_size_choices(op.weight_shape)
        if op.name in keep["sparsity"] and keep["block"].get(op.name) in choices:
            sp[op.name], bl[op.name] = keep["sparsity"][op.name], keep["block"][op.name]
        else:
            sp[op.name] = 0.0 if rng.random() < 0.5 else rng.choice(levels)
            bl[op.name] = rng.choice(choices)
    return {"sparsity": sp, "block": bl}


def analytic_flash(graph: Graph, genes: dict[str, Any]) -> int:
    """Flash with `cost.analytic_encoded_size` per layer (no weights needed; ≤ exact up to fillers)."""
    wb = {
        op.name: min(
            op.weight_count,
            cost.analytic_encoded_size(op.weight_shape, genes["sparsity"][op.name], genes["block"][op.name]),
        )
        for op in prune.prunable_ops(graph)
    }
    return cost.flash_bytes(graph, wb, genes["block"])


def repair(graph: Graph, genes: dict[str, Any], budget: int, levels: tuple[float, ...]) -> bool:
    """Raise sparsity of the largest stored layer until the analytic flash fits; False if it cannot."""
    ops = prune.prunable_ops(graph)
    while analytic_flash(graph, genes) > budget:
        open_ops = [op for op in ops if genes["sparsity"][op.name] < max(levels)]
        if not open_ops:
            return False
        op = max(open_ops, key=lambda o: o.weight_count * (1 - genes["sparsity"][o.name]))
        genes["sparsity"][op.name] = min(v for v in levels if v > genes["sparsity"][op.name])
    return True


@dataclass
class EvalContext:
    """What evaluating a genome needs (sent once to each Dask worker)."""

    supernet: torch.nn.Module
    cfg: SearchConfig
    calib: torch.Tensor | None
    xval: torch.Tensor | None
    yval: torch.Tensor | None
    latency: latency.LatencyModel | None = None


def genome_cost(ctx: EvalContext, genome: dict[str, Any]
                ) -> tuple[Graph, torch.nn.Module, dict[str, torch.Tensor], dict[str, Any]]:
    """Exact flash/SRAM of `genome` on the supernet's pruned weights, and its fitted latency."""
    g = graph_of(genome["arch"])
    model = extract(ctx.supernet, genome["arch"])
    masks = prune.make_masks(model, g, genome["sparsity"], genome["block"])
    prune.apply_masks(model, g, masks)
    wb, fmt = {}, {}
    for op in prune.prunable_ops(g):
        kind, size = sparse.storage_bytes(prune.deploy_weight(model, op), genome["block"][op.name])
        wb[op.name], fmt[op.name] = size, kind
    achieved = prune.achieved(masks, g)
    info = {
        "flash_bytes": cost.flash_bytes(g, wb, genome["block"]),
        "sram_bytes": cost.sram_bytes(g, [name for name, kind in fmt.items() if kind == "sparse"]),
        "dense_flash_bytes": cost.flash_bytes(g),
        "dense_sram_bytes": cost.sram_bytes(g),
        "macs": g.macs,
        "params": g.params,
        "format": fmt,
        "achieved": achieved,
    }
    if ctx.latency is not None:
        blocks = {k: v for k, v in genome["block"].items() if fmt.get(k) == "sparse"}
        pred = ctx.latency.predict(g, achieved, blocks, fmt, live_channels(masks))
        dense = ctx.latency.predict(g)
        info.update(latency_ms=pred["ms"], latency_cycles=pred["cycles"],
                    latency_cycles_optimistic=pred["cycles_optimistic"],
                    latency_cycles_conservative=pred["cycles_conservative"],
                    dense_latency_ms=dense["ms"])
    return g, model, masks, info


def live_channels(masks: dict[str, torch.Tensor]) -> dict[str, float]:
    """Fraction of output channels with at least one kept weight, per masked op."""
    return {k: float(m.reshape(m.shape[0], -1).any(dim=1).double().mean()) for k, m in masks.items()}


def within_budgets(cfg: SearchConfig, info: dict[str, Any]) -> bool:
    ok = info["flash_bytes"] <= cfg.flash_budget and info["sram_bytes"] <= cfg.sram_budget
    if cfg.latency_budget_ms is not None:
        ok &= info.get("latency_ms", math.inf) <= cfg.latency_budget_ms
    return bool(ok)


def evaluate_genome(genome: dict[str, Any], ctx: EvalContext) -> dict[str, Any]:
    """Metrics of one genome ({} when over a budget): a pure function of (genome, ctx), run here or on
    a Dask worker (it sets the torch thread count, so both give the same numbers)."""
    torch.set_num_threads(ctx.cfg.threads)
    _, model, _, info = genome_cost(ctx, genome)
    if not within_budgets(ctx.cfg, info):
        return {}
    recalibrate_bn(model, ctx.calib)
    info["accuracy"] = accuracy(model, ctx.xval, ctx.yval)
    return info


class Evaluator:
    """Exact cost, fitted latency and supernet-weight accuracy of genomes (cached by genome)."""

    def __init__(
        self,
        supernet: torch.nn.Module,
        cfg: SearchConfig,
        calib: torch.Tensor | None,
        xval: torch.Tensor | None,
        yval: torch.Tensor | None,
        latency_model: latency.LatencyModel | None = None,
        scheduler: Any = None,
    ) -> None:
        self.ctx = EvalContext(supernet, cfg, calib, xval, yval, latency_model)
        self.supernet, self.cfg, self.calib = supernet, cfg, calib
        self.scheduler = scheduler
        self.cache: dict[str, dict[str, Any]] = {}

    def cost(
        self, genome: dict[str, Any]
    ) -> tuple[Graph, torch.nn.Module, dict[str, torch.Tensor], dict[str, Any]]:
        return genome_cost(self.ctx, genome)

    def evaluate_many(self, genomes: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """Metrics of each genome (None when over a budget); new ones as independent jobs."""
        from core.cluster import run_jobs

        todo = list({_key(g): g for g in genomes if _key(g) not in self.cache}.values())
        for i, info in run_jobs(evaluate_genome, todo, self.scheduler, shared=self.ctx):
            self.cache[_key(todo[i])] = info
        return [self.cache[_key(g)] or None for g in genomes]

    def evaluate(self, genome: dict[str, Any]) -> dict[str, Any] | None:
        """Metrics of a genome, or None when it is over a budget."""
        key = _key(genome)
        if key not in self.cache:
            self.cache[key] = evaluate_genome(genome, self.ctx)
        return self.cache[key] or None


def _valid_genome(
    space: SpaceConfig,
    cfg: SearchConfig,
    rng: random.Random,
    arch: dict[str, Any],
    keep: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Genes for `arch` (reusing `keep`), repaired to the flash budget; None if SRAM or flash cannot fit."""
    g = graph_of(arch)
    if cost.sram_bytes(g) > cfg.sram_budget:
        return None
    genes = random_genes(g, rng, cfg.levels, keep)
    for name in genes["sparsity"]:  # per-layer gene mutation
        if keep is not None and rng.random() < cfg.mutation_prob:
            genes["sparsity"][name] = rng.choice(cfg.levels)
    if not repair(g, genes, cfg.flash_budget, cfg.levels):
        return None
    return {"arch": arch, **genes}


def _child(
    space: SpaceConfig, cfg: SearchConfig, rng: random.Random, parents: list[dict[str, Any]]
) -> dict[str, Any] | None:
    if len(parents) < 2 or rng.random() < 0.5:
        p = rng.choice(parents)
        return _valid_genome(space, cfg, rng, mutate(space, p["arch"], rng, cfg.mutation_prob), p)
    a, b = rng.sample(parents, 2)
    arch = mutate(space, crossover(a["arch"], b["arch"], rng), rng, cfg.mutation_prob / 2)
    genes: dict[str, Any] = {"sparsity": {}, "block": {}}
    for name in set(a["sparsity"]) | set(b["sparsity"]):
        src = a if name in a["sparsity"] and (name not in b["sparsity"] or rng.random() < 0.5) else b
        genes["sparsity"][name], genes["block"][name] = src["sparsity"][name], src["block"][name]
    return _valid_genome(space, cfg, rng, arch, genes)


def smallest_reachable(space: SpaceConfig, levels: tuple[float, ...] = SPARSITY_LEVELS) -> tuple[int, int]:
    """(flash, SRAM) of the smallest path with every layer at the top sparsity level (analytic flash)."""
    g = graph_of(extreme(space, largest=False))
    genes = {
        "sparsity": {op.name: max(levels) for op in prune.prunable_ops(g)},
        "block": {op.name: max(sparse.block_size_choices(op.weight_shape)) for op in prune.prunable_ops(g)},
    }
    return analytic_flash(g, genes), cost.sram_bytes(g)


def _fill(
    pop: list[dict[str, Any]],
    n: int,
    make,
    ev: Evaluator,
    born: dict[str, int],
    gen: int,
    progress: Progress,
    count: list[int],
    total: int,
) -> None:
    """Append new valid evaluated genomes from `make()` until `pop` has n: draw a batch of new genomes
    (cheap analytic checks), evaluate it as independent jobs, keep those within the budgets, repeat
    for the shortfall (a bounded number of draws)."""
    tries = 50 * n
    while len(pop) < n and tries > 0:
        batch: list[dict[str, Any]] = []
        seen = set()
        while len(batch) < n - len(pop) and tries > 0:
            tries -= 1
            genome = make()
            if genome is None or _key(genome) in ev.cache or _key(genome) in seen:
                continue
            seen.add(_key(genome))
            batch.append(genome)
        for genome, info in zip(batch, ev.evaluate_many(batch)):
            if info is None:
                continue
            born.setdefault(_key(genome), gen)
            pop.append(genome)
            count[0] += 1
            progress(min(count[0], total), total, f"generation {gen + 1}")


def n_evaluations(cfg: SearchConfig) -> int:
    """Genomes evaluated by `search`: the first population, then its children (parents survive)."""
    return cfg.population + (cfg.generations - 1) * (cfg.population - cfg.parents)


def rank(pop: list[dict[str, Any]], ev: Evaluator) -> list[dict[str, Any]]:
    """`pop` ordered by Pareto front of (accuracy ↑, latency ↓), then accuracy (latency absent:
    accuracy alone)."""
    infos = [ev.evaluate(g) for g in pop]
    objs = [(-i["accuracy"], i.get("latency_ms", 0.0)) for i in infos]
    fronts = pareto_ranks(objs)
    order = sorted(range(len(pop)), key=lambda k: (fronts[k], objs[k][0], objs[k][1]))
    return [pop[k] for k in order]


def search(
    space: SpaceConfig, cfg: SearchConfig, ev: Evaluator, progress: Progress = no_progress
) -> dict[str, int]:
    """Run the evolution; returns {genome key: generation first seen} (metrics are in `ev.cache`)."""
    rng = random.Random(cfg.seed)
    born: dict[str, int] = {}
    total = n_evaluations(cfg) + cfg.finetune_top
    count = [0]
    pop: list[dict[str, Any]] = []
    _fill(
        pop,
        cfg.population,
        lambda: _valid_genome(space, cfg, rng, sample(space, rng)),
        ev,
        born,
        0,
        progress,
        count,
        total,
    )
    if not pop:
        flash, sram = smallest_reachable(space, cfg.levels)
        raise WorkbenchError(
            f"nothing in search space {space.name} fits {cfg.flash_budget / 1024:g} KB flash and "
            f"{cfg.sram_budget / 1024:g} KB SRAM; the smallest reachable are about "
            f"{flash / 1024:.1f} KB flash (95% sparse) and {sram / 1024:.1f} KB SRAM"
        )
    for gen in range(1, cfg.generations):
        parents = rank(pop, ev)[: cfg.parents]
        pop = list(parents)
        _fill(
            pop,
            cfg.population,
            lambda parents=parents: _child(space, cfg, rng, parents),
            ev,
            born,
            gen,
            progress,
            count,
            total,
        )
    return born
