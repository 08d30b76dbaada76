"""`python -m core bench engine`: the SparseEngine against real CMSIS-NN on the emulated Cortex-M7.

Every cycle figure is an estimate of `core.engine.cycles` (point, optimistic and conservative bounds)
from instructions counted on the same emulator; every output is compared with the integer reference.

- Kernels, per type × sparsity × block size, on the same block-pruned weights: the sparse kernel, the
  engine's dense kernel and CMSIS-NN's kernel (built from the user's checkout, `core.engine.cmsis`);
  speedups of the sparse kernel against both.
- Other ops (attention matmuls, softmax, LayerNorm): engine vs CMSIS-NN where CMSIS-NN has the op.
- The requantization floor: cycles per output of the sparse kernels' exact requantization
  (se_rq2_store) and of the general exact path, over 4096 accumulators.
- Whole models: a seeded architecture and the shipped NAS candidates, each on the engine (dense, and
  sparse: pruned or as searched) and as a CMSIS-NN deployment (CMSIS-NN where it has the op, the
  engine's kernels for LayerNorm, softmax, add, pooling), every layer checked bit-exact.

A missing or broken CMSIS-NN checkout, or an op whose CMSIS-NN semantics differ, is reported in one
sentence in its rows; every other row is still measured. Writes data/results/bench_engine.{md,json}.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import WorkbenchError
from core.io import Progress, no_progress

SPARSITIES = (0.5, 0.7, 0.9, 0.95)
#: kernel type -> (synth kind, shape kwargs, block sizes)
KERNELS: dict[str, tuple[str, dict[str, int], tuple[int, ...]]] = {
    "conv1x1 64ch 8x8": ("conv2d", {"k": 1, "cin": 64, "cout": 64, "h": 8, "w": 8}, (1, 4)),
    "conv1x1 128ch 8x8": ("conv2d", {"k": 1, "cin": 128, "cout": 128, "h": 8, "w": 8}, (4,)),
    "conv1x1 256ch 8x8": ("conv2d", {"k": 1, "cin": 256, "cout": 256, "h": 8, "w": 8}, (4,)),
    "fc 64 tokens 64->64": ("linear", {"n": 64, "cin": 64, "cout": 64}, (4,)),
    "fc 64 tokens 128->128": ("linear", {"n": 64, "cin": 128, "cout": 128}, (1, 4)),
    "conv3x3 32ch 8x8": ("conv2d", {"k": 3, "cin": 32, "cout": 32, "h": 8, "w": 8}, (4,)),
    "dwconv3x3 64ch 16x16": ("dwconv2d", {"k": 3, "cin": 64, "h": 16, "w": 16}, (3,)),
}
#: ops without a sparse variant: engine vs CMSIS-NN (synth kind, shape kwargs)
OPS: dict[str, tuple[str, dict[str, int]]] = {
    "attention QK^T 64 tokens d=32 1 head": ("matmul_qk", {"n": 64, "d": 32, "heads": 1}),
    "attention QK^T 64 tokens D=64 2 heads": ("matmul_qk", {"n": 64, "d": 64, "heads": 2}),
    "attention AV 64 tokens D=64 2 heads": ("matmul_av", {"n": 64, "heads": 2}),
    "softmax 2x64 rows of 64": ("softmax", {"n": 64, "heads": 2}),
    "layernorm 64 tokens 64": ("layernorm", {"n": 64, "d": 64}),
}
WHOLE_ARCH = {
    "resolution": 32,
    "classes": 10,
    "downsample": [{"kind": "conv_pool", "out": 16}],
    "mbv2": {"out": 24, "expand": [2, 3]},
    "vit": [{"dim": 48, "heads": 2, "mlp": 96, "layers": 2}],
    "last": 96,
    "pool": "attn",
}
REQUANT_OUTPUTS = 4096
#: a transformer-heavy synthetic model for the SRAM table: 256 tokens of D = 96 with 4 heads, whose
#: (heads, N, N) score map alone is 256 KiB
BIG_ARCH = {
    "resolution": 32,
    "classes": 10,
    "downsample": [{"kind": "conv_pool", "out": 16}],
    "mbv2": {"out": 32, "expand": [2]},
    "vit": [{"dim": 96, "heads": 4, "mlp": 192, "layers": 2}],
    "last": 128,
    "pool": "avg",
}
SRAM_BUDGET = 320 * 1024


@dataclass(frozen=True)
class BenchConfig:
    sparsities: tuple[float, ...] = SPARSITIES
    kernels: tuple[str, ...] = tuple(KERNELS)
    ops: tuple[str, ...] = tuple(OPS)
    whole_model: bool = True
    seed: int = 0
    #: CMSIS-NN checkout (None: $WORKBENCH_CMSIS_NN or ../shared/third_party/CMSIS-NN)
    cmsis_nn: str | None = None

    def __post_init__(self) -> None:
        from core.errors import unknown

        for s in self.sparsities:
            if not 0.0 < s < 1.0:
                raise WorkbenchError(f"sparsity {s} must be in (0, 1)")
        for k in self.kernels:
            if k not in KERNELS:
                raise unknown("benchmark kernel", k, KERNELS)
        for k in self.ops:
            if k not in OPS:
                raise unknown("benchmark op", k, OPS)


@dataclass
class _Measured:
    instructions: int
    cycles: tuple[int, int, int]  # optimistic, point, conservative
    mismatches: int
    emulated: tuple[int, float]  # (instructions, seconds) of the whole run


def _measure(model: Any, formats: dict, work: Path, backends: dict | None = None,
             lib: Any = None) -> _Measured:
    """Instructions, cycle bounds and mismatches vs the integer reference of the model's last op."""
    from core.engine import codegen, cycles, synth

    prog = codegen.generate(model, work, formats, backends=backends, cmsis_nn=lib)
    fw = codegen.build_program(prog, work)
    shape = model.graph.tensors[model.graph.input].shape
    x = np.random.default_rng(1).integers(-128, 128, size=shape).astype(np.int8)
    ex = codegen.execute(prog, fw, x)
    env = {model.graph.input: x}
    for i, q in enumerate(model.qops):
        env[q.op.output] = ex.layer_outputs[i]
    last = model.qops[-1]
    ins = [env[t].reshape(model.graph.tensors[t].shape) for t in last.op.inputs]
    ref = synth.reference_op(last, ins)
    bad = int(np.sum(ref.reshape(ex.output.shape) != ex.output))
    counts = ex.result.counts[len(model.qops) - 1]
    return _Measured(cycles.instructions(counts), cycles.bounds(counts), bad,
                     (ex.result.instructions, ex.result.seconds))


def _cmsis(cfg: BenchConfig) -> tuple[Any, str | None]:
    """(library, None) or (None, the one-sentence reason CMSIS-NN rows are missing)."""
    from core.engine import cmsis

    try:
        return cmsis.library(cfg.cmsis_nn), None
    except WorkbenchError as exc:
        return None, str(exc)


def _cmsis_measure(model: Any, work: Path, lib: Any, why: str | None) -> tuple[_Measured | None, str | None]:
    if lib is None:
        return None, why
    try:
        return _measure(model, {}, work, {"layer": "cmsis-nn"}, lib), None
    except WorkbenchError as exc:
        return None, f"CMSIS-NN kernel failed: {exc}"


def _cyc(prefix: str, m: _Measured | None) -> dict[str, Any]:
    if m is None:
        return {f"{prefix}_cycles": None}
    return {f"{prefix}_instructions": m.instructions, f"{prefix}_cycles": m.cycles[1],
            f"{prefix}_cycles_optimistic": m.cycles[0], f"{prefix}_cycles_conservative": m.cycles[2]}


def _ratio(a: _Measured | None, b: _Measured, at: int) -> float | None:
    return None if a is None else a.cycles[at] / b.cycles[at]


def kernel_rows(cfg: BenchConfig, work: Path, lib: Any, why: str | None,
                progress: Progress = no_progress) -> list[dict[str, Any]]:
    from core.engine import synth
    from core.engine.lowering import WeightFormat

    rows, total = [], sum(len(cfg.sparsities) * len(KERNELS[k][2]) for k in cfg.kernels)
    done = 0
    for name in cfg.kernels:
        kind, shape, blocks = KERNELS[name]
        macs = synth.single_op(kind, np.random.default_rng(cfg.seed), **shape).qops[-1].op.macs
        for b in blocks:
            for s in cfg.sparsities:
                m = synth.single_op(kind, np.random.default_rng(cfg.seed), sparsity=s, block=b, **shape)
                sp = _measure(m, {"layer": WeightFormat(True, b)}, work / "sparse")
                dn = _measure(m, {"layer": WeightFormat()}, work / "dense")
                cm, note = _cmsis_measure(m, work / "cmsis", lib, why)
                runs = [sp, dn] + ([cm] if cm else [])
                rows.append({
                    "kernel": name, "block": b, "sparsity": s, "macs": macs,
                    **_cyc("sparse", sp), **_cyc("dense", dn), **_cyc("cmsis_nn", cm),
                    "dense_cycles_per_mac": dn.cycles[1] / macs,
                    "cmsis_nn_cycles_per_mac": None if cm is None else cm.cycles[1] / macs,
                    "speedup_vs_dense": dn.cycles[1] / sp.cycles[1],
                    "speedup_vs_dense_optimistic": _ratio(dn, sp, 0),
                    "speedup_vs_dense_conservative": _ratio(dn, sp, 2),
                    "speedup_vs_cmsis_nn": _ratio(cm, sp, 1),
                    "speedup_vs_cmsis_nn_optimistic": _ratio(cm, sp, 0),
                    "speedup_vs_cmsis_nn_conservative": _ratio(cm, sp, 2),
                    "mismatches_sparse": sp.mismatches, "mismatches_dense": dn.mismatches,
                    "mismatches_cmsis_nn": None if cm is None else cm.mismatches,
                    "note": note or "",
                    "emulated_instructions": sum(r.emulated[0] for r in runs),
                    "emulated_seconds": sum(r.emulated[1] for r in runs),
                })
                done += 1
                progress(done, total, f"{name} b={b} s={s}")
    return rows


def op_rows(cfg: BenchConfig, work: Path, lib: Any, why: str | None,
            progress: Progress = no_progress) -> list[dict[str, Any]]:
    """Engine vs CMSIS-NN on ops without a sparse variant (CMSIS-NN's semantics noted where they differ)."""
    from core.engine import cmsis, synth

    rows = []
    for i, name in enumerate(cfg.ops):
        kind, shape = OPS[name]
        m = synth.single_op(kind, np.random.default_rng(cfg.seed), **shape)
        en = _measure(m, {}, work / "op")
        if kind in cmsis.CMSIS_OPS:
            cm, note = _cmsis_measure(m, work / "opc", lib, why)
            if kind == "softmax" and cm is not None:
                note = cmsis.SOFTMAX_NOTE
        else:
            cm, note = None, cmsis.SEMANTICS.get(kind, "CMSIS-NN has no matching kernel")
        runs = [en] + ([cm] if cm else [])
        rows.append({"op": name, "kind": kind, "macs": int(m.qops[-1].op.macs),
                     **_cyc("engine", en), **_cyc("cmsis_nn", cm),
                     "cmsis_nn_function": cmsis.CMSIS_OPS.get(kind, ""),
                     "speedup_vs_cmsis_nn": _ratio(cm, en, 1),
                     "mismatches_engine": en.mismatches,
                     "mismatches_cmsis_nn": None if cm is None else cm.mismatches, "note": note or "",
                     "emulated_instructions": sum(r.emulated[0] for r in runs),
                     "emulated_seconds": sum(r.emulated[1] for r in runs)})
        progress(i + 1, len(cfg.ops), name)
    return rows


REQUANT_MAIN = r"""
#include "se_common.h"
#define N %(n)d
__attribute__((section(".noinit"), aligned(4))) int32_t g_acc[N];
__attribute__((section(".noinit"))) int8_t g_out[N];
__attribute__((section(".noinit"))) int8_t g_ref[N];
int main(void) {
  se_rq2_t rq;
  se_mark(0); /* the sparse kernels' output-stationary requantization, from 2*acc */
  if (se_rq2_prepare(&rq, 1518500250, -9, 3, -128, 127)) {
    const se_rq2_t r = se_rq2_noclamp(rq);
    for (int32_t i = 0; i < N; i++) g_out[i] = se_rq2_store(g_acc[i] * 2, r);
  }
  se_mark(1); /* the general exact path (any accumulator and shift) */
  for (int32_t i = 0; i < N; i++) g_ref[i] = se_requant(g_acc[i], 1518500250, -9, 3, -128, 127);
  se_mark(2);
  return 0;
}
"""


def requant_floor(work: Path) -> dict[str, Any]:
    """Cycles per output of se_rq2_store and of the general exact requantization, checked vs qmath."""
    from core.engine import cycles, kernels, toolchain
    from core.engine.emulator import run
    from core.tinyformer import qmath

    work.mkdir(parents=True, exist_ok=True)
    files = kernels.emit([], work, fast_requant=True)
    main = work / "rq_floor.c"
    main.write_text(REQUANT_MAIN % {"n": REQUANT_OUTPUTS})
    fw = toolchain.build([main, *files], work)
    acc = np.random.default_rng(0).integers(-(2**29), 2**29, REQUANT_OUTPUTS).astype(np.int32)
    res = run(fw, {"g_acc": acc.tobytes()}, {"g_out": REQUANT_OUTPUTS, "g_ref": REQUANT_OUTPUTS})
    want = qmath.requantize(acc, 1518500250, -9, 3, -128, 127)
    out = {"outputs": REQUANT_OUTPUTS, "instructions_in_sequence": 5,
           "sequence": "ADD (acc ASR #31), SMMLAR, ASR, SSAT, STRB"}
    for layer, key, got in ((0, "tight", "g_out"), (1, "general", "g_ref")):
        b = cycles.bounds(res.counts[layer])
        out[f"{key}_cycles_per_output"] = b[1] / REQUANT_OUTPUTS
        out[f"{key}_cycles_per_output_optimistic"] = b[0] / REQUANT_OUTPUTS
        out[f"{key}_cycles_per_output_conservative"] = b[2] / REQUANT_OUTPUTS
        out[f"{key}_mismatches"] = int(np.sum(np.frombuffer(res.outputs[got], np.int8) != want))
    return out


def whole_rows(cfg: BenchConfig, work: Path, lib: Any, why: str | None,
               progress: Progress = no_progress) -> list[dict[str, Any]]:
    from core.engine import models
    from core.engine.pipeline import deploy
    from core.io import data_dir

    table = data_dir() / "nas" / "candidates.parquet"
    qm0 = models.quantize_arch(WHOLE_ARCH, seed=cfg.seed)
    qm90 = models.prune_int8(qm0, 0.9, 4)
    # (label, model, engine mode or "cmsis-nn", group: rows of one group compare with its CMSIS-NN row)
    variants = [
        ("seeded arch: CMSIS-NN deployment", qm0, "cmsis-nn", "seeded"),
        ("seeded arch: engine dense", qm0, "dense", "seeded"),
        ("seeded arch 90% b4: CMSIS-NN deployment", qm90, "cmsis-nn", "seeded90"),
        ("seeded arch 90% b4: engine sparse", qm90, "auto", "seeded90"),
    ]
    if table.is_file():
        for cid in (0, 1):
            try:
                qm, _row = models.candidate(cid)
            except WorkbenchError:
                continue
            variants += [
                (f"candidate {cid}: CMSIS-NN deployment", qm, "cmsis-nn", f"c{cid}"),
                (f"candidate {cid}: engine dense", qm, "dense", f"c{cid}"),
                (f"candidate {cid}: engine as searched", qm, "auto", f"c{cid}"),
            ]
    out: list[dict[str, Any]] = []
    base: dict[str, dict[str, Any]] = {}
    for i, (label, qm, mode, group) in enumerate(variants):
        shape = qm.graph.tensors[qm.graph.input].shape
        x = np.random.default_rng(cfg.seed).integers(-128, 128, size=shape).astype(np.int8)
        row: dict[str, Any] = {"model": label, "group": group}
        try:
            if mode == "cmsis-nn":
                if lib is None:
                    raise WorkbenchError(why or "CMSIS-NN is not available")
                dep = deploy(qm, work / f"whole{i}", x, "dense", backend="cmsis-nn", cmsis_nn=lib)
            else:
                dep = deploy(qm, work / f"whole{i}", x, mode)
        except WorkbenchError as exc:
            out.append(row | {"error": str(exc)})
            progress(i + 1, len(variants), label)
            continue
        row |= dep.summary()
        if mode == "cmsis-nn":
            base[group] = row
        elif mode == "dense":
            base[group + ":dense"] = row
        ref = base.get(group)
        dense = base.get(group + ":dense")
        for tag, r in (("cmsis_nn", ref), ("dense", dense)):
            if r is not None and r is not row:
                row[f"speedup_vs_{tag}"] = r["cycles"] / row["cycles"]
                row[f"speedup_vs_{tag}_optimistic"] = r["cycles_optimistic"] / row["cycles_optimistic"]
                row[f"speedup_vs_{tag}_conservative"] = r["cycles_conservative"] / row["cycles_conservative"]
        out.append(row)
        progress(i + 1, len(variants), label)
    return out


def memory_rows(cfg: BenchConfig, work: Path, progress: Progress = no_progress) -> list[dict[str, Any]]:
    """SRAM of the full (three-op, score map stored) and the row-tiled attention schedule for the
    shipped candidates (storage as the engine picks it), the whole-model arch and `BIG_ARCH`; for the
    tiled one also the arena the zig ELF links (the `se_arena` symbol) against the plan."""
    from core.engine import codegen, models, toolchain
    from core.io import data_dir
    from core.tinyformer.schedule import schedule

    variants: list[tuple[str, Any]] = [
        ("seeded arch", models.quantize_arch(WHOLE_ARCH, seed=cfg.seed)),
        ("big synthetic transformer", models.quantize_arch(BIG_ARCH, seed=cfg.seed))]
    if (data_dir() / "nas" / "candidates.parquet").is_file():
        for cid in (0, 1):
            try:
                variants.insert(cid, (f"candidate {cid}", models.candidate(cid)[0]))
            except WorkbenchError:
                continue
    out = []
    for i, (label, qm) in enumerate(variants):
        formats = codegen.choose_formats(qm, "auto")
        sparse = [n for n, f in formats.items() if f.sparse]
        full, tiled = schedule(qm.graph, sparse, "full"), schedule(qm.graph, sparse, "tiled")
        maps = [qm.graph.tensors[op.output].numel for op in qm.graph.ops if op.kind == "matmul_qk"]
        row = {"model": label, "attention_layers": len(maps), "score_map_bytes": max(maps, default=0),
               "sram_full": full.arena_bytes, "sram_full_peak": full.peak_bytes,
               "sram_tiled": tiled.arena_bytes, "sram_tiled_peak": tiled.peak_bytes,
               "fits_full": full.arena_bytes <= SRAM_BUDGET, "fits_tiled": tiled.arena_bytes <= SRAM_BUDGET}
        try:
            d = work / f"mem{i}"
            prog = codegen.generate(qm, d, formats, toolchain.Target(sram_bytes=4 * SRAM_BUDGET))
            row["linked_arena"] = int(toolchain.build(prog.sources, d).symbols["se_arena"][1])
        except WorkbenchError as exc:
            row["linked_arena"], row["error"] = None, str(exc)
        out.append(row)
        progress(i + 1, len(variants), f"SRAM: {label}")
    return out


def memory_markdown(rows: list[dict[str, Any]]) -> str:
    from core.io import markdown_table

    def kb(v: int | None) -> str:
        return "n/a" if v is None else f"{v / 1024:.1f}"

    def pct(a: int | None, b: int) -> str:
        return "n/a" if a is None else f"{100 * (a / b - 1):+.1f}%"

    cells = [[r["model"], r["attention_layers"], kb(r["score_map_bytes"]), kb(r["sram_full"]),
              kb(r["sram_tiled"]), f"{r['sram_full'] / r['sram_tiled']:.2f}x", kb(r["linked_arena"]),
              pct(r["linked_arena"], r["sram_tiled"]),
              pct(r["sram_tiled"], r["sram_tiled_peak"]),
              f"{'yes' if r['fits_full'] else 'no'} / {'yes' if r['fits_tiled'] else 'no'}"] for r in rows]
    return markdown_table(
        ["model", "attention layers", "largest score map KiB", "SRAM full KiB", "SRAM row-tiled KiB",
         "saving", "linked arena KiB", "linked vs plan", "plan vs live peak", "fits 320 KiB (full / tiled)"],
        cells)


def run(cfg: BenchConfig, progress: Progress = no_progress) -> dict[str, Any]:
    lib, why = _cmsis(cfg)
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        work = Path(tmp)
        kernels = kernel_rows(cfg, work, lib, why, progress)
        ops = op_rows(cfg, work, lib, why, progress)
        floor = requant_floor(work / "rq")
        whole = whole_rows(cfg, work, lib, why, progress) if cfg.whole_model else []
        memory = memory_rows(cfg, work, progress) if cfg.whole_model else []
    # throughput = all emulated instructions / all emulation seconds (hook time included)
    timed = [r for r in whole if r.get("emulator_instructions_per_s")]
    n = sum(r["emulated_instructions"] for r in kernels + ops) + sum(r["instructions"] for r in timed)
    sec = sum(r["emulated_seconds"] for r in kernels + ops)
    sec += sum(r["instructions"] / r["emulator_instructions_per_s"] for r in timed)
    return {"cmsis_nn": {"root": str(lib.root) if lib else None, "version": lib.version if lib else None,
                         "error": why},
            "kernels": kernels, "ops": ops, "requant_floor": floor, "whole": whole, "memory": memory,
            "emulator_instructions": n, "emulator_seconds": sec, "emulator_ips": n / sec if sec else 0.0}


def _fmt_cycles(r: dict[str, Any], prefix: str) -> str:
    if r.get(f"{prefix}_cycles") is None:
        return "n/a"
    return (f"{r[f'{prefix}_cycles']} [{r[f'{prefix}_cycles_optimistic']}–"
            f"{r[f'{prefix}_cycles_conservative']}]")


def _fmt_speed(r: dict[str, Any], key: str) -> str:
    if r.get(key) is None:
        return "n/a"
    return f"{r[key]:.2f}x [{r[key + '_optimistic']:.2f}–{r[key + '_conservative']:.2f}]"


def targets(res: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for the issue's targets."""
    ks = res["kernels"]
    wide = [r for r in ks if r["kernel"].startswith(("conv1x1", "fc")) and r["block"] == 4]
    out = []
    at95 = [r for r in wide if r["sparsity"] == 0.95]
    if at95:
        sc = [r["speedup_vs_cmsis_nn"] for r in at95 if r["speedup_vs_cmsis_nn"] is not None]
        if sc:
            out.append(("sparse >= 12.2x vs CMSIS-NN at 95% (conv1x1/FC >= 64 ch, b=4)",
                        f"{min(sc):.1f}x-{max(sc):.1f}x", min(sc) >= 12.2))
        sd = [r["speedup_vs_dense"] for r in at95]
        out.append(("sparse >= 10x vs engine dense at 95% (conv1x1/FC >= 64 ch, b=4)",
                    f"{min(sd):.1f}x-{max(sd):.1f}x", min(sd) >= 10))
    at70 = [r["speedup_vs_dense"] for r in wide if r["sparsity"] == 0.7]
    if at70:
        out.append(("sparse >= 2x vs engine dense at 70%", f"{min(at70):.2f}x-{max(at70):.2f}x",
                    min(at70) >= 2))
    bit = all(r["mismatches_sparse"] == 0 and r["mismatches_dense"] == 0
              and r["mismatches_cmsis_nn"] in (0, None) for r in ks)
    out.append(("kernels bit-exact vs the integer reference (sparse, dense, CMSIS-NN)", str(bit), bit))
    best = [r for r in res["whole"] if r.get("speedup_vs_cmsis_nn")
            and ("sparse" in r["model"] or "as searched" in r["model"])]
    if best:
        top = max(best, key=lambda r: r["speedup_vs_cmsis_nn"])
        out.append(("whole model, sparse engine vs CMSIS-NN deployment >= 3x",
                    f"{top['speedup_vs_cmsis_nn']:.2f}x ({top['model']})", top["speedup_vs_cmsis_nn"] >= 3))
    ips = res["emulator_ips"]
    out.append(("emulator >= 5 M instr/s", f"{ips / 1e6:.1f} M", ips >= 5e6))
    return out


def _na(v: Any) -> str:
    return "n/a" if v is None else str(v)


def _whole_cells(r: dict[str, Any]) -> list[Any]:
    if "cycles" not in r:
        return [r["model"], "", r["error"], *[""] * 9]
    return [r["model"], r["macs"], f"{r['cycles']} [{r['cycles_optimistic']}–{r['cycles_conservative']}]",
            f"{r['cycles_per_mac']:.3f}", f"{r['milliseconds_at_216MHz']:.1f}",
            _fmt_speed(r, "speedup_vs_cmsis_nn"), _fmt_speed(r, "speedup_vs_dense"), r["cmsis_nn_layers"],
            r["sparse_layers"], r["flash_bytes"], r["sram_bytes"], r["bit_exact"]]


KERNEL_COLUMNS = ["kernel", "b", "sparsity", "MACs", "CMSIS-NN cyc [opt–cons]", "CMSIS-NN cyc/MAC",
                  "dense cyc [opt–cons]", "dense cyc/MAC", "sparse cyc [opt–cons]", "speedup vs CMSIS-NN",
                  "speedup vs dense", "mismatches s/d/c"]


def markdown(res: dict[str, Any]) -> str:
    from core.io import markdown_table

    def mm(r: dict[str, Any]) -> str:
        c = r["mismatches_cmsis_nn"]
        return f"{r['mismatches_sparse']}/{r['mismatches_dense']}/{'n/a' if c is None else c}"

    k = markdown_table(KERNEL_COLUMNS, [[
        r["kernel"], r["block"], r["sparsity"], r["macs"], _fmt_cycles(r, "cmsis_nn"),
        "n/a" if r["cmsis_nn_cycles_per_mac"] is None else f"{r['cmsis_nn_cycles_per_mac']:.3f}",
        _fmt_cycles(r, "dense"), f"{r['dense_cycles_per_mac']:.3f}", _fmt_cycles(r, "sparse"),
        _fmt_speed(r, "speedup_vs_cmsis_nn"), _fmt_speed(r, "speedup_vs_dense"), mm(r)]
        for r in res["kernels"]])
    o = markdown_table(
        ["op", "CMSIS-NN function", "engine cyc [opt–cons]", "CMSIS-NN cyc [opt–cons]", "engine vs CMSIS-NN",
         "mismatches engine/CMSIS-NN", "note"],
        [[r["op"], r["cmsis_nn_function"] or "none", _fmt_cycles(r, "engine"), _fmt_cycles(r, "cmsis_nn"),
          "n/a" if r["speedup_vs_cmsis_nn"] is None else f"{r['speedup_vs_cmsis_nn']:.2f}x",
          f"{r['mismatches_engine']}/{_na(r['mismatches_cmsis_nn'])}",
          r["note"]] for r in res["ops"]])
    w = markdown_table(
        ["model", "MACs", "est. cycles [opt–cons]", "cyc/MAC", "ms @216MHz", "vs CMSIS-NN deployment",
         "vs engine dense", "CMSIS-NN layers", "sparse layers", "flash", "SRAM", "bit-exact"],
        [_whole_cells(r) for r in res["whole"]])
    t = markdown_table(["target", "measured", "met"], [list(row) for row in targets(res)])
    f = res["requant_floor"]
    c = res["cmsis_nn"]
    src = (f"CMSIS-NN: {c['root']} ({c['version']}), built with the project's zig cc for the Cortex-M7 "
           "(ARM_MATH_DSP; memcpy/memset as builtins)." if c["root"]
           else f"CMSIS-NN rows missing: {c['error']}")
    return (
        "# SparseEngine benchmark (emulated Cortex-M7, estimated cycles)\n\n"
        "Cycles are estimates of core/engine/cycles.py from emulated instruction counts: point estimate "
        "[optimistic (dual issue, predicted branches, weights in cache) – conservative (load-use stalls, "
        "mispredicted taken branches, 7 flash wait states per 32-byte line of weights)]. "
        "Speedups are point [optimistic/optimistic – conservative/conservative]. "
        f"{src}\n\n## Targets\n\n{t}\n\n"
        "## Kernels: sparse vs engine dense vs CMSIS-NN on the same pruned weights\n\n"
        f"{k}\n\n## Other ops: engine vs CMSIS-NN\n\n{o}\n\n"
        "## Requantization floor (exact, TFLite MultiplyByQuantizedMultiplier)\n\n"
        f"Sparse kernels' output-stationary requantization: {f['instructions_in_sequence']} instructions per "
        f"output ({f['sequence']}); in a loop over {f['outputs']} accumulators (load and loop included) "
        f"{f['tight_cycles_per_output']:.2f} cycles/output [{f['tight_cycles_per_output_optimistic']:.2f}–"
        f"{f['tight_cycles_per_output_conservative']:.2f}], vs the general exact path "
        f"{f['general_cycles_per_output']:.2f} [{f['general_cycles_per_output_optimistic']:.2f}–"
        f"{f['general_cycles_per_output_conservative']:.2f}]; mismatches vs qmath.requantize: "
        f"{f['tight_mismatches']} / {f['general_mismatches']}.\n\n"
        "## Whole models (every layer compared with the integer reference)\n\n"
        f"{w}\n\n{_memory_section(res.get('memory') or [])}"
        f"Emulator throughput: {res['emulator_ips'] / 1e6:.2f} M instructions/s "
        f"({res['emulator_instructions']} instructions in {res['emulator_seconds']:.1f} s, hooks included)\n")


MEMORY_INTRO = (
    "## SRAM: attention over the whole score map vs row-tiled (core/tinyformer/schedule.py)\n\n"
    "Activation arena of the schedule the planner and the engine share (kernel scratch included; "
    "weights stored as the engine picks them). Full: matmul_qk -> softmax -> matmul_av with the "
    "(heads, N, N) map in SRAM; row-tiled: one attention kernel per chain, two query rows at a time. "
    "Linked arena: size of the `se_arena` symbol in the zig ELF of the row-tiled program.\n\n")


def _memory_section(rows: list[dict[str, Any]]) -> str:
    return f"{MEMORY_INTRO}{memory_markdown(rows)}\n\n" if rows else ""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engine", help="SparseEngine kernels and whole models vs real CMSIS-NN")
    p.add_argument("--no-whole", action="store_true", help="skip the whole-model rows")
    p.add_argument("--quick", action="store_true", help="one kernel, sparsities 0.7 and 0.95, one op")
    p.add_argument("--memory", action="store_true",
                   help="only the SRAM table (full vs row-tiled attention, linked arena vs plan)")
    p.add_argument("--cmsis-nn", metavar="DIR", default=None,
                   help="CMSIS-NN checkout (git clone https://github.com/ARM-software/CMSIS-NN); default "
                        "$WORKBENCH_CMSIS_NN, else ../shared/third_party/CMSIS-NN next to the repository")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from core.io import tqdm_progress, write_result

    cmsis_dir = getattr(args, "cmsis_nn", None)
    cfg = BenchConfig(whole_model=not args.no_whole, cmsis_nn=cmsis_dir)
    if args.quick:
        cfg = BenchConfig(sparsities=(0.7, 0.95), kernels=("conv1x1 64ch 8x8",),
                          ops=("softmax 2x64 rows of 64",), whole_model=False, cmsis_nn=cmsis_dir)
    if getattr(args, "memory", False):
        with tqdm_progress("bench engine --memory") as progress, \
                tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
            rows = memory_rows(cfg, Path(tmp), progress)
        md = "# SparseEngine SRAM by schedule\n\n" + _memory_section(rows)
        write_result("bench_engine_memory", md, {"memory": rows}, cfg)
        print(md)
        return 0
    with tqdm_progress("bench engine") as progress:
        res = run(cfg, progress)
    md = markdown(res)
    # the quick subset never overwrites the full committed table
    write_result("bench_engine_quick" if args.quick else "bench_engine", md, res, cfg)
    print(md)
    return 0
