"""`python -m core bench pimrl`: PIMRL vs PeRCNN, ConvLSTM and FNO (and PIMRL's ablations) against
persistence and the mean field, on the five systems.

Protocol (also in the README):

* one dataset per system (``core.datasets`` preset); every model of a seed sees the same training
  trajectories and the same number of optimizer steps (``core.training.BUDGETS[budget]``); the
  checkpoint is picked by validation nRMSE on multi-step rollouts (never by the test split);
* each model rolls out freely from the first frame of every held-out TEST trajectory over the
  system's scored horizon (``core.metrics.SCORED_STEPS``); the given frame is never scored;
* scores: nRMSE over the first 10 and 25 steps and the whole horizon, RMSE, HCT (corr 0.8), and how
  many test trajectories diverged (a diverged rollout scores inf; ``core.metrics``), each a mean
  over test trajectories, then mean ± std over seeds;
* the references persistence and mean field are scored the same way; "vs persistence" is a model's
  nRMSE over the first 10 steps divided by persistence's;
* speed: one test trajectory over the scored horizon, the model (batch 1, no grad, one thread) vs
  the reference solver (``core.physics.simulate``) on the same machine in the same process.

Training is resumable: every (system, seed, model) run checkpoints under
``data/runs/bench-<preset>-<budget>/`` every ``checkpoint_every`` iterations; a rerun of the same
command resumes each unfinished run where it stopped (the same result as an uninterrupted run) and
reuses finished ones. With ``--save-checkpoints`` the first seed's models (weights only) are written
to data/checkpoints/<system>/<model>.pt and recorded in data/checkpoints/manifest.json.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.io import Progress, data_dir, markdown_table, no_progress, to_jsonable

#: the compared models, then PIMRL's ablations
COMPARED: tuple[str, ...] = ("pimrl", "percnn", "convlstm", "fno")
ABLATED: tuple[str, ...] = ("micro", "macro", "pimrl_nomp")


def register(bench_subparsers: Any) -> None:
    p = bench_subparsers.add_parser("pimrl", help="PIMRL vs PeRCNN / ConvLSTM / FNO (+ ablations) against "
                                                  "persistence and the mean field on the five PDE systems")
    p.add_argument("--preset", default="cpu", help="dataset/physics preset (cpu | paper)")
    p.add_argument("--budget", default="cpu", help="training budget: small | cpu | full | paper")
    p.add_argument("--systems", default=None, help="comma-separated systems (default: all five)")
    p.add_argument("--models", default=None,
                   help="comma-separated models (default: pimrl,percnn,convlstm,fno,micro,macro,pimrl_nomp)")
    p.add_argument("--seeds", default="0,1", help="comma-separated training seeds (default 0,1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job (default 1)")
    p.add_argument("--jobs", type=int, default=1, help="training runs in parallel processes")
    p.add_argument("--save-checkpoints", action="store_true",
                   help="ship the first seed's models to data/checkpoints and update manifest.json")
    p.add_argument("--name", default=None, help="result file name under data/results/ "
                                                "(default bench_pimrl, or bench_pimrl_<budget>)")
    p.add_argument("--device", default="cpu", help="training device (cpu | cuda)")
    p.add_argument("--speed", type=int, default=None, metavar="STEPS",
                   help="only time rollouts of STEPS coarse steps vs the reference solver (untrained "
                        "models of the same architecture: speed does not depend on the weights) -> "
                        "bench_pimrl_speed_<preset>.{md,json}")
    p.add_argument("--validation", nargs="?", const="", default=None, metavar="DIR",
                   help="only tabulate the validation histories of the checkpoints in DIR (default: the "
                        "shipped data/checkpoints): did each run converge? "
                        "-> bench_pimrl_validation.{md,json}")
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
    if not seeds or min(seeds) < 0:
        raise WorkbenchError(f"--seeds {text!r} must name one or more non-negative seeds, e.g. 0,1")
    return seeds


def run_dir(preset: str, budget: str) -> Path:
    return data_dir() / "runs" / f"bench-{preset}-{budget}"


def config_for(name: str, ds: Any, budget: str, seed: int, device: str = "cpu") -> Any:
    """The TrainConfig of model `name` (PIMRL variants get windows of at least 2N)."""
    from core.pimrl.base import DataMeta
    from core.surrogates import default_config
    from core.training import train_config

    model_cfg = default_config(name, DataMeta.from_dataset(ds))
    return train_config(budget, seed, cycle=getattr(model_cfg, "cycle", None), system=str(ds.attrs["system"]))


def train_one(system: str, preset: str, budget: str, seed: int, name: str, threads: int = 1,
              device: str = "cpu", progress: Progress = no_progress) -> dict[str, Any]:
    """Train (or resume, or reuse) one run; returns where its checkpoint is and how long it took."""
    import torch

    from core.datasets import DatasetConfig, generate
    from core.surrogates import load_checkpoint
    from core.training import train

    torch.set_num_threads(max(1, threads))  # a worker process of its own: nothing to restore
    ds = generate(DatasetConfig(system=system, preset=preset))
    config = config_for(name, ds, budget, seed)
    out = run_dir(preset, budget) / system / f"{name}-s{seed}.pt"
    resume = None
    if out.is_file():
        from core.io import to_jsonable

        _, payload = load_checkpoint(out)
        same = payload.get("train_config") == to_jsonable(config) and \
            payload["meta"].get("dataset_key") == ds.attrs.get("key")
        if same and payload.get("finished"):
            return {"path": str(out), "train_s": float(payload.get("train_s", 0.0)), "reused": True,
                    "diverged_at": payload.get("diverged_at")}
        # a run of this benchmark made with other settings is retrained from scratch (this folder
        # holds only the benchmark's own runs)
        resume = out if same else None
    # training seconds of the earlier sessions of a resumed run (read before this one overwrites it)
    prior = float(payload.get("elapsed_s", 0.0)) if resume is not None else 0.0
    t0 = time.perf_counter()
    res = train(name, ds, config, progress=progress, resume=resume, device=device, out=out,
                stop_on_divergence=True)
    seconds = time.perf_counter() - t0
    from core.pimrl.base import save_checkpoint

    train_s = prior + seconds
    save_checkpoint(out, res.model, res.meta, res.config, res.history, iteration=res.iterations,
                    extra={"finished": True, "train_s": train_s, "validation": res.validation,
                           "best": res.best, "diverged_at": res.diverged_at})
    print(f"[bench pimrl] {system} {name} seed {seed}: {res.iterations} iterations, {seconds:.0f} s, "
          f"best val nRMSE {res.best.get('score', float('nan')):.4g} at {res.best.get('iteration')}",
          flush=True)
    return {"path": str(out), "train_s": train_s, "reused": False, "diverged_at": res.diverged_at}


#: timed repeats per measurement in `speed`; the fastest counts (the machine is shared and noisy)
REPEATS = 3


def _best_of(repeats: int, fn: Any, *args: Any, **kwargs: Any) -> float:
    """Seconds of the fastest of `repeats` calls of fn(*args, **kwargs)."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best


def time_rollouts(model: Any, ds: Any, system: Any, steps: int) -> dict[str, float]:
    """Seconds to roll one test trajectory `steps` coarse steps: the model (batch 1, no grad) vs the
    reference solver over the same horizon, each the fastest of `REPEATS` runs."""
    import torch

    from core.datasets import trajectories
    from core.physics import simulate

    traj = trajectories(ds, "test")  # (S, T, C, *n)
    every = int(round(float(ds.attrs["dt_coarse"]) / system.dt))
    u0 = traj[0, 0].double().numpy()
    t_ref = _best_of(REPEATS, simulate, system, u0, steps * every, record_every=every)
    model.eval()
    with torch.no_grad():
        t_model = _best_of(REPEATS, model, traj[:1, 0], steps)
    return {"rollout_s": t_model, "reference_s": t_ref, "speedup": t_ref / t_model}


def score_seed(system: str, preset: str, seed: int, paths: dict[str, str]) -> tuple[dict[str, Any], Any]:
    """Evaluate one seed's models and the references on the test split; per-model rows and the
    per-step metrics (xarray)."""
    from core.datasets import DatasetConfig, generate
    from core.metrics import evaluate, scored_horizon, summarize
    from core.surrogates import REFERENCES, load_checkpoint, load_surrogates

    cfg = DatasetConfig(system=system, preset=preset)
    ds = generate(cfg)
    steps = scored_horizon(system, ds.sizes["time"] - 1)
    models, problems = load_surrogates(ds, list(REFERENCES))
    for name, path in paths.items():
        models[name] = load_checkpoint(Path(path))[0]
    metrics = evaluate(models, ds, "test", n_steps=steps)
    summary = summarize(metrics)
    rows = {}
    for name in models:
        row = {k: (float(v) if isinstance(v, int | float | np.floating | np.integer) else v)
               for k, v in summary.loc[name].items()}
        row["params"] = int(models[name].n_parameters()) if name in paths else 0
        if name in paths:
            row.update(time_rollouts(models[name], ds, cfg.solver(), steps))
        rows[name] = row
    return rows, metrics


def _agg(values: list[float]) -> tuple[float, float]:
    from core.metrics import _mean_std

    return _mean_std(np.asarray(values, dtype=float))


def aggregate(per_seed: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean ± std over seeds of every score (inf stays inf); divergence counts add up."""
    out: dict[str, dict[str, Any]] = {}
    for name in per_seed[0]:
        runs = [s[name] for s in per_seed if name in s]
        a: dict[str, Any] = {}
        for key in ("nrmse_10", "nrmse_25", "nrmse", "rmse_10", "rmse_25", "rmse", "mae", "hct",
                    "rollout_s", "reference_s", "speedup", "train_s"):
            if all(key in r for r in runs):
                a[key] = _agg([r[key] for r in runs])
        a["diverged"] = int(sum(r["diverged"] for r in runs))
        a["trajectories"] = int(sum(r["samples"] for r in runs))
        first = [r["first_diverged"] for r in runs if r["first_diverged"] > 0]
        a["first_diverged"] = int(min(first)) if first else 0
        a["params"] = runs[0].get("params", 0)
        a["train_diverged_at"] = [r["train_diverged_at"] for r in runs
                                  if r.get("train_diverged_at") is not None]
        out[name] = a
    pers = out.get("persistence", {}).get("nrmse_10", (np.nan, 0))[0]
    for a in out.values():
        a["vs_persistence_10"] = a["nrmse_10"][0] / pers if "nrmse_10" in a and pers > 0 else np.nan
    return out


def ratios(agg: dict[str, dict[str, Any]]) -> dict[str, float]:
    """PIMRL's nRMSE / the best compared baseline's (first 25 steps and full horizon); divergence
    counts: a baseline that diverged has inf nRMSE and so is never the best unless all diverged."""
    out = {}
    base = [m for m in ("percnn", "convlstm", "fno") if m in agg]
    if "pimrl" not in agg or not base:
        return out
    for key in ("nrmse_25", "nrmse"):
        best = min(agg[m][key][0] for m in base)
        out[key] = agg["pimrl"][key][0] / best if best > 0 else np.nan
    hct_best = max(agg[m]["hct"][0] for m in base)
    out["hct_minus_best"] = agg["pimrl"]["hct"][0] - hct_best
    return out


def _fmt(pair: tuple[float, float]) -> str:
    mean, std = pair
    if not np.isfinite(mean):
        return "inf (diverged)"
    return f"{mean:.3g} ± {std:.2g}"


def table(results: dict[str, dict[str, Any]]) -> str:
    headers = ["system", "model", "diverged", "nRMSE@10", "nRMSE@25", "nRMSE full", "RMSE full", "HCT",
               "@10 vs persistence", "params", "train s", "rollout s", "solver s", "speedup"]
    rows = []
    for system, res in results.items():
        agg = res["aggregate"]
        for name, a in agg.items():
            rows.append([system, name, f"{a['diverged']}/{a['trajectories']}"
                         + (f" (step {a['first_diverged']})" if a["first_diverged"] else "")
                         + (f"; training stopped at a non-finite loss (iteration {a['train_diverged_at']})"
                            if a.get("train_diverged_at") else ""),
                         _fmt(a["nrmse_10"]), _fmt(a["nrmse_25"]), _fmt(a["nrmse"]), _fmt(a["rmse"]),
                         _fmt(a["hct"]), f"{a['vs_persistence_10']:.3g}", a["params"] or "",
                         f"{a['train_s'][0]:.0f}" if "train_s" in a else "",
                         f"{a['rollout_s'][0]:.3g}" if "rollout_s" in a else "",
                         f"{a['reference_s'][0]:.3g}" if "reference_s" in a else "",
                         f"{a['speedup'][0]:.3g}" if "speedup" in a else ""])
    return markdown_table(headers, rows)


def ratio_table(results: dict[str, dict[str, Any]]) -> str:
    paper = {"kdv1d": 0.49, "burgers2d": 0.91, "fhn2d": 0.85, "grayscott2d": 0.29, "grayscott3d": 0.22}
    rows = []
    for system, res in results.items():
        r = res.get("ratios", {})
        if r:
            rows.append([system, f"{r['nrmse_25']:.3g}", f"{r['nrmse']:.3g}", paper.get(system, ""),
                         f"{r['hct_minus_best']:+.3g}"])
    return markdown_table(["system", "PIMRL / best baseline @25", "full", "paper (RMSE)",
                           "HCT(PIMRL) − best HCT"], rows)


def plot_curves(system: str, metrics_by_seed: list[Any], path: Path) -> Path:
    """Per-step nRMSE (mean over test trajectories and seeds) of every model, references dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.surrogates import REFERENCES

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    first = metrics_by_seed[0]
    for name in [str(m) for m in first["model"].values]:
        curves = np.stack([m["nrmse"].sel(model=name).values for m in metrics_by_seed if name in m["model"]])
        curve = curves.reshape(-1, curves.shape[-1]).mean(axis=0)  # inf stays inf: drawn as a gap at the top
        style = dict(ls="--", color="grey" if name == "persistence" else "black", lw=1.2) \
            if name in REFERENCES else dict(lw=2.2 if name == "pimrl" else 1.3)
        ax.plot(first["step"].values, np.where(np.isfinite(curve), curve, np.nan), label=name, **style)
    ax.set_yscale("log")
    ax.set_xlabel("coarse step (free rollout from the first test frame)")
    ax.set_ylabel("nRMSE (1 = predicting the mean)")
    ax.set_title(f"{system}: per-step nRMSE, test trajectories")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    from core.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def ship(system: str, preset: str, name: str, path: str, row: dict[str, Any], command: str,
         persistence: dict[str, Any]) -> dict[str, Any]:
    """Copy a finished run's weights to data/checkpoints/<system>/<name>.pt; its manifest entry.

    Only a model that has learned is shipped: no test trajectory diverged within the first 10 steps
    and its nRMSE there is below persistence's. Otherwise the entry records why it was not shipped
    (and a checkpoint this benchmark shipped earlier under that name is removed), so the app and the
    notebooks never present a model that has not learned as if it had.
    """
    from core.datasets import DatasetConfig
    from core.pimrl.base import save_checkpoint
    from core.surrogates import checkpoint_path, load_checkpoint

    model, payload = load_checkpoint(Path(path))
    cfg = DatasetConfig(system=system, preset=preset)
    dest = checkpoint_path(system, name, data_dir() / "checkpoints")
    keys = ("nrmse_10", "nrmse_25", "nrmse", "rmse", "hct", "diverged", "first_diverged")
    metrics = {k: row[k] for k in keys if k in row}
    early_divergence = 0 < row["first_diverged"] <= 10
    if early_divergence or not row["nrmse_10"] < persistence["nrmse_10"]:
        if dest.is_file():
            dest.unlink()  # an earlier shipped checkpoint of this benchmark (data/checkpoints is its output)
        reason = (f"diverged at step {row['first_diverged']}" if early_divergence else
                  f"nRMSE over 10 steps {row['nrmse_10']:.3g} is not below persistence's "
                  f"{persistence['nrmse_10']:.3g}")
        return {"path": None, "not_shipped": reason, "command": command, "dataset_key": cfg.key(),
                "dataset_config": cfg.to_dict(), "metrics": metrics, "split": "test"}
    save_checkpoint(dest, model, model.meta, payload["train_config"], payload["history"], metrics=metrics,
                    extra={"dataset_config": cfg.to_dict(), "validation": payload.get("validation", []),
                           "best": payload.get("best", {})})
    return {"path": f"{system}/{name}.pt", "command": command, "seed": payload["train_config"].get("seed"),
            "dataset_key": cfg.key(), "dataset_config": cfg.to_dict(),
            "train_config": payload["train_config"], "metrics": metrics, "split": "test",
            "bytes": dest.stat().st_size}


def speed(preset: str, systems: list[str], models: list[str], steps: int,
          progress: Progress = no_progress) -> list[list[Any]]:
    """Rows (system, grid, model, model s, solver s, speedup) for `steps` coarse steps from a test-like
    initial state: each model (batch 1, no grad, one thread) vs core.physics.simulate, in one process."""
    import torch

    from core.datasets import DatasetConfig
    from core.physics import simulate
    from core.pimrl.base import DataMeta
    from core.surrogates import build_model

    rows = []
    for i, system in enumerate(systems):
        cfg = DatasetConfig(system=system, preset=preset).resolved()
        solver = cfg.solver()
        meta = DataMeta(system, solver.ndim, len(solver.fields), solver.n, solver.dx, cfg.dt_fine, cfg.k,
                        cfg.k * cfg.dt_fine, cfg.key(), preset, solver.fields)
        u0 = solver.initial_condition(np.random.default_rng(0))
        every = int(round(meta.dt_coarse / solver.dt))
        t_ref = _best_of(REPEATS, simulate, solver, u0, steps * every, record_every=every)
        x = torch.as_tensor(u0, dtype=torch.float32)[None]
        for name in models:
            torch.manual_seed(0)
            model = build_model(name, meta).eval()
            with torch.no_grad():
                model(x, 1)  # warm-up (allocations, lazy init)
                t_model = _best_of(REPEATS, model, x, steps)
            rows.append([system, "×".join(map(str, meta.n)), name, t_model, t_ref, t_ref / t_model])
            progress(i, len(systems), f"{system} {name}")
    return rows


def _run_speed(args: argparse.Namespace, systems: list[str], models: list[str]) -> int:
    import torch

    from core.io import tqdm_progress, write_result
    from core.limits import check_number

    steps = check_number("--speed", args.speed, minimum=1, integer=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tqdm_progress("bench pimrl speed") as progress:
            rows = speed(args.preset, systems, models, steps, progress)
    finally:
        torch.set_num_threads(threads)
    md = markdown_table(["system", "grid", "model", "model s", "solver s", "speedup"], rows)
    header = (f"# PIMRL rollout speed ({args.preset} preset, {steps} coarse steps)\n\n"
              f"Best of {REPEATS} timed runs each. Model: batch 1, no grad, one torch thread, untrained "
              "weights of the benchmark's architecture (speed does not depend on the weights). Solver: "
              "core.physics.simulate (numpy) over the same horizon, same process. "
              "Speedup = solver s / model s.\n\n")
    write_result(args.name or f"bench_pimrl_speed_{args.preset}", header + md, {"rows": rows},
                 {"preset": args.preset, "systems": systems, "models": models, "steps": steps})
    print(md)
    return 0


def _gain(old: float, new: float) -> float:
    """Relative improvement 1 - new/old (NaN when `old` is not a positive finite score)."""
    return 1.0 - new / old if math.isfinite(old) and old > 0 else math.nan


def validation_rows(folder: Path, systems: list[str], models: list[str]) -> list[list[Any]]:
    """One row per checkpoint `folder/<system>/<model>.pt` found: its validation history (the
    validated stage's validation nRMSE every `val_every` iterations) summarised as: how many
    validations over which iterations, the best score and where, the best of each half and the gain
    of the second half over the first (1 - best2/best1: > 0 means the run was still improving in the
    second half of its last validated stage), and the last score."""
    from core.pimrl.base import read_checkpoint

    rows = []
    for system in systems:
        for name in models:
            path = Path(folder) / system / f"{name}.pt"
            if not path.is_file():
                continue
            history = read_checkpoint(path).get("validation") or []
            last_stage = history[-1]["stage"] if history else None
            points = [(h["iteration"], h["val_nrmse"]) for h in history if h["stage"] == last_stage]
            if not points:
                rows.append([system, name, "-", 0] + [""] * 8)
                continue
            its, scores = zip(*points)  # a diverged validation rollout is recorded as inf: it counts
            scores = [float(s) for s in scores]
            half = max(1, len(scores) // 2)
            best1, best2 = min(scores[:half]), min(scores[half:] or scores[:half])
            best = min(range(len(scores)), key=scores.__getitem__)
            quarter = len(scores) - max(1, len(scores) // 4)
            before, tail = min(scores[:quarter] or scores), min(scores[quarter:])
            rows.append([system, name, last_stage, len(scores), f"{its[0]}-{its[-1]}", scores[best],
                         its[best], best1, best2, _gain(best1, best2), _gain(before, tail), scores[-1]])
    return rows


def _run_validation(args: argparse.Namespace, systems: list[str], models: list[str]) -> int:
    from core.errors import WorkbenchError
    from core.io import repo_root, write_result

    folder = Path(args.validation) if args.validation else data_dir() / "checkpoints"
    if not folder.is_dir():
        raise WorkbenchError(f"--validation {str(folder)!r} is not a folder; give a checkpoint folder "
                             "holding <system>/<model>.pt (e.g. data/checkpoints)")
    rows = validation_rows(folder, systems, models)
    if not rows:
        raise WorkbenchError(f"--validation {str(folder)!r} holds no <system>/<model>.pt checkpoint of "
                             f"systems {','.join(systems)} and models {','.join(models)}")
    md = markdown_table(["system", "model", "stage", "validations", "iterations", "best val nRMSE", "at",
                         "best, 1st half", "best, 2nd half", "2nd-half gain", "last-quarter gain", "last"],
                        rows)
    root, where = repo_root(), folder.resolve()
    shown = where.relative_to(root) if where.is_relative_to(root) else folder
    header = (f"# PIMRL validation histories ({shown})\n\n"
              "Validation nRMSE (25-step rollouts from 4 frames of each validation trajectory) recorded "
              "during training, over the last validated stage of each run (PIMRL variants: the joint "
              "stage; micro: the burst pretraining; baselines: their only stage). '2nd-half gain' = 1 - "
              "best of the second half / best of the first; 'last-quarter gain' the same for the last "
              "quarter of the validations against all before it. Near 0 (or below: the best came earlier) "
              "means the run had levelled off; clearly above 0 means it was still improving when its "
              "budget ended (where the cosine schedule's lr is lowest, so only a longer budget can tell how "
              "much is left).\n\n")
    write_result(args.name or "bench_pimrl_validation", header + md, {"rows": rows},
                 {"folder": str(shown), "systems": systems, "models": models})
    print(md)
    return 0


def _run(args: argparse.Namespace) -> int:
    import concurrent.futures
    import multiprocessing

    from core.datasets import DatasetConfig, generate
    from core.errors import unknown
    from core.io import command_line, tqdm_progress, write_result
    from core.physics import SYSTEMS
    from core.surrogates import update_manifest
    from core.training import BUDGETS

    systems = _csv(args.systems, SYSTEMS, SYSTEMS, "system")
    models = _csv(args.models, COMPARED + ABLATED, COMPARED + ABLATED, "model")
    seeds = _seeds(args.seeds)
    if args.speed is not None:
        return _run_speed(args, systems, models)
    if args.validation is not None:
        return _run_validation(args, systems, models)
    if args.budget not in BUDGETS:
        raise unknown("training budget", args.budget, BUDGETS)
    name = args.name or ("bench_pimrl" if args.budget == "cpu" else f"bench_pimrl_{args.budget}")
    for system in systems:  # datasets first, in this process: workers then only read the cache
        with tqdm_progress(f"data {system}") as progress:
            generate(DatasetConfig(system=system, preset=args.preset), progress=progress)
    # costliest first so that the last runs are short
    order = [s for s in ("grayscott3d", "grayscott2d", "fhn2d", "burgers2d", "kdv1d") if s in systems]
    order += [s for s in systems if s not in order]
    runs = [(s, seed, m) for s in order for seed in seeds for m in models]
    t0 = time.perf_counter()
    trained: dict[tuple[str, int, str], dict[str, Any]] = {}
    job = lambda s, seed, m: (s, args.preset, args.budget, seed, m, args.threads, args.device)  # noqa: E731
    if args.jobs <= 1:
        for s, seed, m in runs:
            with tqdm_progress(f"train {m} {s} seed {seed}") as progress:
                trained[(s, seed, m)] = train_one(*job(s, seed, m), progress=progress)
    else:
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            futures = {pool.submit(train_one, *job(s, seed, m)): (s, seed, m) for s, seed, m in runs}
            for fut in concurrent.futures.as_completed(futures):
                trained[futures[fut]] = fut.result()
    train_seconds = time.perf_counter() - t0
    run_seconds = sum(float(v["train_s"]) for v in trained.values())
    import torch

    torch.set_num_threads(1)  # timing protocol: one thread for the model, the solver is numpy
    results: dict[str, Any] = {}
    command = command_line()
    curves_dir = data_dir() / "results" / f"{name}_curves"
    for s in systems:
        per_seed, metric_sets = [], []
        for seed in seeds:
            paths = {m: trained[(s, seed, m)]["path"] for m in models}
            rows, metrics = score_seed(s, args.preset, seed, paths)
            for m in models:
                rows[m]["train_s"] = trained[(s, seed, m)]["train_s"]
                rows[m]["train_diverged_at"] = trained[(s, seed, m)].get("diverged_at")
            per_seed.append(rows)
            metric_sets.append(metrics)
        agg = aggregate(per_seed)
        results[s] = {"per_seed": per_seed, "aggregate": agg, "ratios": ratios(agg),
                      "steps": int(metric_sets[0].sizes["time"]),
                      "curve": {m: np.mean([ms["nrmse"].sel(model=m).values.mean(axis=0)
                                            for ms in metric_sets], axis=0).tolist()
                                for m in [str(v) for v in metric_sets[0]["model"].values]}}
        plot_curves(s, metric_sets, curves_dir / f"{s}.png")
        if args.save_checkpoints:
            entries = {m: ship(s, args.preset, m, trained[(s, seeds[0], m)]["path"], per_seed[0][m], command,
                               per_seed[0]["persistence"]) for m in models}
            update_manifest(s, entries, note="metrics: nRMSE over the first 10/25 steps and the scored "
                            "horizon, RMSE, HCT (corr 0.8) and diverged test trajectories (core.metrics)")
    md = table(results)
    ratio_md = ratio_table(results)
    header = (f"# PIMRL benchmark ({args.preset} preset, {args.budget} budget)\n\n"
              f"Seeds {seeds}; test trajectories rolled out freely over each system's scored horizon "
              "(core.metrics.SCORED_STEPS); nRMSE = RMSE / field std (1 = predicting the mean); mean ± std "
              "over seeds of the mean over test trajectories; a diverged rollout scores inf. "
              "'@10 vs persistence' = nRMSE over the first 10 steps / persistence's. Speedup = solver time "
              f"/ model rollout time over the horizon (batch 1, one thread). Training: {run_seconds:.0f} s "
              f"summed over the {len(runs)} runs ('train s' per run; {args.jobs} jobs at a time), "
              f"{train_seconds:.0f} s wall in this invocation.\n\n")
    write_result(name, header + md + "\n\n## PIMRL / best baseline (nRMSE)\n\n" + ratio_md + "\n",
                 to_jsonable({"results": results, "train_wall_s": train_seconds}),
                 {"preset": args.preset, "budget": args.budget, "train": BUDGETS[args.budget],
                  "systems": systems, "models": models, "seeds": seeds, "jobs": args.jobs,
                  "threads": args.threads})
    print(md)
    print()
    print(ratio_md)
    print(json.dumps({"curves": str(curves_dir)}))
    return 0
