"""Latency of a candidate on the SparseEngine: a per-layer cost model fitted to emulator measurements.

Each op falls in a *group* (kind, kernel variant, storage, block size), e.g. `conv2d.1x1.sparse.b4`,
`dwconv2d.s2.dense`, `linear.sparse.b1`, `softmax`. Within a group the estimated cycles of one op are
a non-negative combination of a few counts of work (`features`):

    weighted ops, dense:   MACs, input reads (pixels·k²·cin), outputs, output pixels, cout, 1
    weighted ops, sparse:  kept MACs, kept weight blocks, outputs of live channels (≥ 1 kept weight),
                           outputs, output pixels, cout, 1
    attention matmuls:     MACs, outputs, 1
    row-tiled attention:   MACs, outputs, score elements (heads·Nq·Nk), score rows (heads·Nq), 1
    softmax / layernorm:   elements, rows, 1
    add / pooling:         input elements, outputs, 1

`measure(plan)` builds each single-op program of `PLAN` (`core.engine.synth`: op, shape, sparsity,
block size), compiles it with the project's toolchain and runs it on the emulator, reading the op's
cycles under `core.engine.cycles` (optimistic, point, conservative). `fit(rows)` solves one
non-negative least-squares problem per group and bound. `LatencyModel.predict(graph, ...)` sums the
layers of the schedule the engine executes (`core.tinyformer.schedule`: QKᵀ → softmax → AV chains
fused into one row-tiled `attention` op); `validate(model, archs)` compares that sum with whole-model
emulation (`core.engine.deploy`) of models that were not in the fit. Both measurements are
independent jobs: with a `scheduler` they run on Dask (`core.cluster.run_jobs`), with the same
results.

The fitted coefficients ship in `data/nas/latency_model.json` (`python -m core bench nas-latency --fit`
re-measures and re-fits them; `--fit-kinds` re-measures some op kinds and keeps the other shipped
points). A re-fit records in the model's meta which points moved against the measurements it replaced
(`compare_points`): after an engine change, the groups whose kernels changed.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import WorkbenchError, brief
from core.io import Progress, no_progress, write_json_atomic

FORMAT = 1
BOUNDS = ("optimistic", "point", "conservative")
WEIGHTED = ("conv2d", "dwconv2d", "linear")
FREE = ("reshape",)  # views: no code runs
CLOCK_HZ = 216e6


def _conv_variant(kind: str, kernel: int, stride: int) -> str:
    if kind == "dwconv2d":
        return f"s{stride}"
    return "1x1" if kernel == 1 else f"{kernel}x{kernel}"


def group_of(kind: str, kernel: int = 1, stride: int = 1, sparse: bool = False, block: int = 0) -> str:
    """The group name of an op (see the module docstring)."""
    if kind in WEIGHTED:
        base = kind if kind == "linear" else f"{kind}.{_conv_variant(kind, kernel, stride)}"
        return f"{base}.sparse.b{block}" if sparse else f"{base}.dense"
    return kind


def _op_geometry(op: Any, graph: Any) -> dict[str, int]:
    """Pixels (or tokens), cin, cout, kernel and stride of a weighted op."""
    out = graph.tensors[op.output].shape
    if op.kind == "linear":
        n = int(np.prod(out[:-1]))
        return {"pixels": n, "cin": int(op.weight_shape[1]), "cout": int(op.weight_shape[0]), "k": 1,
                "stride": 1}
    kh = int(op.attrs["kernel"][0])
    cout = int(out[2])
    cin = cout if op.kind == "dwconv2d" else int(op.weight_shape[3])
    return {"pixels": int(out[0] * out[1]), "cin": cin, "cout": cout, "k": kh,
            "stride": int(op.attrs.get("stride", 1))}


def expected_live(kept: float, row_blocks: int) -> float:
    """Expected fraction of output channels with at least one kept block when a fraction `kept` of
    the blocks survives independently (used when the weights are not at hand)."""
    return 1.0 - (1.0 - kept) ** max(row_blocks, 1)


def features(kind: str, geo: dict[str, int], sparse: bool = False, kept: float = 1.0,
             block: int = 1, live: float | None = None) -> np.ndarray:
    """The work counts of one op (the columns of its group's fit).

    `geo`: weighted ops {pixels, cin, cout, k}; matmuls {macs, outputs}; softmax/layernorm
    {elements, rows}; add/pooling {elements, outputs}. `kept`: fraction of weights kept (sparse);
    `live`: fraction of output channels with a kept weight (default: `expected_live`).
    """
    if kind in WEIGHTED:
        p, cin, cout, k = geo["pixels"], geo["cin"], geo["cout"], geo["k"]
        fan = k * k * (1 if kind == "dwconv2d" else cin)
        macs = p * cout * fan
        if sparse:
            live = expected_live(kept, fan // block) if live is None else live
            return np.array([macs * kept, cout * fan * kept / block, p * cout * live, p * cout, p, cout,
                             1.0])
        return np.array([macs, p * k * k * cin, p * cout, p, cout, 1.0])
    if kind in ("matmul_qk", "matmul_av"):
        return np.array([geo["macs"], geo["outputs"], 1.0])
    if kind == "attention":
        return np.array([geo["macs"], geo["outputs"], geo["scores"], geo["rows"], 1.0])
    if kind in ("softmax", "layernorm"):
        return np.array([geo["elements"], geo["rows"], 1.0])
    if kind in ("add", "maxpool", "avgpool"):
        return np.array([geo["elements"], geo["outputs"], 1.0])
    known = (*WEIGHTED, "matmul_qk", "matmul_av", "attention", "softmax", "layernorm", "add", "maxpool",
             "avgpool")
    raise WorkbenchError(f"op kind {kind!r} has no latency features; known: {', '.join(known)}")


def graph_op_features(op: Any, graph: Any, sparse: bool, kept: float, block: int,
                      live: float | None = None) -> tuple[str, np.ndarray]:
    """(group, features) of one op of a `core.tinyformer.graph.Graph`."""
    shape = graph.tensors[op.output].shape
    if op.kind in WEIGHTED:
        geo = _op_geometry(op, graph)
        return (group_of(op.kind, geo["k"], geo["stride"], sparse, block),
                features(op.kind, geo, sparse, kept, max(block, 1), live))
    if op.kind in ("matmul_qk", "matmul_av"):
        return op.kind, features(op.kind, {"macs": int(op.macs), "outputs": int(np.prod(shape))})
    if op.kind == "attention":
        nq = int(graph.tensors[op.inputs[0]].shape[0])
        nk = int(graph.tensors[op.inputs[1]].shape[0])
        heads = int(op.attrs["heads"])
        return op.kind, features(op.kind, {"macs": int(op.macs), "outputs": int(np.prod(shape)),
                                           "scores": heads * nq * nk, "rows": heads * nq})
    if op.kind in ("softmax", "layernorm"):
        return op.kind, features(op.kind, {"elements": int(np.prod(shape)),
                                           "rows": int(np.prod(shape[:-1]))})
    src = graph.tensors[op.inputs[0]].shape
    return op.kind, features(op.kind, {"elements": int(np.prod(src)), "outputs": int(np.prod(shape))})


# --------------------------------------------------------------------------------------------------
# the measurement plan: single ops over the shapes, sparsities and block sizes of the search spaces

SPARSITIES = (0.5, 0.7, 0.85, 0.95)


def _plan() -> list[dict[str, Any]]:
    """(kind, shape kwargs) of every single-op measurement, seeded and fixed."""
    pts: list[dict[str, Any]] = []

    def add(kind: str, **shape: Any) -> None:
        pts.append({"kind": kind, "shape": shape})

    conv1 = [(8, 24, 48), (8, 60, 120), (8, 100, 400), (8, 160, 60), (16, 40, 120), (16, 24, 96),
             (4, 120, 240), (8, 400, 100)]
    for hw, cin, cout in conv1:
        add("conv2d", k=1, h=hw, w=hw, cin=cin, cout=cout)
    for hw, cin, cout in conv1[::2]:
        for b in (1, 2, 4):
            for s in SPARSITIES:
                add("conv2d", k=1, h=hw, w=hw, cin=cin, cout=cout, sparsity=s, block=b)
    conv3 = [(8, 60, 60), (8, 100, 100), (16, 3, 40), (32, 3, 40), (32, 3, 16), (8, 40, 40)]
    for hw, cin, cout in conv3:
        add("conv2d", k=3, h=hw, w=hw, cin=cin, cout=cout)
    for hw, cin, cout in (conv3[0], conv3[1], conv3[5]):
        for b in (1, 2, 4):
            for s in SPARSITIES:
                add("conv2d", k=3, h=hw, w=hw, cin=cin, cout=cout, sparsity=s, block=b)
    for s in SPARSITIES[::2]:  # the stem conv (3 input channels: blocks of 1)
        add("conv2d", k=3, h=32, w=32, cin=3, cout=40, sparsity=s, block=1)
    dws = {1: [(8, 120), (8, 400), (8, 240), (16, 80)], 2: [(32, 12), (16, 240), (32, 8), (16, 120)]}
    for stride, shapes in dws.items():
        for hw, c in shapes:
            add("dwconv2d", k=3, h=hw, w=hw, cin=c, stride=stride)
        for hw, c in shapes[:2]:
            for b in (1, 3):
                for s in SPARSITIES:
                    add("dwconv2d", k=3, h=hw, w=hw, cin=c, stride=stride, sparsity=s, block=b)
    lin = [(64, 80, 80), (64, 160, 160), (64, 160, 320), (64, 320, 160), (64, 120, 240), (1, 400, 10),
           (64, 400, 1), (16, 80, 160)]
    for n, cin, cout in lin:
        add("linear", n=n, cin=cin, cout=cout)
    for n, cin, cout in lin[:5]:
        for b in (1, 2, 4):
            for s in SPARSITIES:
                add("linear", n=n, cin=cin, cout=cout, sparsity=s, block=b)
    for n, d, heads in ((64, 80, 2), (64, 160, 4), (64, 120, 2), (16, 80, 4), (64, 160, 2)):
        add("matmul_qk", n=n, d=d, heads=heads)
    for n, heads in ((64, 2), (64, 4), (16, 2), (32, 1)):
        add("matmul_av", n=n, heads=heads)
    for n, d, heads in ((64, 80, 2), (64, 160, 4), (64, 120, 2), (16, 80, 4), (64, 160, 2), (32, 120, 4),
                        (64, 80, 4)):
        add("attention", n=n, d=d, heads=heads)
    for n, heads in ((64, 2), (64, 4), (16, 4), (32, 1)):
        add("softmax", n=n, heads=heads)
    for n, d in ((64, 80), (64, 160), (16, 120), (64, 120)):
        add("layernorm", n=n, d=d)
    for n, d in ((64, 80), (64, 400), (256, 60), (64, 160)):
        add("add", n=n, d=d)
    for hw, c in ((32, 40), (32, 16), (16, 60)):
        add("maxpool", h=hw, w=hw, cin=c)
    for hw, c in ((8, 400), (8, 240), (4, 100)):
        add("avgpool", h=hw, w=hw, cin=c)
    return pts


PLAN = _plan()


def _synth_features(point: dict[str, Any], model: Any) -> tuple[str, np.ndarray]:
    """(group, features) of the synth program's last op, with its achieved sparsity."""
    q = model.qops[-1]
    op, graph = q.op, model.graph
    s = point["shape"]
    sparse = s.get("sparsity", 0.0) > 0
    kept, live = 1.0, None
    if sparse:
        kept, live = kept_and_live(q.weight)
    return graph_op_features(op, graph, sparse, kept, s.get("block", 1) if sparse else 0, live)


def kept_and_live(weight: Any) -> tuple[float, float]:
    """(fraction of non-zero weights, fraction of output channels with one) of a deploy-layout
    weight (output channels first)."""
    w = np.asarray(weight)
    rows = w.reshape(w.shape[0], -1) != 0
    return float(rows.mean()), float(rows.any(axis=1).mean())


def measure_point(point: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Build and emulate one single-op program; its group, features and cycle bounds."""
    from core.engine import codegen, cycles, synth
    from core.engine.lowering import WeightFormat

    s = dict(point["shape"])
    model = synth.single_op(point["kind"], np.random.default_rng(seed), **s)
    fmt = {}
    if point["kind"] in WEIGHTED:
        fmt = {"layer": WeightFormat(True, s["block"]) if s.get("sparsity", 0) > 0 else WeightFormat()}
    with tempfile.TemporaryDirectory(prefix="latency-") as tmp:
        work = Path(tmp)
        prog = codegen.generate(model, work, fmt)
        fw = codegen.build_program(prog, work)
        shape = model.graph.tensors[model.graph.input].shape
        x = np.random.default_rng(seed + 1).integers(-128, 128, size=shape).astype(np.int8)
        ex = codegen.execute(prog, fw, x, count_flash=False)
    counts = ex.result.counts[len(model.qops) - 1]
    group, feats = _synth_features(point, model)
    return {**point, "group": group, "features": [float(v) for v in feats],
            "cycles": [int(v) for v in cycles.bounds(counts)]}


def _measure_job(point: dict[str, Any], seed: int) -> dict[str, Any]:
    return measure_point(point, seed)


def measure(plan: list[dict[str, Any]] | None = None, scheduler: Any = None, seed: int = 0,
            progress: Progress = no_progress) -> list[dict[str, Any]]:
    """Measure every point of `plan` (default `PLAN`), in order; on Dask when `scheduler` is given."""
    from core.cluster import run_jobs

    plan = PLAN if plan is None else plan
    rows: list[dict[str, Any] | None] = [None] * len(plan)
    for done, (i, row) in enumerate(run_jobs(_measure_job, plan, scheduler, shared=seed), 1):
        rows[i] = row
        progress(done, len(plan), f"{row['group']}")
    return rows  # type: ignore[return-value]


def point_key(row: dict[str, Any]) -> str:
    """The identity of a plan point (kind and shape kwargs), whatever else a row holds."""
    return json.dumps([row["kind"], row["shape"]], sort_keys=True)


def compare_points(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, Any]:
    """Which measurements of `new` differ from `old` (the same plan point: features or cycles):
    {"same", "changed": {group: n}, "added", "dropped"} (what a re-measure after an engine change moved)."""
    before = {point_key(r): r for r in old}
    changed: dict[str, int] = {}
    same = added = 0
    for r in new:
        o = before.get(point_key(r))
        if o is None:
            added += 1
        elif o["features"] == r["features"] and o["cycles"] == r["cycles"] and o["group"] == r["group"]:
            same += 1
        else:
            changed[r["group"]] = changed.get(r["group"], 0) + 1
    dropped = len(before.keys() - {point_key(r) for r in new})
    return {"same": same, "changed": dict(sorted(changed.items())), "added": added, "dropped": dropped}


# --------------------------------------------------------------------------------------------------
# the fit


def _nnls(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    scale = np.maximum(np.abs(a).max(axis=0), 1e-12)
    coef, _ = nnls(a / scale, y.astype(np.float64))
    return coef / scale


@dataclass
class LatencyModel:
    """Per-group coefficients (one vector per bound) and the measurements' fit statistics."""

    coef: dict[str, dict[str, list[float]]]
    fit_error: dict[str, float] = field(default_factory=dict)  # group -> mean |rel. error| (point)
    meta: dict[str, Any] = field(default_factory=dict)

    def op_cycles(self, group: str, feats: np.ndarray) -> tuple[float, float, float]:
        """(optimistic, point, conservative) cycles of one op."""
        if group not in self.coef:
            raise WorkbenchError(f"the latency model has no fit for {group!r} ops; fitted groups: "
                                 f"{', '.join(sorted(self.coef))} (re-fit with `python -m core bench "
                                 "nas-latency --fit`)")
        c = self.coef[group]
        return tuple(float(np.dot(c[b], feats)) for b in BOUNDS)  # type: ignore[return-value]

    def layers(self, graph: Any, sparsity: dict[str, float] | None = None,
               block: dict[str, int] | None = None, storage: dict[str, str] | None = None,
               live: dict[str, float] | None = None) -> list[dict[str, Any]]:
        """Per-layer predicted cycles of `graph`: `sparsity[op]` = achieved fraction of zero weights,
        `storage[op]` = "sparse" | "dense" (default: sparse where sparsity > 0), `block[op]`,
        `live[op]` = fraction of output channels with a kept weight (default: expected)."""
        from core.tinyformer.schedule import schedule

        sparsity, block, storage, live = sparsity or {}, block or {}, storage or {}, live or {}
        rows = []
        sparse_layers = [k for k in sparsity if storage.get(k, "sparse" if sparsity[k] > 0 else "dense")
                         == "sparse"]
        sched = schedule(graph, sparse_layers)
        graph = sched.graph  # what the engine executes: attention chains fused, row-tiled
        for op in graph.ops:
            if op.kind in FREE:
                continue
            s = float(sparsity.get(op.name, 0.0))
            sp = storage.get(op.name, "sparse" if s > 0 else "dense") == "sparse" and op.kind in WEIGHTED
            group, feats = graph_op_features(op, graph, sp, 1.0 - s, int(block.get(op.name, 1)) if sp else 0,
                                             live.get(op.name))
            lo, mid, hi = self.op_cycles(group, feats)
            rows.append({"name": op.name, "kind": op.kind, "group": group, "macs": int(op.macs),
                         "replaces": list(sched.fused.get(op.name, ())),
                         "storage": "sparse" if sp else ("dense" if op.kind in WEIGHTED else "-"),
                         "sparsity": s, "cycles": mid, "cycles_optimistic": lo, "cycles_conservative": hi})
        return rows

    def predict(self, graph: Any, sparsity: dict[str, float] | None = None,
                block: dict[str, int] | None = None, storage: dict[str, str] | None = None,
                live: dict[str, float] | None = None) -> dict[str, float]:
        """Whole-model cycles (point and bounds) and milliseconds at 216 MHz."""
        rows = self.layers(graph, sparsity, block, storage, live)
        out = {k: float(sum(r[k] for r in rows)) for k in ("cycles", "cycles_optimistic",
                                                          "cycles_conservative")}
        out["ms"] = out["cycles"] / CLOCK_HZ * 1e3
        return out

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "coef": self.coef, "fit_error": self.fit_error, "meta": self.meta}

    def save(self, path: Path | str) -> Path:
        return write_json_atomic(Path(path), self.to_json())


def fit(rows: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> LatencyModel:
    """One non-negative least-squares fit per group and bound; fit error = mean |relative error|."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r)
    coef, err = {}, {}
    for g, rs in sorted(groups.items()):
        a = np.array([r["features"] for r in rs], np.float64)
        coef[g] = {}
        for j, b in enumerate(BOUNDS):
            y = np.array([r["cycles"][j] for r in rs], np.float64)
            coef[g][b] = [float(v) for v in _nnls(a, y)]
        y = np.array([r["cycles"][1] for r in rs], np.float64)
        pred = a @ np.array(coef[g]["point"])
        err[g] = float(np.mean(np.abs(pred - y) / y))
    return LatencyModel(coef, err, dict(meta or {}, points=len(rows)))


def load(path: Path | str | None = None) -> LatencyModel:
    """The fitted model (default `data/nas/latency_model.json`)."""
    from core.io import data_dir

    path = Path(path) if path is not None else data_dir() / "nas" / "latency_model.json"
    redo = "re-fit it with `python -m core bench nas-latency --fit`"
    if not path.is_file():
        raise WorkbenchError(f"latency model {str(path)!r} does not exist; {redo}")
    try:
        doc = json.loads(path.read_text())
        if doc.get("format") != FORMAT or not isinstance(doc.get("coef"), dict):
            raise ValueError(f"not format {FORMAT}")
        return LatencyModel(doc["coef"], doc.get("fit_error", {}), doc.get("meta", {}))
    except (OSError, ValueError, AttributeError) as exc:
        raise WorkbenchError(f"latency model {str(path)!r} is garbled ({brief(exc)}); {redo}") from exc


# --------------------------------------------------------------------------------------------------
# validation against whole-model emulation


def _validate_job(item: dict[str, Any], seed: int) -> dict[str, Any]:
    """Emulate one whole model (random int8 weights, block-pruned as the item says); per-layer cycles."""
    from core.engine import deploy, models

    arch, sparsity, block = item["arch"], item["sparsity"], item["block"]
    from core.tinyformer import sparse as codec

    qm = models.prune_int8(models.quantize_arch(arch, seed=seed), sparsity, block)
    formats = {}  # sparse where the encoding at the genome's block size is smaller than dense
    for q in qm.qops:
        if q.op.kind in WEIGHTED and q.weight is not None and q.op.name in block:
            w = np.asarray(q.weight)
            shape4 = w.shape if w.ndim == 4 else (w.shape[0], 1, 1, w.shape[1])
            if codec.storage_bytes(w.reshape(shape4), int(block[q.op.name]))[0] == "sparse":
                formats[q.op.name] = int(block[q.op.name])
    x = np.random.default_rng(seed).integers(-128, 128, (arch["resolution"], arch["resolution"], 3))
    with tempfile.TemporaryDirectory(prefix="latency-") as tmp:
        dep = deploy(qm, Path(tmp), x.astype(np.int8), sparse=formats, compare=False, count_flash=False)
    fmt, zeros, live = {}, {}, {}
    qops = {q.op.name: q for q in qm.qops}  # the deployment's layers follow the schedule (fused ops)
    for r in dep.layers:
        if r.storage == "sparse":
            k, lv = kept_and_live(qops[r.name].weight)
            fmt[r.name], zeros[r.name], live[r.name] = "sparse", 1.0 - k, lv
    return {"layers": [{"name": r.name, "cycles": int(r.cycles), "bounds": list(r.cycle_bounds)}
                       for r in dep.layers],
            "cycles": int(dep.cycles), "storage": fmt, "sparsity": zeros, "live": live,
            "instructions": int(dep.instructions)}


def validate(model: LatencyModel, items: list[dict[str, Any]], scheduler: Any = None, seed: int = 0,
             progress: Progress = no_progress) -> list[dict[str, Any]]:
    """Predicted vs emulated whole-model cycles for each {"name", "arch", "sparsity", "block"}."""
    from core.cluster import run_jobs
    from core.tinyformer.graph import graph_of

    out: list[dict[str, Any] | None] = [None] * len(items)
    for done, (i, em) in enumerate(run_jobs(_validate_job, items, scheduler, shared=seed), 1):
        item = items[i]
        g = graph_of(item["arch"])
        blocks = {k: v for k, v in item["block"].items() if k in em["storage"]}
        pred = model.predict(g, em["sparsity"], blocks, em["storage"], em["live"])
        out[i] = {"name": item["name"], "macs": int(g.macs), "sparse_layers": len(em["storage"]),
                  "emulated_cycles": em["cycles"], "predicted_cycles": pred["cycles"],
                  "predicted_optimistic": pred["cycles_optimistic"],
                  "predicted_conservative": pred["cycles_conservative"],
                  "error": pred["cycles"] / em["cycles"] - 1.0,
                  "emulated_ms": em["cycles"] / CLOCK_HZ * 1e3, "predicted_ms": pred["ms"]}
        progress(done, len(items), item["name"])
    return out  # type: ignore[return-value]


def validation_items(space: Any, n: int, seed: int = 0, flash_budget: int = 1024 * 1024,
                     sram_budget: int = 320 * 1024) -> list[dict[str, Any]]:
    """`n` seeded random genomes of `space` that fit the budgets: uniform path, random per-layer
    sparsity and block size, repaired as SparseNAS does to 90% of the flash budget (the analytic size
    is a lower bound of the encoded one, whose fillers depend on the weights)."""
    import random

    from core.tinyformer import cost
    from core.tinyformer.graph import graph_of
    from core.tinyformer.space import sample
    from core.tinyformer.sparsenas import SPARSITY_LEVELS, random_genes, repair

    rng = random.Random(seed)
    items: list[dict[str, Any]] = []
    while len(items) < n:
        arch = sample(space, rng)
        g = graph_of(arch)
        genes = random_genes(g, rng, SPARSITY_LEVELS)
        if cost.sram_bytes(g) > sram_budget or not repair(g, genes, int(0.9 * flash_budget), SPARSITY_LEVELS):
            continue
        items.append({"name": f"{space.name} #{len(items)}", "arch": arch, **genes})
    return items


def summary_error(rows: list[dict[str, Any]]) -> dict[str, float]:
    errs = np.abs([r["error"] for r in rows])
    return {"models": len(rows), "mean_abs_error": float(errs.mean()) if len(errs) else math.nan,
            "max_abs_error": float(errs.max()) if len(errs) else math.nan}
