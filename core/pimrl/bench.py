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
    "cpu": dict(iterations=120, pretrain_iterations=40, batch_size=2, rollout=4, rollout_start=1,
                lr=2e-3, lr_step=40, lr_gamma=0.7),
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
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    p.add_argument("--save-checkpoints", action="store_true",
                   help="ship the first seed's models to data/checkpoints and update manifest.json")
    p.add_argument("--name", default="bench_pimrl", help="result file name under data/results/")
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


def run_system(system_name: str, preset: str, models: list[str], seeds: list[int], args: Any,
               progress: Progress = no_progress) -> dict[str, Any]:
    """Train and score every model for every seed on one system; returns per-model records."""
    from core.datasets import DatasetConfig, generate
    from core.metrics import evaluate, summarize
    from core.pimrl.training import train

    cfg = DatasetConfig(system=system_name, preset=preset)
    ds = generate(cfg)
    records: dict[str, Any] = {m: {"runs": []} for m in models}
    for seed in seeds:
        base = train_config(preset, seed, args.iterations, args.pretrain)
        for name in models:
            tc = budget_for(name, base)
            res = train(name, ds, tc, progress=progress)
            summary = summarize(evaluate({name: res.model}, ds, "test")).loc[name]
            run = {"seed": seed, "rmse": float(summary["rmse"]), "mae": float(summary["mae"]),
                   "hct": float(summary["hct"]), "train_s": res.seconds, "params": res.model.n_parameters(),
                   "final_loss": res.history[-1], "iterations": tc.total}
            run.update(time_rollouts(res.model, ds, cfg.solver()))
            records[name]["runs"].append(run)
            print(f"[bench pimrl] {system_name} {name} seed {seed}: " + json.dumps(
                {k: round(v, 5) if isinstance(v, float) else v for k, v in run.items()}), flush=True)
            if args.save_checkpoints and seed == seeds[0]:
                ship_checkpoint(res, name, cfg, run)
    return records


def ship_checkpoint(res: Any, name: str, cfg: Any, run: dict[str, Any]) -> Path:
    """Write data/checkpoints/<system>/<model>.pt (weights only) and its manifest entry."""
    from core.io import command_line
    from core.pimrl.base import save_checkpoint

    folder = data_dir() / "checkpoints"
    path = folder / cfg.system / f"{name}.pt"
    metrics = {k: run[k] for k in ("rmse", "mae", "hct")}
    save_checkpoint(path, res.model, res.meta, res.config, res.history, metrics=metrics,
                    extra={"dataset_config": cfg.to_dict()})
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"checkpoints": {}}
    manifest["checkpoints"].setdefault(cfg.system, {})[name] = {
        "path": str(path.relative_to(folder)), "command": command_line(), "seed": res.config.seed,
        "dataset_key": cfg.key(), "dataset_config": cfg.to_dict(), "train_config": res.config,
        "metrics": metrics, "split": "test", "params": run["params"], "bytes": path.stat().st_size,
    }
    manifest["note"] = ("metrics: rollout RMSE/MAE (sqrt of mean squared error over all predicted frames) "
                        "and HCT (corr 0.8) over the full test trajectories, from core.metrics.evaluate")
    write_json_atomic(manifest_path, to_jsonable(manifest))
    return path


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


def _run(args: argparse.Namespace) -> int:
    import torch

    from core.io import tqdm_progress, write_result
    from core.physics import SYSTEMS
    from core.pimrl.registry import ABLATIONS, MODELS

    torch.set_num_threads(max(1, args.threads))
    systems = _csv(args.systems, SYSTEMS, SYSTEMS, "system")
    models = _csv(args.models, MODELS, MODELS + ABLATIONS, "model")
    seeds = _seeds(args.seeds)
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    for system in systems:
        with tqdm_progress(f"bench pimrl {system}") as progress:
            results[system] = run_system(system, args.preset, models, seeds, args, progress)
        md, agg = table(results)
        config = {"preset": args.preset, "systems": systems, "models": models, "seeds": seeds,
                  "train": to_jsonable(train_config(args.preset, 0, args.iterations, args.pretrain)),
                  "threads": args.threads}
        header = (f"# PIMRL benchmark ({args.preset} preset)\n\nMean ± std over seeds {seeds}; RMSE/MAE over "
                  "the whole test rollout, HCT = time until corr < 0.8. Speedup = reference solver time / "
                  "model rollout time for one test trajectory over the same horizon (CPU, "
                  f"{args.threads} thread).\n\n")
        write_result(args.name, header + md, {"results": results, "aggregate": agg,
                                              "seconds": time.perf_counter() - t0}, config)
    print(md)
    return 0
