"""What the NAS explorer shows, computed in core (no UI imports): budgets, Pareto fronts, a candidate's
per-layer table with fitted latency, its engine runs (CMSIS-NN / dense / sparse) and their per-layer
speedups, the kernel-level speedup-vs-sparsity curve with its break-even point, and where the
whole-model time goes.

- `read_candidates(path)`: the SparseNAS candidates table, read once per process and file version
  (without importing torch, which `core.tinyformer.candidates` needs for the search);
- `fitting(table, flash_kb, sram_kb)`, `pareto_front(cost, acc)`;
- `layer_table(row, model)`: per op MACs, flash, live SRAM, sparsity, block, storage and the fitted
  latency model's cycles (`core.tinyformer.latency`);
- `engine_runs(cid)`: the shipped runs of a candidate (`data/nas/engine/<id>.json`, written by
  `python -m core nas engine --id N`), `run_engine(cid)`: the three deployments now;
- `layer_speedups(runs)`: per layer, sparse vs dense and sparse vs CMSIS-NN cycle ratios;
- `kernel_curve(bench)`: speedup vs sparsity per kernel from `data/results/bench_engine.json`, with the
  sparsity where the sparse kernel starts to beat the dense one (break-even, interpolated);
- `time_breakdown(run)`: the share of cycles in attention (QKᵀ, AV), softmax, LayerNorm, adds and
  pooling, the weighted layers, and requantization inside them (from the kernel benchmark's
  requantization floor).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import WorkbenchError, brief
from core.io import Progress, cache_dir, data_dir, ensure_writable_dir, no_progress, write_json_atomic

CLOCK_HZ = 216_000_000
#: engine deployments compared per candidate
MODES = ("cmsis-nn", "dense", "sparse")
MODE_LABELS = {"cmsis-nn": "CMSIS-NN deployment", "dense": "engine, all dense",
               "sparse": "engine, as searched (sparse)"}


#: the columns the explorer reads from a candidates table (`core.tinyformer.candidates`)
EXPLORER_COLUMNS = ("id", "arch", "dataset", "accuracy", "accuracy_test", "accuracy_int8", "finetuned",
                    "macs", "mmacs", "params", "flash_bytes", "sram_bytes", "flash_kb", "sram_kb",
                    "n_sparse_layers", "sparsity", "block", "storage", "generation", "latency_ms",
                    "latency_cycles_optimistic", "latency_cycles_conservative", "dense_flash_bytes",
                    "dense_flash_kb", "dense_sram_kb", "dense_latency_ms", "fits_dense")
_TABLES: dict[tuple[str, int, int], pd.DataFrame] = {}


def read_candidates(path: Path | str) -> pd.DataFrame:
    """The candidates table at `path` sorted by id (a copy of the one read once per process and file
    version: every explorer session shows the same table). WorkbenchError when it is missing, not a
    parquet file, lacks a column the explorer draws, or has no rows."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"candidates table {str(path)!r} does not exist; "
                             "run `python -m core nas sparsenas`")
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _TABLES:
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 -- pyarrow raises many types for a truncated/foreign file
            raise WorkbenchError(f"{str(path)!r} is not a readable candidates table ({brief(exc)}); "
                                 "re-create it with `python -m core nas sparsenas`") from exc
        missing = [c for c in EXPLORER_COLUMNS if c not in df.columns]
        if missing:
            raise WorkbenchError(f"{str(path)!r} is not a candidates table the explorer can show (no column "
                                 f"{', '.join(missing)}); re-create it with `python -m core nas sparsenas`")
        if df.empty:
            raise WorkbenchError(f"the candidates table {str(path)!r} has no rows")
        _TABLES.clear()  # one table version kept: a re-run replaces it
        _TABLES[key] = df.sort_values("id").reset_index(drop=True)
    return _TABLES[key].copy()


def fitting(table: pd.DataFrame, flash_kb: float, sram_kb: float, dense: bool = False) -> np.ndarray:
    """Boolean mask: flash ≤ `flash_kb` KiB and peak SRAM ≤ `sram_kb` KiB (bytes compared exactly);
    `dense`: for the same paths stored dense."""
    flash = table["dense_flash_bytes"] if dense else table["flash_bytes"]
    sram = table["dense_sram_kb"] * 1024 if dense else table["sram_bytes"]
    return ((flash <= flash_kb * 1024) & (sram <= sram_kb * 1024)).to_numpy()


def pareto_front(cost: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Indices of the Pareto-optimal points (lower cost, higher accuracy), by increasing cost (ties
    in both: the first; points with a NaN are left out).

    Two objectives: sorted by cost (then accuracy, highest first), a point is on the front when it
    is more accurate than every cheaper one, O(n log n) (`core.tinyformer.pareto.pareto_front`, the
    general O(n²) sort of any number of objectives, gives the same set; tested)."""
    cost, acc = np.asarray(cost, float), np.asarray(acc, float)
    ok = np.flatnonzero(~(np.isnan(cost) | np.isnan(acc)))
    order = ok[np.lexsort((ok, -acc[ok], cost[ok]))]  # by cost, then accuracy ↓, then index
    out, best = [], -math.inf
    for i in order:
        if acc[i] > best:
            out.append(i)
            best = acc[i]
    return np.asarray(out, dtype=np.int64)


def parse_row(row: dict[str, Any]) -> dict[str, Any]:
    """A candidates-table row with its JSON columns parsed and numpy scalars as Python ones."""
    row = dict(row)
    for key in ("arch", "sparsity", "sparsity_target", "block", "storage"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def layer_table(row: dict[str, Any], model: Any = None) -> pd.DataFrame:
    """One row per op of the candidate's graph, in execution order.

    Columns: op, block (ds0, mb1, vit0, last, ...), kind, macs, weights, flash_bytes (`cost.layer_flash`;
    a sparse layer's weights at `cost.analytic_encoded_size` of its achieved sparsity), sram_bytes
    (activations + scratch live while the op runs in the engine's schedule, `core.tinyformer.schedule`:
    the ops of a row-tiled attention share its step), sparsity, block_size, storage, and with a fitted
    latency `model` (`core.tinyformer.latency.LatencyModel`) cycles and ms (views: none; a fused
    attention's cycles on its AV op).
    """
    from core.tinyformer import graph_of
    from core.tinyformer.cost import analytic_encoded_size, layer_flash
    from core.tinyformer.schedule import schedule

    sp, bl, st = row.get("sparsity") or {}, row.get("block") or {}, row.get("storage") or {}
    g = graph_of(row["arch"])
    sched = schedule(g, [n for n, k in st.items() if k == "sparse"])  # what the engine runs and links
    p = sched.plan
    step = {op.name: t for t, op in enumerate(sched.graph.ops)}
    for fused, sources in sched.fused.items():  # a fused attention op stands for its source ops
        step.update({src: step[fused] for src in sources})
    lat = {}
    if model is not None:
        blocks = {k: int(v) for k, v in bl.items() if st.get(k) == "sparse"}
        for r in model.layers(g, sp, blocks, st):  # a fused op's cycles go to the last op it replaces
            lat[(r["replaces"] or [r["name"]])[-1]] = r["cycles"]
    rows = []
    for op in g.ops:
        t = step[op.name]
        storage = st.get(op.name, "-")
        wb = None
        if storage == "sparse":
            wb = analytic_encoded_size(op.weight_shape, float(sp.get(op.name, 0.0)), int(bl[op.name]))
        cyc = float(lat.get(op.name, 0.0))
        rows.append({
            "op": op.name, "block": op.name.split(".")[0], "kind": op.kind, "macs": int(op.macs),
            "weights": int(op.weight_count), "flash_bytes": int(layer_flash(op, wb)),
            "sram_bytes": int(sum(p.sizes[b] for b in p.live_at(t))),
            "sparsity": float(sp.get(op.name, 0.0)), "block_size": int(bl.get(op.name, 0)),
            "storage": storage, "cycles": cyc, "ms": cyc / CLOCK_HZ * 1e3,
        })
    return pd.DataFrame(rows)


def block_shapes(arch: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Output shape of each block (ds0, mb0, vit0, last, pool, classifier) and of the input."""
    from core.tinyformer import graph_of

    g = graph_of(arch)
    shapes = {"input": g.tensors[g.input].shape}
    for op in g.ops:
        shapes[op.name.split(".")[0]] = g.tensors[op.output].shape
    return shapes


def effective_macs(row: dict[str, Any]) -> int:
    """MACs left when sparse-stored layers skip their zero weights."""
    from core.tinyformer import graph_of

    st, sp = row.get("storage") or {}, row.get("sparsity") or {}
    return int(sum(op.macs * (1.0 - float(sp.get(op.name, 0.0))) if st.get(op.name) == "sparse" else op.macs
                   for op in graph_of(row["arch"]).ops))


# ------------------------------------------------------------------------------------ engine --
def runs_path(cid: int, nas_dir: Path | None = None) -> Path:
    return Path(nas_dir or data_dir() / "nas") / "engine" / f"{int(cid)}.json"


def engine_runs(cid: int, nas_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Shipped engine runs of candidate `cid` keyed by mode (cmsis-nn, dense, sparse); {} if none."""
    path = runs_path(cid, nas_dir)
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
        runs = doc["runs"]
    except (OSError, ValueError, KeyError) as exc:
        raise WorkbenchError(f"engine runs {str(path)!r} are garbled ({exc}); re-create them with "
                             f"`python -m core nas engine --id {cid}`") from exc
    return {m: {**r, "source": f"{path} (`{doc.get('command', '')}`)"} for m, r in runs.items()}


def run_engine(cid: int, nas_dir: Path | None = None, progress: Progress = no_progress, seed: int = 0,
               modes: tuple[str, ...] = MODES, cmsis_nn: str | None = None) -> dict[str, dict[str, Any]]:
    """Deploy candidate `cid` on the emulated Cortex-M7 as a CMSIS-NN deployment (CMSIS-NN where it
    has the op, dense weights), with the engine's kernels all dense, and as searched (sparse layers
    in the blockwise format at their block sizes); every layer compared with the integer reference.
    A missing CMSIS-NN checkout leaves that mode out with the reason in `{"cmsis-nn": {"error"}}`."""
    from core.engine import models
    from core.engine.pipeline import deploy

    steps = 1 + 4 * len(modes)
    progress(0, steps, "quantizing the candidate")
    qm, row = models.candidate(int(cid), Path(nas_dir) if nas_dir else None)
    shape = qm.graph.tensors[qm.graph.input].shape
    x = np.random.default_rng(seed).integers(-128, 128, size=shape).astype(np.int8)
    searched = {op: int(row["block"][op]) for op, s in (row.get("storage") or {}).items() if s == "sparse"}
    out: dict[str, dict[str, Any]] = {}
    folder = ensure_writable_dir(cache_dir() / "engine-ui")
    with tempfile.TemporaryDirectory(prefix=f"candidate{int(cid)}-", dir=folder) as work:
        for k, mode in enumerate(modes):
            def sub(done: int, total: int, message: str = "", k: int = k, mode: str = mode) -> None:
                progress(1 + 4 * k + done, steps, f"{mode}: {message}")

            kw: dict[str, Any] = {"sparse": "dense" if mode != "sparse" else searched}
            if mode == "cmsis-nn":
                from core.engine import cmsis

                try:
                    kw.update(backend="cmsis-nn", cmsis_nn=cmsis.library(cmsis_nn))
                except WorkbenchError as exc:
                    out[mode] = {"error": str(exc)}
                    continue
            fits, note = True, ""
            try:
                dep = deploy(qm, Path(work) / mode, x, compare=True, progress=sub, **kw)
            except WorkbenchError as exc:  # stored dense it does not fit the STM32F746's 1 MB of flash:
                if "flash" not in str(exc):  # emulate it on a 2 MB part to compare its speed anyway
                    raise
                from core.engine.toolchain import Target

                fits, note = False, f"does not fit 1 MB of flash ({exc}); emulated with 2 MB of flash"
                dep = deploy(qm, Path(work) / mode, x, compare=True, progress=sub,
                             target=Target(flash_bytes=2 * 1024 * 1024), **kw)
            out[mode] = {**dep.summary(), "layers": [_layer(r) for r in dep.layers],
                         "weights": row.get("weights"), "source": "run in this session",
                         "fits_1mb": fits, "note": note}
    return out


def _layer(r: Any) -> dict[str, Any]:
    d = dict(vars(r))
    d["cycle_bounds"] = list(d.get("cycle_bounds", ()))
    return d


def ship_engine_runs(cid: int, command: str, nas_dir: Path | None = None,
                     progress: Progress = no_progress) -> Path:
    """Run `run_engine` and write `data/nas/engine/<id>.json` (what the explorer shows without a run)."""
    runs = run_engine(cid, nas_dir, progress)
    path = runs_path(cid, nas_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(path, {"candidate": int(cid), "command": command, "runs": runs})


def engine_layers(runs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Long table (order, layer, kind, mode, storage, macs, instructions, cycles, exact)."""
    rows = []
    for mode, run in runs.items():
        for i, r in enumerate(run.get("layers", [])):
            rows.append({"order": i, "layer": r["name"], "kind": r["kind"], "mode": mode,
                         "storage": r["storage"], "macs": r["macs"], "instructions": r["instructions"],
                         "cycles": r["cycles"], "exact": r["exact"]})
    return pd.DataFrame(rows)


def layer_speedups(runs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Per layer with weights or attention: cycles of each mode and the ratios dense/sparse and
    CMSIS-NN/sparse (> 1: the sparse deployment is faster on that layer)."""
    long = engine_layers(runs)
    if long.empty or "sparse" not in runs:
        return pd.DataFrame(columns=["order", "layer", "kind", "storage", "vs_dense", "vs_cmsis_nn"])
    # by layer name: a CMSIS-NN deployment runs attention as three ops where the engine runs one
    wide = long.pivot_table(index="layer", columns="mode", values="cycles", aggfunc="sum").reset_index()
    sp = long[long["mode"] == "sparse"].set_index("layer")
    wide = wide[wide["layer"].isin(sp.index)]
    wide["order"], wide["kind"] = wide["layer"].map(sp["order"]), wide["layer"].map(sp["kind"])
    wide["storage"] = wide["layer"].map(sp["storage"])
    wide["vs_dense"] = wide["dense"] / wide["sparse"] if "dense" in wide else math.nan
    wide["vs_cmsis_nn"] = wide["cmsis-nn"] / wide["sparse"] if "cmsis-nn" in wide else math.nan
    keep = wide["kind"].isin(["conv2d", "dwconv2d", "linear", "matmul_qk", "matmul_av", "softmax",
                              "layernorm"])
    return wide[keep].sort_values("order").reset_index(drop=True)


def compare_sentence(runs: dict[str, dict[str, Any]]) -> str:
    """What the runs compare, in one or two sentences."""
    ok = {m: r for m, r in runs.items() if "cycles" in r}
    if "sparse" not in ok:
        return "No sparse run of this candidate yet."
    parts = []
    for m, label in (("dense", "the engine's dense kernels"), ("cmsis-nn", "a CMSIS-NN deployment")):
        if m in ok:
            parts.append(f"{ok[m]['cycles'] / ok['sparse']['cycles']:.2f}× vs {label}")
    missing = [f"{m}: {r['error']}" for m, r in runs.items() if "error" in r]
    missing += [f"{MODE_LABELS.get(m, m)} {r['note']}" for m, r in ok.items() if r.get("note")]
    n_sparse = ok["sparse"].get("sparse_layers", 0)
    s = (f"Whole model, estimated cycles: the sparse deployment ({n_sparse} layers stored sparse, the rest "
         f"dense) is {', '.join(parts) or 'not compared'}; the same int8 weights, input and emulator in "
         "every column.")
    return s + ("" if not missing else " Note: " + "; ".join(missing) + ".")


def kernel_curve(bench: dict[str, Any] | None = None) -> pd.DataFrame:
    """Speedup of the sparse kernel vs the dense one and vs CMSIS-NN per kernel, block and sparsity,
    from `data/results/bench_engine.json` (empty when the benchmark was not run)."""
    if bench is None:
        path = data_dir() / "results" / "bench_engine.json"
        if not path.is_file():
            return pd.DataFrame()
        bench = json.loads(path.read_text())
    rows = [{"kernel": f"{k['kernel']} b={k['block']}", "sparsity": float(k["sparsity"]),
             "vs_dense": k.get("speedup_vs_dense"), "vs_cmsis_nn": k.get("speedup_vs_cmsis_nn")}
            for k in bench.get("kernels", [])]
    return pd.DataFrame(rows)


def break_even(curve: pd.DataFrame, column: str = "vs_dense") -> dict[str, float | str | None]:
    """Per kernel, the sparsity where `column` crosses 1 (linear interpolation between measured
    sparsities); None when it never crosses in the measured range, "<s" when it is already above 1 at
    the lowest measured sparsity s."""
    out: dict[str, float | str | None] = {}
    for name, sub in curve.dropna(subset=[column]).groupby("kernel"):
        s, v = sub["sparsity"].to_numpy(), sub[column].to_numpy(float)
        order = np.argsort(s)
        s, v = s[order], v[order]
        if v[0] >= 1:
            out[name] = f"<{s[0]:g}"
            continue
        hit = None
        for i in range(1, len(s)):
            if v[i - 1] < 1 <= v[i]:
                hit = float(s[i - 1] + (1 - v[i - 1]) * (s[i] - s[i - 1]) / (v[i] - v[i - 1]))
                break
        out[name] = hit
    return out


def requant_cycles_per_output(bench: dict[str, Any] | None = None) -> float | None:
    """Cycles per output of the sparse kernels' requantization (`bench engine`'s floor), if measured."""
    if bench is None:
        path = data_dir() / "results" / "bench_engine.json"
        if not path.is_file():
            return None
        bench = json.loads(path.read_text())
    floor = bench.get("requant_floor") or {}
    for key in ("tight_cycles_per_output", "rq2_cycles_per_output", "cycles_per_output"):
        if isinstance(floor.get(key), int | float):
            return float(floor[key])
    return None


GROUPS = {"attention (row-tiled QKᵀ·softmax·AV)": ("matmul_qk", "matmul_av", "attention"),
          "softmax (pooling)": ("softmax",),
          "LayerNorm": ("layernorm",), "adds, pooling": ("add", "maxpool", "avgpool"),
          "weighted layers (conv, linear)": ("conv2d", "dwconv2d", "linear")}


def time_breakdown(run: dict[str, Any], outputs: dict[str, int] | None = None,
                   rq_cycles: float | None = None) -> dict[str, float]:
    """Share of the run's cycles per op group; with `outputs` (weighted layer -> output count) and
    the requantization cost per output, the requantization part of the weighted layers."""
    layers = run.get("layers", [])
    total = float(sum(r["cycles"] for r in layers)) or 1.0
    out = {g: sum(r["cycles"] for r in layers if r["kind"] in kinds) / total for g, kinds in GROUPS.items()}
    if outputs and rq_cycles:
        rq = sum(rq_cycles * outputs.get(r["name"], 0) for r in layers if r["kind"] in GROUPS[
            "weighted layers (conv, linear)"])
        out["requantization (in weighted layers)"] = min(rq / total, out["weighted layers (conv, linear)"])
    return out


def breakdown_sentence(run: dict[str, Any], arch: dict[str, Any] | None = None) -> str:
    """Where the whole-model time goes, in one sentence."""
    outputs = None
    if arch is not None:
        from core.tinyformer import graph_of

        g = graph_of(arch)
        outputs = {op.name: int(np.prod(g.tensors[op.output].shape)) for op in g.ops}
    share = time_breakdown(run, outputs, requant_cycles_per_output())
    main = ", ".join(f"{k} {v:.0%}" for k, v in sorted(share.items(), key=lambda kv: -kv[1])
                     if not k.startswith("requant"))
    rq = share.get("requantization (in weighted layers)")
    tail = (f"; requantizing the weighted layers' outputs alone is about {rq:.0%} (at the kernel "
            "benchmark's cycles per output)") if rq is not None else ""
    return f"Where the time goes (estimated cycles of this run): {main}{tail}."
