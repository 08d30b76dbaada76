"""`python -m core bench nas`: the fitted latency model, NAS cost-model speed, the search, float vs int8.

With `--fit-latency` the single-op emulator measurements of `core.tinyformer.latency.PLAN` are taken
(on Dask with `--scheduler`), fitted, and written to `data/nas/latency_model.json` with the command;
without, the shipped fit is used. The fit is then validated against whole-model emulation of
`--validate` seeded random genomes of the searched space that fit the budgets (random int8 weights,
block-pruned as the genome says): predicted vs emulated cycles, error per model (target ≤ 5%).

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
    p = bench_subparsers.add_parser("nas-latency", help="fit the NAS latency model to emulator "
                                    "measurements and validate it on whole models")
    p.add_argument("--fit", action="store_true",
                   help="re-measure the single-op plan on the emulator, re-fit data/nas/latency_model.json")
    p.add_argument("--fit-kinds", default=None,
                   help="re-measure only these op kinds (comma-separated), keep the other shipped points")
    p.add_argument("--validate", type=int, default=8, help="whole models emulated to validate the fit")
    p.add_argument("--space", default=None, help="search space of the validation models (default: the "
                   "shipped supernet's)")
    p.add_argument("--scheduler", default=None,
                   help="run the emulations on Dask: 'local' or tcp://host:port (default: in-process)")
    p.set_defaults(func=latency_func)


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


def latency_fit(args: argparse.Namespace, space: Any) -> tuple[list[dict], list[dict], dict[str, Any]]:
    """(per-group fit rows, validation rows, summary): re-fit when asked, then validate."""
    from core.io import command_line, tqdm_progress
    from core.tinyformer import latency

    path = data_dir() / "nas" / "latency_model.json"
    points = data_dir() / "results" / "nas_latency_points.json"
    kinds = [k for k in (args.fit_kinds or "").split(",") if k]
    if args.fit or kinds:
        plan = latency.PLAN
        old: list[dict] = []
        if kinds:  # re-measure these op kinds only; keep the shipped measurements of the others
            old = [r for r in json.loads(points.read_text()) if r["kind"] not in kinds]
            plan = [pt for pt in latency.PLAN if pt["kind"] in kinds]
        with tqdm_progress("latency: single-op emulations", unit="op") as progress:
            rows = old + latency.measure(plan, scheduler=args.scheduler, progress=progress)
        previous = json.loads(points.read_text()) if points.is_file() else None
        model = latency.fit(rows, {"command": command_line(),
                                   "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                   "engine_commit": _commit(),
                                   "refit_kinds": kinds or "all",
                                   "vs_previous_points": None if previous is None
                                   else latency.compare_points(previous, rows)})
        model.save(path)
        points.write_text(json.dumps(rows))
    model = latency.load(path)
    counts: dict[str, int] = {}
    for pt in latency.PLAN:
        counts[pt["kind"]] = counts.get(pt["kind"], 0) + 1
    fit_rows = [{"group": g, "error": e} for g, e in sorted(model.fit_error.items())]
    with tqdm_progress("latency: whole-model emulations", unit="model") as progress:
        val = latency.validate(model, latency.validation_items(space, args.validate, seed=1),
                               scheduler=args.scheduler, progress=progress)
    return fit_rows, val, {**latency.summary_error(val), "points": model.meta.get("points"),
                           "fit_command": model.meta.get("command"), "fit_created": model.meta.get("created"),
                           "engine_commit": model.meta.get("engine_commit"),
                           "vs_previous_points": model.meta.get("vs_previous_points")}


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def search_summary() -> dict[str, Any]:
    """The shipped candidates table: how many, how many are over the search's budgets at today's costs
    (`nas latency` re-prices it as the engine changes), how many fit only sparse, the Pareto front."""
    import pandas as pd

    from core.tinyformer.candidates import search_budgets
    from core.tinyformer.sparsenas import SearchConfig

    folder = data_dir() / "nas"
    t = pd.read_parquet(folder / "candidates.parquet")
    front = t[t["pareto"] == 0].sort_values("latency_ms")
    cfg = SearchConfig(**search_budgets(folder))
    fits = (t["flash_bytes"] <= cfg.flash_budget) & (t["sram_bytes"] <= cfg.sram_budget)
    over = t[~fits]
    return {
        "candidates": len(t),
        "flash_budget": cfg.flash_budget,
        "sram_budget": cfg.sram_budget,
        "over_budget": [{"id": int(r.id), "flash_bytes": int(r.flash_bytes), "sram_bytes": int(r.sram_bytes)}
                        for r in over.itertuples()],
        "generations": int(t["generation"].max()) + 1,
        "fit_only_sparse": int((fits & ~t["fits_dense"]).sum()),
        "dense_over_1mb": int((fits & (t["dense_flash_bytes"] > 1024 * 1024)).sum()),
        "flash_kb_range": [float(t["flash_kb"].min()), float(t["flash_kb"].max())],
        "dense_flash_kb_range": [float(t["dense_flash_kb"].min()), float(t["dense_flash_kb"].max())],
        "latency_ms_range": [float(t["latency_ms"].min()), float(t["latency_ms"].max())],
        "front": [{"id": int(r.id), "accuracy": float(r.accuracy), "latency_ms": float(r.latency_ms),
                   "flash_kb": float(r.flash_kb), "dense_flash_kb": float(r.dense_flash_kb),
                   "n_sparse_layers": int(r.n_sparse_layers)} for r in front.itertuples()],
    }


def float_vs_int8(n: int) -> dict[str, Any]:
    """Float and int8 top-1 of the best fine-tuned candidate on the first n test images."""
    import pandas as pd

    from core.tinyformer.candidates import load_candidate, load_finetuned
    from core.tinyformer.quant import evaluate_int8, quantize
    from core.tinyformer.supernet import load_images

    folder = data_dir() / "nas"
    t = pd.read_parquet(folder / "candidates.parquet")
    done = t[t["finetuned"]].sort_values("accuracy_test", ascending=False)
    cid = int(done["id"].iloc[0]) if len(done) else 0
    row = load_candidate(folder / "candidates.parquet", cid)
    model, entry = load_finetuned(folder / "finetuned.pt", cid)
    res = entry["arch"]["resolution"]
    calib, _ = load_images(row["dataset"], "train", 128, res)
    x, y = load_images(row["dataset"], "test", n, res)
    qm = quantize(model, entry["arch"], [(calib[i : i + 64],) for i in range(0, 128, 64)])
    ev = evaluate_int8(qm, [(x[i : i + 50], y[i : i + 50]) for i in range(0, n, 50)], model=model)
    return {
        "id": cid,
        "dataset": row["dataset"],
        "images": ev.n,
        "latency_ms": row.get("latency_ms"),
        "float": ev.float_accuracy,
        "int8": ev.int8_accuracy,
        "agreement": ev.agreement,
        "flash_kb": row["flash_kb"],
        "sram_kb": row["sram_kb"],
        "mmacs": row["mmacs"],
    }


def func(args: argparse.Namespace) -> int:
    import torch

    from core.tinyformer.supernet import load_checkpoint

    torch.set_num_threads(args.threads)
    folder = data_dir() / "nas"
    _, space, _ = load_checkpoint(folder / "supernet.pt")
    lat_path = data_dir() / "results" / "nas_latency.json"
    lat = json.loads(lat_path.read_text())["latency"] if lat_path.is_file() else None
    rows = [
        time_analytic(space, args.evals),
        time_exact(folder / "supernet.pt", args.exact_evals),
    ]
    search = search_time(args.search, args.threads)
    found = search_summary()
    acc = float_vs_int8(args.int8_images)
    md = ""
    if lat:
        md += (f"## Fitted latency model\n\nPer-layer cost model fitted to {lat['points']} single-op "
               f"emulator measurements; against whole-model emulation of {lat['models']} models: "
               f"mean |error| {100 * lat['mean_abs_error']:.2f}%, max {100 * lat['max_abs_error']:.2f}% "
               "(data/results/nas_latency.md, `python -m core bench nas-latency`).\n\n")
    md += "## NAS cost model speed (target ≥ 1000 analytic evaluations/s)\n\n" + markdown_table(
        ["evaluation", "n", "wall s", "per wall s", "CPU s", "per CPU s"],
        [
            [r["what"], r["n"], r["seconds"], r["per_second"], r["cpu_seconds"], r["per_cpu_second"]]
            for r in rows
        ],
    )
    md += f"\n\nMachine load average while timing: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."
    md += "\n\n## Search\n\n" + markdown_table(
        ["search", "minutes"], [[search["what"], search["seconds"] / 60]]
    )
    over = found["over_budget"]
    needs = ", ".join(f"id {o['id']} needs {o['flash_bytes']} B flash, {o['sram_bytes']} B SRAM"
                      for o in over)
    repriced = (f" (the search kept only fitting ones; re-priced by `python -m core nas latency`, {needs})"
                if over else "")
    md += (f"\n\n{found['candidates']} evaluated candidates ({found['generations']} generations) in "
           f"{space.name}, {found['candidates'] - len(over)} of them within {found['flash_budget'] / 1024:g} "
           f"KB flash and {found['sram_budget'] / 1024:g} KB SRAM at today's costs{repriced}: flash "
           f"{found['flash_kb_range'][0]:.0f}–{found['flash_kb_range'][1]:.0f} KB as searched (code "
           "included); stored dense the same paths "
           f"would need {found['dense_flash_kb_range'][0]:.0f}–{found['dense_flash_kb_range'][1]:.0f} KB, "
           f"and {found['fit_only_sparse']} of them ({found['dense_over_1mb']} over 1 MB) fit only because "
           f"they are sparse. Fitted latency {found['latency_ms_range'][0]:.0f}–"
           f"{found['latency_ms_range'][1]:.0f} ms at 216 MHz. Pareto front (accuracy on the search's "
           "held-out slice, supernet weights; latency):\n\n")
    md += markdown_table(["id", "accuracy", "latency ms", "flash KB", "dense flash KB", "sparse layers"],
                         [[f["id"], f["accuracy"], f["latency_ms"], f["flash_kb"], f["dense_flash_kb"],
                           f["n_sparse_layers"]] for f in found["front"]])
    md += f"\n\n## Best fine-tuned candidate (id {acc['id']}), {acc['dataset']}, float vs int8\n\n"
    md += markdown_table(
        ["images", "float top-1", "int8 top-1", "agreement", "MMACs", "flash KB", "SRAM KB", "latency ms"],
        [
            [
                acc["images"],
                acc["float"],
                acc["int8"],
                acc["agreement"],
                acc["mmacs"],
                acc["flash_kb"],
                acc["sram_kb"],
                acc["latency_ms"],
            ]
        ],
    )
    print(md)
    write_result(
        "bench_nas",
        md,
        {"latency": lat, "evaluations": rows,
         "search": search, "candidates": found, "best_candidate": acc},
        config=vars(args) | {"func": None, "space": space.name},
    )
    return 0


def latency_func(args: argparse.Namespace) -> int:
    """`bench nas-latency`: (re-)fit the latency model and validate it on whole-model emulation."""
    from core.tinyformer.supernas import space_by_name
    from core.tinyformer.supernet import load_checkpoint

    if args.space:
        space = space_by_name(args.space)
    else:
        _, space, _ = load_checkpoint(data_dir() / "nas" / "supernet.pt")
    fit_rows, val, lat = latency_fit(args, space)
    md = (f"## Fitted latency model vs whole-model emulation (target ≤ 5% error)\n\n"
          f"{lat['points']} single-op emulator measurements (op, shape, sparsity, block size) fitted per "
          f"group by non-negative least squares (`{lat['fit_command']}`, engine at {lat['engine_commit']}), "
          f"validated on {lat['models']} whole models of {space.name} within 1 MB flash / 320 KB SRAM "
          "(random int8 weights block-pruned to random per-layer sparsity), emulated end to end:\n\n")
    md += markdown_table(
        ["model", "MMACs", "sparse layers", "emulated Mcycles", "predicted Mcycles", "error",
         "predicted ms (opt.–cons.)"],
        [[r["name"], r["macs"] / 1e6, r["sparse_layers"], r["emulated_cycles"] / 1e6,
          r["predicted_cycles"] / 1e6, f"{100 * r['error']:+.2f}%",
          f"{r['predicted_ms']:.1f} ({r['predicted_optimistic'] / 216e3:.1f}–"
          f"{r['predicted_conservative'] / 216e3:.1f})"] for r in val])
    vs = lat.get("vs_previous_points")
    if vs:
        moved = ", ".join(f"{g} {n}" for g, n in vs["changed"].items()) or "none"
        md += (f"\n\nAgainst the measurements this fit replaced: {vs['same']} points identical, changed "
               f"(per group): {moved}; {vs['added']} new, {vs['dropped']} dropped.")
    md += (f"\n\nMean |error| {100 * lat['mean_abs_error']:.2f}%, max {100 * lat['max_abs_error']:.2f}%. "
           "Fit error per group (mean |relative error| on its measurements): "
           + ", ".join(f"{r['group']} {100 * r['error']:.1f}%" for r in fit_rows) + ".")
    print(md)
    write_result("nas_latency", md, {"latency_validation": val, "latency_fit": fit_rows, "latency": lat},
                 config=vars(args) | {"func": None, "space": space.name})
    return 0
