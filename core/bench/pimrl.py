"""`python -m core bench pimrl`: PIMRL vs PeRCNN, ConvLSTM and FNO on the five systems.

For each system: one dataset (``core.datasets`` preset), and for each seed the four models are trained
with the same trajectories and the same number of optimizer steps (``BENCH_TRAIN[preset]``), then
rolled out from the first frame of every held-out test trajectory over the whole horizon and scored
with ``core.metrics`` (rollout RMSE/MAE, HCT at corr 0.8; mean ± std over seeds of the per-seed
means over test trajectories). Speed: one test trajectory rolled out by the model (batch 1, no grad)
vs ``core.physics.simulate`` over the same horizon, both on this machine's CPU.

With ``--save-checkpoints`` the first seed's models are written to data/checkpoints/<system>/<model>.pt
(weights only, no optimizer state) and recorded in data/checkpoints/manifest.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.io import Progress, data_dir, markdown_table, no_progress, to_jsonable, write_json_atomic

#: training budget per preset: the SAME for every model (pretrain+iterations optimizer steps in total)
BENCH_TRAIN: dict[str, dict[str, Any]] = {
    # sized for 2 cores shared by ~8 jobs (each job gets ~0.2 core): 80 optimizer steps per model
    "cpu": dict(iterations=55, pretrain_iterations=25, batch_size=2, rollout=3, rollout_start=1,
                lr=3e-3, lr_step=30, lr_gamma=0.7),
    "paper": dict(iterations=5000, pretrain_iterations=2000, batch_size=4, rollout=10, rollout_start=2,
                  lr=1e-3, lr_step=1000, lr_gamma=0.7),
}


def register(bench_subparsers: Any) -> None:
    p = bench_subparsers.add_parser("pimrl", help="PIMRL vs PeRCNN / ConvLSTM / FNO on the five PDE systems")
    p.add_argument("--preset", default="cpu", help="dataset/physics preset (cpu | paper)")
    p.add_argument("--systems", default=None, help="comma-separated systems (default: all five)")
    p.add_argument("--models", default=None,
                   help="comma-separated models (default: pimrl,percnn,convlstm,fno)")
    p.add_argument("--seeds", default="0,1", help="comma-separated training seeds (default 0,1)")
    p.add_argument("--iterations", type=int, default=None, help="override the coarse-stage iterations")
    p.add_argument("--pretrain", type=int, default=None, help="override the micro pretraining iterations")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job (default 1: shared machine)")
    p.add_argument("--jobs", type=int, default=1, help="(system, seed) tasks run in parallel processes")
    p.add_argument("--save-checkpoints", action="store_true",
                   help="ship the first seed's models to data/checkpoints and update manifest.json")
    p.add_argument("--name", default="bench_pimrl", help="result file name under data/results/")
    p.add_argument("--cycles", default=None,
                   help="instead of the comparison: train PIMRL with each cycle length N (e.g. 2,4,8) and "
                        "score it on the VALIDATION split -> bench_pimrl_cycle.{md,json}")
    p.set_defaults(func=_run)


def _csv(text: str | None, default: tuple[str, ...], known: tuple[str, ...], kind: str) -> list[str]:
    from core.errors import unknown

    items = [t.strip() for t in text.split(",") if t.strip()] if text else list(default)
    for item in items:
        if item not in known:
            raise unknown(kind, item, known)
    return items


def _seeds(text: str) -> list[int]:
    from core.errors import WorkbenchError

    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError as exc:
        raise WorkbenchError(f"--seeds {text!r} must be comma-separated integers, e.g. 0,1") from exc
    if not seeds:
        raise WorkbenchError(f"--seeds {text!r} names no seed; give e.g. 0,1")
    return seeds


def train_config(preset: str, seed: int, iterations: int | None = None, pretrain: int | None = None):
    """The benchmark's TrainConfig for `preset` (optionally with fewer/more iterations)."""
    from core.errors import unknown
    from core.pimrl.training import TrainConfig

    if preset not in BENCH_TRAIN:
        raise unknown("benchmark preset", preset, BENCH_TRAIN)
    kw = dict(BENCH_TRAIN[preset], seed=seed)
    if iterations is not None:
        kw["iterations"] = iterations
    if pretrain is not None:
        kw["pretrain_iterations"] = pretrain
    return TrainConfig(**kw)


def budget_for(name: str, config: Any) -> Any:
    """Same optimizer-step budget for every model: a model without a fine stage spends the
    pretraining steps on coarse windows too."""
    import dataclasses

    if name in ("pimrl", "pimrl_nomp", "micro"):
        return config
    return dataclasses.replace(config, iterations=config.iterations + config.pretrain_iterations,
                               pretrain_iterations=0)


def time_rollouts(model: Any, ds: Any, system: Any) -> dict[str, float]:
    """Seconds to roll out one test trajectory: the model (batch 1) vs the reference solver."""
    import torch

    from core.datasets import trajectories
    from core.physics import simulate

    traj = trajectories(ds, "test")  # (S, T, C, *n)
    n_steps = traj.shape[1] - 1
    every = int(round(float(ds.attrs["dt_coarse"]) / system.dt))
    t0 = time.perf_counter()
    simulate(system, traj[0, 0].double().numpy(), n_steps * every, record_every=every)
    t_ref = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        model(traj[:1, 0].to(next(model.parameters()).device), n_steps)
        t_model = time.perf_counter() - t0
    return {"rollout_s": t_model, "reference_s": t_ref, "speedup": t_ref / t_model, "steps": n_steps}


def run_task(system_name: str, preset: str, seed: int, models: list[str], iterations: int | None,
             pretrain: int | None, threads: int, save: bool, progress: Progress = no_progress
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train and score every model for one (system, seed); returns (runs per model, manifest entries).

    Runs in a worker process with `--jobs > 1`; the dataset is generated beforehand (cache hit here).
    """
    import torch

    from core.datasets import DatasetConfig, generate
    from core.metrics import evaluate, summarize
    from core.pimrl.training import train

    torch.set_num_threads(max(1, threads))
    cfg = DatasetConfig(system=system_name, preset=preset)
    ds = generate(cfg)
    runs, shipped = {}, {}
    base = train_config(preset, seed, iterations, pretrain)
    for name in models:
        tc = budget_for(name, base)
        res = train(name, ds, tc, progress=progress)
        summary = summarize(evaluate({name: res.model}, ds, "test")).loc[name]
        run = {"seed": seed, "rmse": float(summary["rmse"]), "mae": float(summary["mae"]),
               "hct": float(summary["hct"]), "train_s": res.seconds, "params": res.model.n_parameters(),
               "final_loss": res.history[-1], "iterations": tc.total}
        run.update(time_rollouts(res.model, ds, cfg.solver()))
        runs[name] = run
        print(f"[bench pimrl] {system_name} {name} seed {seed}: " + json.dumps(
            {k: round(v, 5) if isinstance(v, float) else v for k, v in run.items()}), flush=True)
        if save:
            shipped[name] = ship_checkpoint(res, name, cfg, run)
    return runs, shipped


def ship_checkpoint(res: Any, name: str, cfg: Any, run: dict[str, Any]) -> dict[str, Any]:
    """Write data/checkpoints/<system>/<model>.pt (weights only); returns its manifest entry."""
    from core.io import command_line
    from core.pimrl.base import save_checkpoint

    folder = data_dir() / "checkpoints"
    path = folder / cfg.system / f"{name}.pt"
    metrics = {k: run[k] for k in ("rmse", "mae", "hct")}
    save_checkpoint(path, res.model, res.meta, res.config, res.history, metrics=metrics,
                    extra={"dataset_config": cfg.to_dict()})
    return {"path": str(path.relative_to(folder)), "command": command_line(), "seed": res.config.seed,
            "dataset_key": cfg.key(), "dataset_config": cfg.to_dict(),
            "train_config": to_jsonable(res.config),
            "metrics": metrics, "split": "test", "params": run["params"], "bytes": path.stat().st_size}


def update_manifest(system: str, entries: dict[str, Any]) -> Path:
    """Merge `entries` (model -> record) for `system` into data/checkpoints/manifest.json."""
    path = data_dir() / "checkpoints" / "manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {"checkpoints": {}}
    manifest["checkpoints"].setdefault(system, {}).update(entries)
    manifest["note"] = ("metrics: rollout RMSE/MAE (over all predicted frames and grid points) and HCT "
                        "(corr 0.8) over the full test trajectories, from core.metrics.evaluate")
    return write_json_atomic(path, to_jsonable(manifest))


def torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(max(1, n))


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(np.mean(arr)), float(np.std(arr))


def table(results: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Markdown table and the aggregated payload (mean ± std over seeds)."""
    headers = ["system", "model", "RMSE", "MAE", "HCT", "params", "train s", "rollout s", "solver s",
               "speedup", "RMSE / best baseline"]
    rows, agg = [], {}
    for system, recs in results.items():
        agg[system] = {}
        for name, rec in recs.items():
            runs = rec["runs"]
            a = {k: _mean_std([r[k] for r in runs]) for k in ("rmse", "mae", "hct", "train_s", "rollout_s",
                                                                "reference_s", "speedup")}
            a["params"] = runs[0]["params"]
            agg[system][name] = a
        baselines = [v["rmse"][0] for k, v in agg[system].items() if k != "pimrl"]
        best = min((b for b in baselines if np.isfinite(b)), default=float("nan"))
        for name, a in agg[system].items():
            ratio = a["rmse"][0] / best if name == "pimrl" and best > 0 else float("nan")
            a["ratio_to_best_baseline"] = ratio
            rows.append([system, name, f"{a['rmse'][0]:.4g} ± {a['rmse'][1]:.2g}",
                         f"{a['mae'][0]:.4g} ± {a['mae'][1]:.2g}", f"{a['hct'][0]:.4g} ± {a['hct'][1]:.2g}",
                         a["params"], f"{a['train_s'][0]:.0f}", f"{a['rollout_s'][0]:.3g}",
                         f"{a['reference_s'][0]:.3g}", f"{a['speedup'][0]:.3g}",
                         "" if name != "pimrl" else f"{ratio:.3g}"])
    return markdown_table(headers, rows), agg


def cycle_sweep(systems: list[str], preset: str, cycles: list[int], seeds: list[int],
                iterations: int | None, pretrain: int | None, progress: Progress = no_progress) -> list[list]:
    """Rows (system, N, val RMSE mean, std over seeds, HCT, rollout s): how the cycle length trades
    accuracy for speed. Scored on the validation split, so choosing N never looks at the test set."""
    from core.datasets import DatasetConfig, generate
    from core.metrics import evaluate, summarize
    from core.pimrl.training import train

    rows = []
    for system in systems:
        ds = generate(DatasetConfig(system=system, preset=preset))
        for n in cycles:
            rmse, hct, secs = [], [], []
            for seed in seeds:
                res = train("pimrl", ds, train_config(preset, seed, iterations, pretrain), progress=progress,
                            cycle=n)
                t0 = time.perf_counter()
                s = summarize(evaluate({"pimrl": res.model}, ds, "val")).loc["pimrl"]
                secs.append(time.perf_counter() - t0)
                rmse.append(float(s["rmse"]))
                hct.append(float(s["hct"]))
            rows.append([system, n, *_mean_std(rmse), float(np.mean(hct)), float(np.mean(secs))])
            print(f"[bench pimrl cycles] {rows[-1]}", flush=True)
    return rows


def _run_cycles(args: argparse.Namespace, systems: list[str], seeds: list[int]) -> int:
    from core.errors import WorkbenchError
    from core.io import tqdm_progress, write_result

    try:
        cycles = [int(c) for c in args.cycles.split(",") if c.strip()]
    except ValueError as exc:
        raise WorkbenchError(f"--cycles {args.cycles!r} must be comma-separated integers, "
                             "e.g. 2,4,8") from exc
    with tqdm_progress("bench pimrl cycles") as progress:
        rows = cycle_sweep(systems, args.preset, cycles, seeds, args.iterations, args.pretrain, progress)
    md = markdown_table(["system", "N", "val RMSE", "± std", "val HCT", "eval s"], rows)
    header = (f"# PIMRL cycle length N ({args.preset} preset)\n\nOne micro step then N−1 macro steps; "
              f"validation split, seeds {seeds}, benchmark training budget.\n\n")
    write_result(args.name if args.name != "bench_pimrl" else "bench_pimrl_cycle", header + md,
                 {"rows": rows},
                 {"preset": args.preset, "systems": systems, "cycles": cycles, "seeds": seeds})
    print(md)
    return 0


def _run(args: argparse.Namespace) -> int:
    import concurrent.futures
    import multiprocessing

    from core.datasets import DatasetConfig, generate
    from core.io import tqdm_progress, write_result
    from core.physics import SYSTEMS
    from core.pimrl.registry import ABLATIONS, MODELS

    systems = _csv(args.systems, SYSTEMS, SYSTEMS, "system")
    models = _csv(args.models, MODELS, MODELS + ABLATIONS, "model")
    seeds = _seeds(args.seeds)
    if args.cycles:
        torch_threads(args.threads)
        return _run_cycles(args, systems, seeds)
    for system in systems:  # datasets first, in this process: workers then only read the cache
        with tqdm_progress(f"data {system}") as progress:
            generate(DatasetConfig(system=system, preset=args.preset), progress=progress)
    # costliest systems first so that the last tasks are short
    order = [s for s in ("grayscott3d", "grayscott2d", "fhn2d", "burgers2d", "kdv1d") if s in systems]
    order += [s for s in systems if s not in order]
    tasks = [(s, seed) for s in order for seed in seeds]
    results: dict[str, Any] = {s: {m: {"runs": []} for m in models} for s in systems}
    config = {"preset": args.preset, "systems": systems, "models": models, "seeds": seeds, "jobs": args.jobs,
              "train": to_jsonable(train_config(args.preset, 0, args.iterations, args.pretrain)),
              "threads": args.threads}
    t0 = time.perf_counter()

    def record(system: str, seed: int, runs: dict[str, Any], shipped: dict[str, Any]) -> str:
        for name, run in runs.items():
            results[system][name]["runs"].append(run)
        if shipped and seed == seeds[0]:
            update_manifest(system, shipped)
        done = {s: r for s, r in results.items() if all(r[m]["runs"] for m in models)}
        md, agg = table(done)
        header = (f"# PIMRL benchmark ({args.preset} preset)\n\nMean ± std over seeds {seeds}; RMSE/MAE over "
                  "the whole test rollout, HCT = time until corr < 0.8. Speedup = reference solver time / "
                  "model rollout time for one test trajectory over the same horizon (CPU, "
                  f"{args.threads} thread per job, {args.jobs} jobs on a shared machine).\n\n")
        write_result(args.name, header + md, {"results": results, "aggregate": agg,
                                              "seconds": time.perf_counter() - t0}, config)
        return md

    md = ""
    args_of = lambda s, seed: (s, args.preset, seed, models, args.iterations, args.pretrain,  # noqa: E731
                               args.threads, args.save_checkpoints and seed == seeds[0])
    if args.jobs <= 1:
        for s, seed in tasks:
            with tqdm_progress(f"bench pimrl {s} seed {seed}") as progress:
                md = record(s, seed, *run_task(*args_of(s, seed), progress=progress))
    else:
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            futures = {pool.submit(run_task, *args_of(s, seed)): (s, seed) for s, seed in tasks}
            for fut in concurrent.futures.as_completed(futures):
                s, seed = futures[fut]
                md = record(s, seed, *fut.result())
    print(md)
    return 0
