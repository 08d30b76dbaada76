"""Data side of the NAS explorer: what the page reads from `data/nas/` and `data/engine/`, and the
small derived tables its plots show. No widgets here, so the notebook and the tests can use it too.

Everything is computed by `core` (graph, memory plan, flash model, engine); this module only joins
those results for one candidate:

- `load_candidates(nas_dir)`: the SparseNAS candidates table (one row per candidate) written by
  `python -m core nas sparsenas`; `load_supernas(nas_dir)`: the SuperNAS result with its CDF data.
- `fitting(table, flash_kb, sram_kb)`: which candidates fit the budgets; `pareto_front(x, acc)`:
  the candidates no other fitting one beats on both accuracy and cost.
- `layer_table(row)`: per-op MACs, flash (`core.tinyformer.cost.layer_flash`), live SRAM at that op
  (`core.tinyformer.memory.plan` with the kernels' scratch), sparsity and block size.
- `latency_ms(row)`: a first-order latency estimate for colouring (see its docstring).
- `engine_runs(cid)`: shipped engine measurements of a candidate; `run_engine(cid)`: measure it now
  (dense and as searched) on the emulated Cortex-M7.
- `export_firmware(cid, board)`: the candidate's firmware project (`core.engine.export`) as a zip.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import WorkbenchError
from core.io import Progress, cache_dir, data_dir, ensure_writable_dir, no_progress

#: how each dataset is named in titles
DATASET_LABELS = {"shapes10": "shapes10 (procedural, offline)", "cifar10": "CIFAR-10"}
#: STM32F746 clock (ANCHORS.md), the clock of every latency the page shows
CLOCK_HZ = 216_000_000
#: engine deployment modes the page compares: every layer dense vs the candidate's own storage
MODES = ("dense", "sparse")


def dataset_label(name: str) -> str:
    return DATASET_LABELS.get(name, name)


def nas_folder() -> Path:
    return data_dir() / "nas"


def load_candidates(nas_dir: Path | None = None) -> pd.DataFrame:
    """The candidates table (sorted by id) with `arch`, `sparsity`, `block`, `storage` still JSON text."""
    from core.tinyformer.candidates import read_table

    path = Path(nas_dir or nas_folder()) / "candidates.parquet"
    table = read_table(path)
    if table.empty:
        raise WorkbenchError(f"the candidates table {str(path)!r} has no rows")
    return table


def load_supernas(nas_dir: Path | None = None) -> dict[str, Any] | None:
    """The SuperNAS result (`best`, `spaces`, `cdf`, budgets) or None when it was not run."""
    from core.tinyformer.supernas import read_result

    path = Path(nas_dir or nas_folder()) / "supernas.json"
    return read_result(path) if path.is_file() else None


def made_by(nas_dir: Path | None = None, artefact: str = "candidates.parquet") -> str | None:
    """The command that wrote `artefact`, from the folder's manifest (None when not recorded)."""
    path = Path(nas_dir or nas_folder()) / "manifest.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("artefacts", {}).get(artefact, {}).get("command")


def candidate(table: pd.DataFrame, cid: int) -> dict[str, Any]:
    """Row `cid` as a dict with the JSON columns parsed."""
    hit = table[table["id"] == cid]
    if hit.empty:
        raise WorkbenchError(f"candidate id {cid} is not in the table; ids are "
                             f"{int(table['id'].min())}..{int(table['id'].max())}")
    row = hit.iloc[0].to_dict()
    for key in ("arch", "sparsity", "sparsity_target", "block", "storage"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def fitting(table: pd.DataFrame, flash_kb: float, sram_kb: float) -> np.ndarray:
    """Boolean mask: flash ≤ `flash_kb` KiB and peak SRAM ≤ `sram_kb` KiB (bytes compared exactly)."""
    return ((table["flash_bytes"] <= flash_kb * 1024) & (table["sram_bytes"] <= sram_kb * 1024)).to_numpy()


def pareto_front(cost: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Indices of the Pareto-optimal points (lower cost, higher accuracy), by increasing cost.

    A point is on the front when every point with cost ≤ its cost has lower accuracy (ties in cost:
    the most accurate one).
    """
    order = np.lexsort((-np.asarray(acc), np.asarray(cost)))  # by cost, then best accuracy first
    front, best = [], -math.inf
    for i in order:
        if acc[i] > best:
            front.append(int(i))
            best = acc[i]
    return np.asarray(front, dtype=np.int64)


def _graph_and_plan(arch: dict[str, Any], storage: dict[str, str]):  # noqa: ANN202 -- (Graph, Plan)
    from core.tinyformer import default_scratch, graph_of, plan

    g = graph_of(arch)
    sparse_layers = [name for name, kind in storage.items() if kind == "sparse"]
    return g, plan(g, default_scratch(g, sparse_layers))


def layer_table(row: dict[str, Any]) -> pd.DataFrame:
    """One row per op of the candidate's graph, in execution order.

    Columns: op, block (the network block the op belongs to: ds0, mb1, vit0, last, ...), kind, macs,
    weights (weight count), flash_bytes (`cost.layer_flash`; a sparse layer's weights at
    `cost.analytic_encoded_size` of its achieved sparsity, i.e. rows pruned evenly and no gap fillers:
    the table's exact encoded total differs by a few %), sram_bytes (activations + scratch live while
    the op runs; the maximum over ops is the table's SRAM), sparsity (achieved fraction of zero
    weights), block_size, storage ("sparse" | "dense" | "-").
    """
    from core.tinyformer.cost import analytic_encoded_size, layer_flash

    sp, bl, st = row.get("sparsity") or {}, row.get("block") or {}, row.get("storage") or {}
    g, p = _graph_and_plan(row["arch"], st)
    rows = []
    for t, op in enumerate(g.ops):
        storage = st.get(op.name, "-")
        wb = None
        if storage == "sparse":
            wb = analytic_encoded_size(op.weight_shape, float(sp.get(op.name, 0.0)), int(bl[op.name]))
        rows.append({
            "op": op.name, "block": op.name.split(".")[0], "kind": op.kind, "macs": int(op.macs),
            "weights": int(op.weight_count),
            "flash_bytes": int(layer_flash(op, wb)),
            "sram_bytes": int(sum(p.sizes[b] for b in p.live_at(t))),
            "sparsity": float(sp.get(op.name, 0.0)), "block_size": int(bl.get(op.name, 0)),
            "storage": storage,
        })
    return pd.DataFrame(rows)


def block_shapes(arch: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Output shape of each block (ds0, mb0, vit0, last, pool, classifier) and of the input."""
    from core.tinyformer import graph_of

    g = graph_of(arch)
    shapes = {"input": g.tensors[g.input].shape}
    for op in g.ops:  # ops run in order: the last op of a block writes the block's output
        shapes[op.name.split(".")[0]] = g.tensors[op.output].shape
    return shapes


def effective_macs(row: dict[str, Any]) -> int:
    """MACs a weight-stationary sparse engine still performs: sparse-stored layers skip their zero
    weights (macs·(1 − s)); dense layers and the attention matmuls do every MAC."""
    from core.tinyformer import graph_of

    st, sp = row.get("storage") or {}, row.get("sparsity") or {}
    return int(sum(op.macs * (1.0 - float(sp.get(op.name, 0.0))) if st.get(op.name) == "sparse" else op.macs
                   for op in graph_of(row["arch"]).ops))


def dense_cycles_per_mac() -> tuple[float, str]:
    """Whole-model dense cycles/MAC measured by `python -m core bench engine` (its first dense
    model), or NaN (no latency estimate) when that benchmark was not run; with where it came from."""
    path = data_dir() / "results" / "bench_engine.json"
    if path.is_file():
        for r in json.loads(path.read_text()).get("whole", []):
            if "dense" in r.get("model", "") and r.get("cycles_per_mac"):
                cpm = float(r["cycles_per_mac"])
                return cpm, f"{cpm:.2f} cycles/MAC (bench engine, dense)"
    return float("nan"), "no measured cycles/MAC (run python -m core bench engine)"


def latency_ms(row: dict[str, Any], cycles_per_mac: float) -> float:
    """First-order latency at 216 MHz: effective MACs × measured dense cycles/MAC.

    Only for colouring and ranking candidates nobody has emulated yet; the engine section shows the
    emulated per-layer cycles.
    """
    return effective_macs(row) * cycles_per_mac / CLOCK_HZ * 1e3


# ------------------------------------------------------------------------------------ engine --
def engine_runs(cid: int, engine_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Shipped engine measurements of candidate `cid` (from `python -m core engine run|compare`),
    keyed "dense" or "sparse" by the deployment mode they were made with; {} if none."""
    path = Path(engine_dir or data_dir() / "engine") / str(int(cid)) / "manifest.json"
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    if not doc.get("layers"):  # `engine build` only: sizes, no per-layer counts
        return {}
    mode = "dense" if doc.get("sparse") == "dense" else "sparse"
    return {mode: {**doc, "source": f"{path} (`engine {doc.get('action')} --sparse {doc.get('sparse')}`)"}}


def run_engine(cid: int, nas_dir: Path | None = None, progress: Progress = no_progress,
               seed: int = 0) -> dict[str, dict[str, Any]]:
    """Deploy candidate `cid` on the emulated Cortex-M7 twice -- every layer dense, then with the
    candidate's sparse layers in the blockwise run-length format at its searched block sizes -- and
    compare each layer with the integer reference. Returns {"dense": ..., "sparse": ...} with the
    same fields as the `engine compare` manifest (summary + "layers")."""
    from core.engine import models
    from core.engine.pipeline import deploy

    progress(0, 9, "quantizing the candidate")
    qm, row = models.candidate(int(cid), Path(nas_dir) if nas_dir else None)
    shape = qm.graph.tensors[qm.graph.input].shape
    x = np.random.default_rng(seed).integers(-128, 128, size=shape).astype(np.int8)  # same as the CLI
    searched = {op: int(row["block"][op]) for op, s in (row.get("storage") or {}).items() if s == "sparse"}
    out = {}
    # a private build folder per run: two sessions may emulate the same candidate at once
    folder = ensure_writable_dir(cache_dir() / "engine-ui")
    with tempfile.TemporaryDirectory(prefix=f"candidate{int(cid)}-", dir=folder) as work:
        for k, (mode, fmt) in enumerate((("dense", "dense"), ("sparse", searched))):
            def sub(done: int, total: int, message: str = "", k: int = k, mode: str = mode) -> None:
                progress(1 + 4 * k + done, 9, f"{mode}: {message}")

            dep = deploy(qm, Path(work) / mode, x, fmt, compare=True, progress=sub)
            out[mode] = {**dep.summary(), "layers": [vars(r) for r in dep.layers],
                         "weights": row.get("weights"), "source": "run in this session"}
    return out


def engine_layers(runs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Long table (layer, kind, mode, storage, macs, instructions, cycles, exact) of the runs, in
    execution order, for grouped bars."""
    rows = []
    for mode, run in runs.items():
        for i, r in enumerate(run["layers"]):
            rows.append({"order": i, "layer": r["name"], "kind": r["kind"], "mode": mode,
                         "storage": r["storage"], "macs": r["macs"], "instructions": r["instructions"],
                         "cycles": r["cycles"], "exact": r["exact"]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- firmware --
def export_firmware(cid: int, board: str, nas_dir: Path | None = None,
                    progress: Progress = no_progress) -> dict[str, Any]:
    """Export candidate `cid` as a firmware project for `board` with `core.engine.export` (built with
    arm-none-eabi-gcc, checked on Unicorn and, for mps2-an500, QEMU) in a private temporary folder, and
    zip it. Returns {"zip": bytes, "filename", "report", "uart"}; the folder is removed afterwards."""
    import io
    import shutil
    import zipfile

    from core.engine.export import export_firmware as export

    name = f"candidate{int(cid)}_{board}"
    folder = ensure_writable_dir(cache_dir() / "firmware-ui")
    with tempfile.TemporaryDirectory(prefix=f"{name}-", dir=folder) as work:
        res = export(int(cid), Path(work) / name, board, nas_dir=Path(nas_dir) if nas_dir else None,
                     progress=progress)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(res.path.rglob("*")):
                if path.is_file():
                    zf.write(path, Path(name) / path.relative_to(res.path))
        shutil.rmtree(res.path)
    return {"zip": buf.getvalue(), "filename": f"{name}.zip", "report": res.report, "uart": res.uart}
