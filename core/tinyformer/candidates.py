"""End-to-end SparseNAS run and the candidates table (pandas -> parquet).

Columns: id (0 = best search fitness), arch (JSON), dataset, accuracy (float top-1 on the search's
held-out slice of the training split, supernet weights, pruned, BN recalibrated), accuracy_test
(float top-1 on the test split after fine-tuning; NaN when not fine-tuned), accuracy_int8 (int8
integer-reference top-1 on the first `int8_size` test images; NaN when not computed), finetuned,
macs, mmacs, params, flash_bytes, sram_bytes, flash_kb, sram_kb, n_sparse_layers, sparsity (JSON
{op: achieved fraction of zero weights}), sparsity_target (JSON {op: searched level}), block (JSON
{op: b}), storage (JSON {op: "sparse"|"dense"}), generation; latency_ms, latency_cycles and its
_optimistic/_conservative bounds (the fitted per-layer model, `core.tinyformer.latency`, at 216 MHz);
the same path stored dense: dense_flash_bytes, dense_flash_kb, dense_sram_kb, dense_latency_ms,
fits_dense (within both budgets without sparsity); pareto (front index of accuracy ↑ / latency ↓,
0 = on the front). Fine-tuned weights of the top candidates go to `finetuned.pt` next to the table.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from core.errors import WorkbenchError, brief
from core.io import Progress, atomic_path, no_progress
from core.tinyformer import prune
from core.tinyformer.model import TinyFormerNet, build, extract
from core.tinyformer.pareto import pareto_ranks
from core.tinyformer.sparsenas import Evaluator, SearchConfig, live_channels, n_evaluations, search
from core.tinyformer.supernet import accuracy, load_checkpoint, load_images, recalibrate_bn


def int8_accuracy(
    model: torch.nn.Module, arch: dict[str, Any], calib: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> float:
    """Top-1 of the int8 model (core.tinyformer.quant, integer reference); NaN if quant is absent."""
    try:
        from core.tinyformer.quant import evaluate_int8, quantize
    except ImportError:
        return math.nan
    if len(y) == 0:
        return math.nan
    qm = quantize(model, arch, [(calib[i : i + 64],) for i in range(0, len(calib), 64)])
    return float(evaluate_int8(qm, [(x, y)]).int8_accuracy)


def _finetune_top(
    sup: TinyFormerNet,
    genome: dict[str, Any],
    cfg: SearchConfig,
    ev: Evaluator,
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
) -> tuple[TinyFormerNet, dict[str, Any]]:
    g, _, _, _ = ev.cost(genome)
    model = extract(sup, genome["arch"])
    masks = prune.finetune(
        model,
        g,
        genome["sparsity"],
        genome["block"],
        train[0],
        train[1],
        cfg.finetune_steps,
        batch=32,
        seed=cfg.seed,
    )
    recalibrate_bn(model, ev.calib)
    prune.apply_masks(model, g, masks)
    info = _exact_cost(model, g, genome)
    if ev.ctx.latency is not None:
        blocks = {k: v for k, v in genome["block"].items() if info["format"].get(k) == "sparse"}
        pred = ev.ctx.latency.predict(g, info["achieved"], blocks, info["format"], live_channels(masks))
        info.update(latency_ms=pred["ms"], latency_cycles=pred["cycles"],
                    latency_cycles_optimistic=pred["cycles_optimistic"],
                    latency_cycles_conservative=pred["cycles_conservative"])
    info["accuracy_test"] = accuracy(model, *test)
    n = min(cfg.int8_size, len(test[1]))
    info["accuracy_int8"] = int8_accuracy(model, genome["arch"], ev.calib, test[0][:n], test[1][:n])
    return model, info


def _exact_cost(model: TinyFormerNet, g: Any, genome: dict[str, Any]) -> dict[str, Any]:
    from core.tinyformer import cost, sparse

    wb, fmt, achieved = {}, {}, {}
    for op in prune.prunable_ops(g):
        w = prune.deploy_weight(model, op)
        fmt[op.name], wb[op.name] = sparse.storage_bytes(w, genome["block"][op.name])
        achieved[op.name] = float((w == 0).mean())
    return {"flash_bytes": cost.flash_bytes(g, wb, genome["block"]), "format": fmt, "achieved": achieved}


def run_sparsenas(
    checkpoint: Path | str,
    cfg: SearchConfig,
    root: Path | str | None = None,
    progress: Progress = no_progress,
    out_dir: Path | None = None,
    scheduler: Any = None,
    latency_model: Any = None,
) -> pd.DataFrame:
    """Search with the supernet in `checkpoint`; return the candidates table (best first).

    Fine-tuned weights of the top candidates are written to `out_dir/finetuned.pt` when given.
    `scheduler`: evaluate each generation's genomes on Dask (`core.cluster`), same table as without.
    `latency_model`: a `LatencyModel` or its JSON path (default `data/nas/latency_model.json`).
    """
    from core.cluster import check_scheduler
    from core.tinyformer import latency

    check_scheduler(scheduler)
    if not isinstance(latency_model, latency.LatencyModel):
        latency_model = latency.load(latency_model)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    sup, space, meta = load_checkpoint(checkpoint)
    sup.eval()
    if meta["dataset"] != cfg.dataset:
        raise WorkbenchError(
            f"the supernet was trained on {meta['dataset']!r}, not {cfg.dataset!r}; "
            "search on the dataset it was trained on"
        )
    n_train = meta["train"]["train_size"]
    x, y = load_images(cfg.dataset, "train", None, space.resolution, root)
    if n_train + cfg.val_size > len(y):
        raise WorkbenchError(
            f"val_size {cfg.val_size} + supernet train_size {n_train} exceed the {len(y)} training images"
        )
    train = (x[:n_train], y[:n_train])
    val = (x[len(y) - cfg.val_size :], y[len(y) - cfg.val_size :])  # held out: never seen in training
    test = load_images(cfg.dataset, "test", cfg.test_size, space.resolution, root)
    ev = Evaluator(sup, cfg, train[0][: cfg.calib_size], *val, latency_model=latency_model,
                   scheduler=scheduler)
    t0 = time.monotonic()
    born = search(space, cfg, ev, progress)
    search_s = time.monotonic() - t0
    keys = sorted(born, key=lambda k: -ev.cache[k]["accuracy"])
    fronts = pareto_ranks([(-ev.cache[k]["accuracy"], ev.cache[k]["latency_ms"]) for k in keys])
    total = n_evaluations(cfg) + cfg.finetune_top
    rows, finetuned = [], {}
    for rank, key in enumerate(keys):
        genome, info = json.loads(key), dict(ev.cache[key])
        info.update(accuracy_test=math.nan, accuracy_int8=math.nan, finetuned=False)
        if rank < cfg.finetune_top:
            model, extra = _finetune_top(sup, genome, cfg, ev, train, test)
            info.update(extra, finetuned=True)
            finetuned[rank] = {
                "arch": genome["arch"],
                "sparsity": genome["sparsity"],
                "block": genome["block"],
                "state_dict": model.state_dict(),
            }
            progress(min(total, n_evaluations(cfg) + rank + 1), total, f"fine-tuned #{rank}")
        rows.append(_row(rank, genome, info, cfg, born[key]) | {"pareto": fronts[rank]})
    table = pd.DataFrame(rows)
    table.attrs.update(search_seconds=search_s, total_seconds=time.monotonic() - t0, space=space.name)
    if out_dir is not None:  # always: weights of an earlier table's candidates must not survive it
        with atomic_path(Path(out_dir) / "finetuned.pt") as tmp:
            torch.save({"format": 1, "dataset": cfg.dataset, "candidates": finetuned}, tmp)
    return table


def _row(
    rank: int, genome: dict[str, Any], info: dict[str, Any], cfg: SearchConfig, gen: int
) -> dict[str, Any]:
    return {
        "id": rank,
        "arch": json.dumps(genome["arch"], sort_keys=True),
        "dataset": cfg.dataset,
        "accuracy": info["accuracy"],
        "accuracy_test": info["accuracy_test"],
        "accuracy_int8": info["accuracy_int8"],
        "finetuned": info["finetuned"],
        "macs": info["macs"],
        "mmacs": info["macs"] / 1e6,
        "params": info["params"],
        "flash_bytes": info["flash_bytes"],
        "sram_bytes": info["sram_bytes"],
        "flash_kb": info["flash_bytes"] / 1024,
        "sram_kb": info["sram_bytes"] / 1024,
        "n_sparse_layers": sum(v == "sparse" for v in info["format"].values()),
        "sparsity": json.dumps(info["achieved"]),
        "sparsity_target": json.dumps(genome["sparsity"]),
        "block": json.dumps(genome["block"]),
        "storage": json.dumps(info["format"]),
        "generation": gen,
        "latency_ms": info["latency_ms"],
        "latency_cycles": info["latency_cycles"],
        "latency_cycles_optimistic": info["latency_cycles_optimistic"],
        "latency_cycles_conservative": info["latency_cycles_conservative"],
        "dense_flash_bytes": info["dense_flash_bytes"],
        "dense_flash_kb": info["dense_flash_bytes"] / 1024,
        "dense_sram_kb": info["dense_sram_bytes"] / 1024,
        "dense_latency_ms": info["dense_latency_ms"],
        "fits_dense": bool(info["dense_flash_bytes"] <= cfg.flash_budget
                           and info["dense_sram_bytes"] <= cfg.sram_budget),
    }


def refresh_latency(folder: Path | str, latency_model: Any = None, progress: Progress = no_progress
                    ) -> pd.DataFrame:
    """Recompute the latency columns (and the Pareto front) of `<folder>/candidates.parquet` with the
    current fitted model, and the flash columns (flash_bytes/_kb, dense_flash_bytes/_kb, fits_dense)
    with the current code-size table (`core/engine/code_size.json`), on each candidate's exact masks
    (supernet weights, or its fine-tuned weights when it has them); the search's choices stay as they
    were (a candidate the new costs put over a budget stays in the table). Returns the new table
    (written)."""
    from core.tinyformer import latency
    from core.tinyformer.graph import graph_of
    from core.tinyformer.sparsenas import EvalContext, genome_cost

    folder = Path(folder)
    model = latency_model if isinstance(latency_model, latency.LatencyModel) else latency.load(latency_model)
    sup, _, _ = load_checkpoint(folder / "supernet.pt")
    table = read_table(folder / "candidates.parquet")
    cfg = SearchConfig(**search_budgets(folder))
    ctx = EvalContext(sup, cfg, None, None, None, model)
    for i, r in enumerate(table.itertuples()):
        genome = {"arch": json.loads(r.arch), "sparsity": json.loads(r.sparsity_target),
                  "block": json.loads(r.block)}
        _, _, masks, info = genome_cost(ctx, genome)
        if r.finetuned:  # the fine-tuned weights' own zeros and storage
            fmodel, _ = load_finetuned(folder / "finetuned.pt", int(r.id))
            g = graph_of(genome["arch"])
            fmt, ach = json.loads(r.storage), json.loads(r.sparsity)
            masks = {op.name: prune.weight_of(fmodel, op).detach() != 0 for op in prune.prunable_ops(g)
                     if fmt.get(op.name) == "sparse"}
            blocks = {k: v for k, v in genome["block"].items() if fmt.get(k) == "sparse"}
            pred = model.predict(g, ach, blocks, fmt, live_channels(masks))
            info.update(latency_ms=pred["ms"], latency_cycles=pred["cycles"],
                        latency_cycles_optimistic=pred["cycles_optimistic"],
                        latency_cycles_conservative=pred["cycles_conservative"],
                        flash_bytes=_exact_cost(fmodel, g, genome)["flash_bytes"])
        for col in ("latency_ms", "latency_cycles", "latency_cycles_optimistic",
                    "latency_cycles_conservative", "dense_latency_ms", "flash_bytes", "dense_flash_bytes"):
            table.loc[i, col] = info[col]
        table.loc[i, "fits_dense"] = bool(info["dense_flash_bytes"] <= cfg.flash_budget
                                          and info["dense_sram_bytes"] <= cfg.sram_budget)
        progress(i + 1, len(table), f"#{r.id}")
    table["flash_kb"] = table["flash_bytes"] / 1024
    table["dense_flash_kb"] = table["dense_flash_bytes"] / 1024
    table["pareto"] = pareto_ranks(list(zip(-table["accuracy"], table["latency_ms"])))
    write_candidates(table, folder / "candidates.parquet")
    return table


def reprice_summary(before: pd.DataFrame, after: pd.DataFrame, budgets: dict[str, int] | None = None
                    ) -> dict[str, Any]:
    """What a re-pricing (`refresh_latency`) moved, row for row by id: how many latencies and flash
    sizes changed and by how much, the candidates now over the budgets, the Pareto front before and
    after and how many front ranks changed."""
    before = before.sort_values("id").reset_index(drop=True)
    after = after.sort_values("id").reset_index(drop=True)
    if list(before["id"]) != list(after["id"]):
        raise WorkbenchError("the re-priced table does not hold the same candidate ids")
    cfg = SearchConfig(**(budgets or {}))
    rel = after["latency_ms"] / before["latency_ms"] - 1.0
    dflash = after["flash_bytes"] - before["flash_bytes"]
    over = after[(after["flash_bytes"] > cfg.flash_budget) | (after["sram_bytes"] > cfg.sram_budget)]
    return {
        "rows": len(after),
        "latency_changed": int((rel != 0).sum()),
        "latency_change_pct": [round(100 * float(rel.min()), 3), round(100 * float(rel.max()), 3)],
        "flash_changed": int((dflash != 0).sum()),
        "flash_change_bytes": [int(dflash.min()), int(dflash.max())],
        "over_budget_ids": [int(i) for i in over["id"]],
        "front_before": sorted(int(i) for i in before.loc[before["pareto"] == 0, "id"]),
        "front": sorted(int(i) for i in after.loc[after["pareto"] == 0, "id"]),
        "pareto_rank_changed": int((before["pareto"] != after["pareto"]).sum()),
    }


def search_budgets(folder: Path) -> dict[str, int]:
    """The flash/SRAM budgets the table was searched under (its manifest entry; default budgets when
    the folder has no manifest or the entry does not name them)."""
    try:
        search = json.loads((folder / "manifest.json").read_text())["artefacts"]["candidates.parquet"][
            "config"]["search"]
        return {k: int(search[k]) for k in ("flash_budget", "sram_budget")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def write_candidates(table: pd.DataFrame, path: Path) -> Path:
    """Atomically write the table as parquet."""
    with atomic_path(Path(path)) as tmp:
        table.to_parquet(tmp, index=False)
    return Path(path)


#: columns every candidates table has (what `load_candidate` and the engine read)
REQUIRED_COLUMNS = ("id", "arch", "sparsity", "block", "storage")


class NoFinetuned(WorkbenchError):
    """No fine-tuned weights for a candidate: the file is absent or does not hold that id (a damaged
    or foreign file is a plain `WorkbenchError`, never this)."""


def _read_parquet(path: Path) -> pd.DataFrame:
    """A candidates table, or WorkbenchError: missing, truncated, not parquet, or lacking columns."""
    if not path.is_file():
        raise WorkbenchError(
            f"candidates table {str(path)!r} does not exist; run `python -m core nas sparsenas`"
        )
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 -- pyarrow raises many types for a truncated/foreign file
        raise WorkbenchError(
            f"{str(path)!r} is not a readable candidates table ({brief(exc)}); "
            "re-create it with `python -m core nas sparsenas`"
        ) from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise WorkbenchError(
            f"{str(path)!r} is not a candidates table (no column {', '.join(missing)}); "
            "re-create it with `python -m core nas sparsenas`"
        )
    return df


def load_candidate(table: Path | str, cid: int) -> dict[str, Any]:
    """Row `cid` of a candidates table with arch/sparsity/block/storage parsed from JSON."""
    table = Path(table)
    df = _read_parquet(table)
    hit = df[df["id"] == cid]
    if hit.empty:
        raise WorkbenchError(f"candidate id {cid} is not in {str(table)!r}; ids are 0..{len(df) - 1}")
    row = hit.iloc[0].to_dict()
    try:
        for key in ("arch", "sparsity", "sparsity_target", "block", "storage"):
            if key in row:
                row[key] = json.loads(row[key])
    except (TypeError, ValueError) as exc:
        raise WorkbenchError(f"candidate {cid} in {str(table)!r} holds a garbled {key!r} field "
                             f"({brief(exc)}); re-create the table with `python -m core nas sparsenas`"
                             ) from exc
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def load_finetuned(path: Path | str, cid: int) -> tuple[TinyFormerNet, dict[str, Any]]:
    """The fine-tuned, pruned float model of candidate `cid` from `finetuned.pt` (eval mode).

    Raises `NoFinetuned` when the file is absent or lacks `cid`, and `WorkbenchError` when it is
    truncated, foreign or does not fit the candidate's architecture.
    """
    path = Path(path)
    if not path.is_file():
        raise NoFinetuned(
            f"fine-tuned weights {str(path)!r} do not exist; run `python -m core nas sparsenas`"
        )
    redo = "re-create it with `python -m core nas sparsenas`"
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- torch raises many types for a truncated/unsafe file
        raise WorkbenchError(f"fine-tuned weights {str(path)!r} cannot be read ({brief(exc)}); "
                             f"{redo}") from exc
    if not isinstance(doc, dict) or doc.get("format") != 1 or not isinstance(doc.get("candidates"), dict):
        raise WorkbenchError(f"{str(path)!r} is not a fine-tuned weights file of `nas sparsenas` "
                             f"(format 1); {redo}")
    if cid not in doc["candidates"]:
        raise NoFinetuned(
            f"candidate id {cid} has no fine-tuned weights in {str(path)!r}; "
            f"available: {', '.join(map(str, sorted(doc['candidates'])))}"
        )
    entry = doc["candidates"][cid]
    try:
        model = build(entry["arch"])
        model.load_state_dict(entry["state_dict"])
    except Exception as exc:  # noqa: BLE001 -- a foreign or mismatched entry
        raise WorkbenchError(f"the fine-tuned weights of candidate {cid} in {str(path)!r} do not fit its "
                             f"architecture ({brief(exc)}); {redo}") from exc
    return model.eval(), {k: v for k, v in entry.items() if k != "state_dict"}


def read_table(path: Path | str) -> pd.DataFrame:
    """A candidates table written by `write_candidates` (best first)."""
    return _read_parquet(Path(path)).sort_values("id").reset_index(drop=True)
