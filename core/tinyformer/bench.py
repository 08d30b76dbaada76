"""`python -m core bench nas`: NAS cost-model speed, search time, float vs int8 accuracy.

Rows:
1. analytic evaluations/s: `graph_of` + analytic flash (`sparsenas.analytic_flash`) + peak SRAM
   (`memory.plan`) of random genomes (path + per-layer sparsity/blocks) of the SuperNAS space
   (target ≥ 1000/s);
2. exact evaluations/s: the same plus extraction of the subnet from the supernet, block-magnitude
   masks and `sparse.encoded_size` of every layer (needs `data/nas/supernet.pt`);
3. full SparseNAS search time at the default budget on the offline dataset: with `--search` it runs
   `python -m core nas sparsenas` defaults into a temporary folder and times it; without, it reports
   the time recorded in `data/nas/manifest.json` by the run that made the shipped table, labelled so;
4. best candidate (id 0 of `data/nas/candidates.parquet`, its fine-tuned weights): float and int8
   (integer reference via core.tinyformer.quant) top-1 on the same `--int8-images` test images.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from core.io import data_dir, markdown_table, write_result


def register(bench_subparsers: Any) -> None:
    """Add `nas` to `python -m core bench`."""
    p = bench_subparsers.add_parser("nas", help="NAS cost-model evaluations/s, search time, float vs int8")
    p.add_argument("--evals", type=int, default=2000, help="analytic evaluations timed")
    p.add_argument("--exact-evals", type=int, default=20, help="exact (pruned supernet weights) evaluations")
    p.add_argument("--int8-images", type=int, default=200, help="test images for float vs int8")
    p.add_argument("--search", action="store_true", help="run and time the full default search (minutes)")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=func)


def time_analytic(space: Any, n: int, seed: int = 0) -> dict[str, Any]:
    """Analytic flash + SRAM evaluations per second of n given random genomes of `space`.

    A genome (path + per-layer sparsity/block genes) is drawn before the clock starts; an evaluation
    is `graph_of` + `analytic_flash` + `sram_bytes`. Wall and process-CPU rates are both reported:
    on a shared machine the CPU rate is the one that does not depend on the neighbours.
    """
    from core.tinyformer.cost import sram_bytes
    from core.tinyformer.graph import graph_of
    from core.tinyformer.space import sample
    from core.tinyformer.sparsenas import SPARSITY_LEVELS, analytic_flash, random_genes

    rng = random.Random(seed)
    genomes = []
    for _ in range(n):
        arch = sample(space, rng)
        genomes.append((arch, random_genes(graph_of(arch), rng, SPARSITY_LEVELS)))
    start, cpu = time.perf_counter(), time.process_time()
    for arch, genes in genomes:
        g = graph_of(arch)
        analytic_flash(g, genes)
        sram_bytes(g)
    sec, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "what": "analytic flash+SRAM evaluations",
        "n": n,
        "seconds": sec,
        "per_second": n / sec,
        "cpu_seconds": cpu,
        "per_cpu_second": n / cpu,
    }


def time_exact(checkpoint: Path, n: int, seed: int = 0) -> dict[str, Any]:
    """Exact (masks on supernet weights + encoded sizes) evaluations per second."""
    from core.tinyformer.graph import graph_of
    from core.tinyformer.space import sample
    from core.tinyformer.sparsenas import SPARSITY_LEVELS, Evaluator, SearchConfig, random_genes
    from core.tinyformer.supernet import load_checkpoint

    sup, space, _ = load_checkpoint(checkpoint)
    ev = Evaluator(sup, SearchConfig(), None, None, None)
    rng = random.Random(seed)
    genomes = []
    for _ in range(n):
        arch = sample(space, rng)
        genomes.append({"arch": arch, **random_genes(graph_of(arch), rng, SPARSITY_LEVELS)})
    start, cpu = time.perf_counter(), time.process_time()
    for genome in genomes:
        ev.cost(genome)
    sec, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "what": "exact flash (pruned supernet weights, encoded sizes) + SRAM",
        "n": n,
        "seconds": sec,
        "per_second": n / sec,
        "cpu_seconds": cpu,
        "per_cpu_second": n / cpu,
    }


def search_time(run: bool, threads: int) -> dict[str, Any]:
    """Seconds of the default SparseNAS search: measured now (`run`) or as recorded in the manifest."""
    folder = data_dir() / "nas"
    if run:
        from core.tinyformer.cli import main as nas_main

        with tempfile.TemporaryDirectory() as tmp:
            for name in ("supernet.pt", "supernas.json"):
                (Path(tmp) / name).write_bytes((folder / name).read_bytes())
            start = time.perf_counter()
            nas_main(["sparsenas", "--out", tmp, "--threads", str(threads)])
            return {
                "what": "SparseNAS search, default settings (measured now)",
                "seconds": time.perf_counter() - start,
            }
    manifest = json.loads((folder / "manifest.json").read_text())
    entry = manifest["artefacts"]["candidates.parquet"]
    return {
        "what": f"SparseNAS search (recorded by `{entry['command']}`)",
        "seconds": entry["summary"]["seconds"],
    }


def float_vs_int8(n: int) -> dict[str, Any]:
    """Float and int8 top-1 of candidate 0 (fine-tuned) on the first n test images."""
    from core.tinyformer.candidates import load_candidate, load_finetuned
    from core.tinyformer.quant import evaluate_int8, quantize
    from core.tinyformer.supernet import load_images

    folder = data_dir() / "nas"
    row = load_candidate(folder / "candidates.parquet", 0)
    model, entry = load_finetuned(folder / "finetuned.pt", 0)
    res = entry["arch"]["resolution"]
    calib, _ = load_images(row["dataset"], "train", 128, res)
    x, y = load_images(row["dataset"], "test", n, res)
    qm = quantize(model, entry["arch"], [(calib[i : i + 64],) for i in range(0, 128, 64)])
    ev = evaluate_int8(qm, [(x[i : i + 50], y[i : i + 50]) for i in range(0, n, 50)], model=model)
    return {
        "dataset": row["dataset"],
        "images": ev.n,
        "float": ev.float_accuracy,
        "int8": ev.int8_accuracy,
        "agreement": ev.agreement,
        "flash_kb": row["flash_kb"],
        "sram_kb": row["sram_kb"],
        "mmacs": row["mmacs"],
    }


def func(args: argparse.Namespace) -> int:
    import torch

    from core.tinyformer.supernas import space_by_name

    torch.set_num_threads(args.threads)
    folder = data_dir() / "nas"
    choice = json.loads((folder / "supernas.json").read_text())["best"]
    rows = [
        time_analytic(space_by_name(choice), args.evals),
        time_exact(folder / "supernet.pt", args.exact_evals),
    ]
    search = search_time(args.search, args.threads)
    acc = float_vs_int8(args.int8_images)
    md = "## NAS cost model speed (target ≥ 1000 analytic evaluations/s)\n\n" + markdown_table(
        ["evaluation", "n", "wall s", "per wall s", "CPU s", "per CPU s"],
        [
            [r["what"], r["n"], r["seconds"], r["per_second"], r["cpu_seconds"], r["per_cpu_second"]]
            for r in rows
        ],
    )
    md += f"\n\nMachine load average while timing: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
    md += "\n\n## Search time (target ≤ 15 min on 2 cores)\n\n" + markdown_table(
        ["search", "minutes"], [[search["what"], search["seconds"] / 60]]
    )
    md += f"\n\n## Best candidate (id 0), {acc['dataset']}, float vs int8\n\n" + markdown_table(
        ["images", "float top-1", "int8 top-1", "agreement", "MMACs", "flash KB", "SRAM KB"],
        [
            [
                acc["images"],
                acc["float"],
                acc["int8"],
                acc["agreement"],
                acc["mmacs"],
                acc["flash_kb"],
                acc["sram_kb"],
            ]
        ],
    )
    print(md)
    write_result(
        "bench_nas",
        md,
        {"evaluations": rows, "search": search, "best_candidate": acc},
        config=vars(args) | {"func": None, "space": choice},
    )
    return 0
