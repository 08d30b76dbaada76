"""`python -m core bench engine`: dense vs sparse int8 kernels and whole models on the emulated M7.

Per kernel type × sparsity × block size: emulated instructions and estimated cycles (core.engine.cycles)
of the dense kernel and of the sparse kernel on the same block-pruned weights (outputs checked equal
to the integer reference), the speedup, and dense cycles/MAC next to the 2 MAC/cycle SMLAD limit
(0.5 cycles/MAC) and CMSIS-NN's ≈4 cycles/MAC (so the sparse kernel's speedup is given against
both our dense kernel and a CMSIS-NN-like 4·MACs estimate). Whole models: a seeded TinyFormer
architecture (and the shipped NAS candidates when data/nas/candidates.parquet exists) dense vs
sparse. Emulator throughput is measured on every run. Writes data/results/bench_engine.{md,json}.
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
#: CMSIS-NN's whole-network cost on a Cortex-M7 class core (TinyEngine paper, ANCHORS.md)
CMSIS_CYCLES_PER_MAC = 4.0
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
WHOLE_ARCH = {
    "resolution": 32,
    "classes": 10,
    "downsample": [{"kind": "conv_pool", "out": 16}],
    "mbv2": {"out": 24, "expand": [2, 3]},
    "vit": [{"dim": 48, "heads": 2, "mlp": 96, "layers": 2}],
    "last": 96,
    "pool": "attn",
}


@dataclass(frozen=True)
class BenchConfig:
    sparsities: tuple[float, ...] = SPARSITIES
    kernels: tuple[str, ...] = tuple(KERNELS)
    whole_model: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        for s in self.sparsities:
            if not 0.0 < s < 1.0:
                raise WorkbenchError(f"sparsity {s} must be in (0, 1)")
        for k in self.kernels:
            if k not in KERNELS:
                from core.errors import unknown

                raise unknown("benchmark kernel", k, KERNELS)


def _measure(model: Any, formats: dict, work: Path) -> tuple[int, int, float, int]:
    """(instructions, cycles, emulator instr/s, mismatches vs reference) of the model's last op."""
    from core.engine import codegen, cycles, synth, toolchain

    prog = codegen.generate(model, work, formats)
    fw = toolchain.build(prog.sources, work)
    shape = model.graph.tensors[model.graph.input].shape
    x = np.random.default_rng(1).integers(-128, 128, size=shape).astype(np.int8)
    ex = codegen.execute(prog, fw, x)
    ref = synth.reference_op(model.qops[-1], [x])
    bad = int(np.sum(ref.reshape(ex.output.shape) != ex.output))
    counts = ex.result.counts[len(model.qops) - 1]
    run = (ex.result.instructions, ex.result.seconds)  # the whole emulated run, for the throughput
    return cycles.instructions(counts), cycles.estimate_cycles(counts), run, bad


def kernel_rows(cfg: BenchConfig, work: Path, progress: Progress = no_progress) -> list[dict[str, Any]]:
    from core.engine import synth
    from core.engine.lowering import WeightFormat

    rows, total = [], sum(len(cfg.sparsities) * len(KERNELS[k][2]) for k in cfg.kernels)
    done = 0
    for name in cfg.kernels:
        kind, shape, blocks = KERNELS[name]
        dense = synth.single_op(kind, np.random.default_rng(cfg.seed), **shape)
        macs = dense.qops[-1].op.macs
        d_ins, d_cyc, run1, bad = _measure(dense, {"layer": WeightFormat()}, work / "dense")
        for b in blocks:
            for s in cfg.sparsities:
                m = synth.single_op(kind, np.random.default_rng(cfg.seed), sparsity=s, block=b, **shape)
                s_ins, s_cyc, run2, bad2 = _measure(m, {"layer": WeightFormat(True, b)}, work / "sparse")
                dd_ins, dd_cyc, run3, bad3 = _measure(m, {"layer": WeightFormat()}, work / "dense2")
                rows.append(
                    {
                        "kernel": name,
                        "block": b,
                        "sparsity": s,
                        "macs": macs,
                        "dense_instructions": dd_ins,
                        "dense_cycles": dd_cyc,
                        "dense_cycles_per_mac": dd_cyc / macs,
                        "sparse_instructions": s_ins,
                        "speedup_vs_cmsis_nn": CMSIS_CYCLES_PER_MAC * macs / s_cyc,
                        "sparse_cycles": s_cyc,
                        "speedup": dd_cyc / s_cyc,
                        "mismatches": bad + bad2 + bad3,
                        "emulated_instructions": run2[0] + run3[0],
                        "emulated_seconds": run2[1] + run3[1],
                    }
                )
                done += 1
                progress(done, total, f"{name} b={b} s={s}")
    return rows


def whole_rows(cfg: BenchConfig, work: Path, progress: Progress = no_progress) -> list[dict[str, Any]]:
    from core.engine import models
    from core.engine.pipeline import deploy
    from core.io import data_dir

    table = data_dir() / "nas" / "candidates.parquet"
    out = []
    qm0 = models.quantize_arch(WHOLE_ARCH, seed=cfg.seed)
    variants = [
        ("seeded arch dense", qm0, "dense"),
        ("seeded arch sparse 90% b4", models.prune_int8(qm0, 0.9, 4), "auto"),
    ]
    if table.is_file():
        for cid in (0, 1):
            try:
                qm, row = models.candidate(cid)
            except WorkbenchError:
                continue
            variants += [
                (f"candidate {cid} dense", qm, "dense"),
                (f"candidate {cid} as searched", qm, "auto"),
            ]
    for i, (label, qm, mode) in enumerate(variants):
        shape = qm.graph.tensors[qm.graph.input].shape
        x = np.random.default_rng(cfg.seed).integers(-128, 128, size=shape).astype(np.int8)
        try:
            dep = deploy(qm, work / f"whole{i}", x, mode)
        except WorkbenchError as exc:
            out.append({"model": label, "error": str(exc)})
            continue
        out.append({"model": label, **dep.summary()})
        progress(i + 1, len(variants), label)
    return out


def run(cfg: BenchConfig, progress: Progress = no_progress) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp:
        work = Path(tmp)
        kernels = kernel_rows(cfg, work, progress)
        whole = whole_rows(cfg, work, progress) if cfg.whole_model else []
    # throughput = all emulated instructions / all emulation seconds (hook time included)
    timed = [r for r in whole if r.get("emulator_instructions_per_s")]
    n = sum(r["emulated_instructions"] for r in kernels) + sum(r["instructions"] for r in timed)
    sec = sum(r["emulated_seconds"] for r in kernels)
    sec += sum(r["instructions"] / r["emulator_instructions_per_s"] for r in timed)
    return {"kernels": kernels, "whole": whole, "emulator_instructions": n, "emulator_seconds": sec,
            "emulator_ips": n / sec if sec else 0.0}


KERNEL_COLUMNS = [("kernel", "kernel"), ("b", "block"), ("sparsity", "sparsity"), ("MACs", "macs"),
                  ("dense cyc", "dense_cycles"), ("dense cyc/MAC", "dense_cycles_per_mac"),
                  ("sparse cyc", "sparse_cycles"), ("speedup", "speedup"),
                  ("speedup vs 4 cyc/MAC", "speedup_vs_cmsis_nn"), ("mismatches", "mismatches")]
WHOLE_COLUMNS = [("model", "model"), ("MACs", "macs"), ("est. cycles", "cycles"),
                 ("cyc/MAC", "cycles_per_mac"), ("ms @216MHz", "milliseconds_at_216MHz"),
                 ("flash", "flash_bytes"), ("SRAM", "sram_bytes"), ("bit-exact", "bit_exact"),
                 ("emulator instr/s", "emulator_instructions_per_s")]


def targets(res: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for the brief's targets."""
    ks = res["kernels"]
    wide = [r for r in ks if r["kernel"].startswith(("conv1x1", "fc")) and r["block"] == 4]
    at = {s: [r["speedup"] for r in wide if r["sparsity"] == s] for s in (0.7, 0.95)}
    dense11 = [r["dense_cycles_per_mac"] for r in ks if r["kernel"].startswith("conv1x1")]
    whole = [r["cycles_per_mac"] for r in res["whole"] if "dense" in r["model"] and "cycles_per_mac" in r]
    out = []
    if at[0.95]:
        span = f"{min(at[0.95]):.1f}x-{max(at[0.95]):.1f}x"
        out.append(("sparse >= 10x at 95% (conv1x1/FC >= 64 ch, b=4)", span, min(at[0.95]) >= 10))
    if at[0.7]:
        out.append(("sparse >= 2x at 70%", f"{min(at[0.7]):.2f}x-{max(at[0.7]):.2f}x", min(at[0.7]) >= 2))
    if dense11:
        span = f"{min(dense11):.2f}-{max(dense11):.2f}"
        out.append(("dense conv1x1 <= 2 cyc/MAC", span, max(dense11) <= 2))
    if whole:
        out.append(("whole dense model <= 4 cyc/MAC", f"{max(whole):.2f}", max(whole) <= 4))
    ips = res["emulator_ips"]
    out.append(("emulator >= 5 M instr/s", f"{ips / 1e6:.1f} M", ips >= 5e6))
    return out


def markdown(res: dict[str, Any]) -> str:
    from core.io import markdown_table

    k = markdown_table([h for h, _ in KERNEL_COLUMNS],
                       [[r[c] for _, c in KERNEL_COLUMNS] for r in res["kernels"]])
    w = markdown_table([h for h, _ in WHOLE_COLUMNS],
                       [[r.get(c, r.get("error", "")) for _, c in WHOLE_COLUMNS] for r in res["whole"]])
    t = markdown_table(["target", "measured", "met"], [list(row) for row in targets(res)])
    return ("# SparseEngine benchmark (emulated Cortex-M7, estimated cycles)\n\n"
            "Reference points: SMLAD limit 0.5 cycles/MAC (2 MAC/cycle); CMSIS-NN ≈ 4 cycles/MAC "
            "(TinyEngine paper, STM32H743).\n\n## Targets\n\n"
            f"{t}\n\n## Kernels: dense vs sparse on the same pruned weights\n\n"
            f"{k}\n\n## Whole models\n\n{w}\n\nEmulator throughput: "
            f"{res['emulator_ips'] / 1e6:.2f} M instructions/s ({res['emulator_instructions']} instructions "
            f"in {res['emulator_seconds']:.1f} s, hooks included)\n")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("engine", help="SparseEngine kernels dense vs sparse, whole models, emulator speed")
    p.add_argument("--no-whole", action="store_true", help="skip the whole-model rows")
    p.add_argument("--quick", action="store_true", help="one kernel, sparsities 0.7 and 0.95")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from core.io import tqdm_progress, write_result

    cfg = BenchConfig(whole_model=not args.no_whole)
    if args.quick:
        cfg = BenchConfig(sparsities=(0.7, 0.95), kernels=("conv1x1 64ch 8x8",), whole_model=False)
    with tqdm_progress("bench engine") as progress:
        res = run(cfg, progress)
    md = markdown(res)
    write_result("bench_engine", md, res, cfg)
    print(md)
    return 0
