"""`python -m core train MODEL ...` and `python -m core evaluate ...` (PIMRL, ablations, baselines)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

#: a lower bound on the time of one optimizer step (a 1D model at batch 1 on a fast core); used only
#: to refuse budgets that cannot finish
MIN_SECONDS_PER_ITERATION = 1e-3


def register(subparsers: Any) -> None:
    t = subparsers.add_parser("train", help="train a PIMRL model or baseline on a generated dataset")
    t.add_argument("model", help="pimrl | percnn | convlstm | fno (ablations: micro, macro, pimrl_nomp)")
    _data_args(t)
    t.add_argument("--budget", default="small", help="small | full | paper (core.training.BUDGETS)")
    t.add_argument("--iterations", type=float, default=None, help="joint/coarse-stage iterations")
    t.add_argument("--pretrain", type=float, default=None, help="micro pretraining iterations")
    t.add_argument("--macro-pretrain", type=float, default=None, help="macro pretraining iterations")
    t.add_argument("--seed", type=int, default=0, help="training seed (weights, window sampling)")
    t.add_argument("--out", type=Path, default=None,
                   help="checkpoint path (default data/runs/<system>/<model>.pt, which `evaluate`, the "
                        "notebooks and the app then use before the shipped data/checkpoints)")
    t.add_argument("--resume", type=Path, default=None, help="continue a run from its checkpoint")
    t.add_argument("--checkpoint-every", type=int, default=0, help="also save every N iterations")
    t.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    t.set_defaults(func=_train)
    e = subparsers.add_parser("evaluate", help="roll out trained models on the test split and score them "
                                               "beside persistence and the mean field")
    _data_args(e)
    e.add_argument("--models", default="pimrl,percnn,convlstm,fno",
                   help="comma-separated names (learned models, euler, rk4); the references persistence "
                        "and mean_field are always added")
    e.add_argument("--checkpoints", type=Path, default=None,
                   help="folder with <system>/<model>.pt (default: data/runs if you trained the model, "
                        "else the shipped data/checkpoints)")
    e.add_argument("--steps", type=int, default=None,
                   help="rollout horizon in coarse steps (default: the system's scored horizon)")
    e.add_argument("--split", default="test", help="train | val | test")
    e.set_defaults(func=_evaluate)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--system", required=True, help="kdv1d | burgers2d | fhn2d | grayscott2d | grayscott3d")
    p.add_argument("--preset", default="cpu", help="cpu | paper")
    p.add_argument("--samples", type=int, default=None, help="trajectories in the dataset (preset default)")
    p.add_argument("--data-seed", type=int, default=0, help="dataset seed")
    p.add_argument("--n-coarse", type=int, default=None, help="coarse frames per trajectory (preset default)")
    p.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                   help="system override, e.g. n=32,32 (repeatable; same as `data generate`)")


def _overrides(items: list[str]) -> tuple[tuple[str, Any], ...]:
    """`n=32,32` -> ("n", (32, 32)); numbers become int/float, comma lists tuples."""
    from core.errors import WorkbenchError

    out = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise WorkbenchError(f"--override {item!r} must look like KEY=VALUE, e.g. n=32,32")
        parts = [_number(t.strip()) for t in text.split(",")]
        out.append((key.strip(), tuple(parts) if "," in text else parts[0]))
    return tuple(out)


def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _dataset_config(args: argparse.Namespace) -> Any:
    from core.datasets import DatasetConfig

    kw: dict[str, Any] = {"n_samples": args.samples} if args.samples is not None else {}
    if args.n_coarse is not None:
        kw["n_coarse"] = args.n_coarse
    return DatasetConfig(system=args.system, preset=args.preset, seed=args.data_seed,
                         overrides=_overrides(args.override), **kw)


def _iterations(name: str, value: float | None) -> int | None:
    from core.limits import check_number, check_work

    if value is None:
        return None
    n = check_number(name, value, minimum=0, integer=True)
    check_work(f"{name}={n}", n * MIN_SECONDS_PER_ITERATION,
               f"at >= {MIN_SECONDS_PER_ITERATION:g} s per optimizer step", f"lower {name}")
    return n


def _checked_out(path: Path) -> Path:
    """Refuse an --out that is a folder or cannot be written, before any work."""
    from core.errors import WorkbenchError
    from core.io import ensure_writable_dir

    path = Path(path)
    if path.is_dir():
        raise WorkbenchError(f"--out {str(path)!r} is a folder; give a checkpoint file path such as "
                             f"{str(path / 'model.pt')!r}")
    ensure_writable_dir(path.parent)
    return path


def _train(args: argparse.Namespace) -> int:
    from core.io import tqdm_progress
    from core.surrogates import LEARNED, check_names, default_config, runs_path
    from core.training import train, train_config

    check_names([args.model])
    if args.model not in LEARNED:
        from core.errors import unknown

        raise unknown("learned model", args.model, LEARNED)
    changes = {"iterations": _iterations("--iterations", args.iterations),
               "pretrain_iterations": _iterations("--pretrain", args.pretrain),
               "macro_iterations": _iterations("--macro-pretrain", args.macro_pretrain),
               "checkpoint_every": args.checkpoint_every or None}
    cfg = _dataset_config(args)
    out = _checked_out(args.out or runs_path(args.system, args.model))
    if args.device is not None:
        from core.io import torch_device

        torch_device(args.device)  # an unknown device is refused before the data are generated
    from core.datasets import generate

    with tqdm_progress(f"data {args.system}") as progress:
        ds = generate(cfg, progress=progress)
    from core.pimrl.base import DataMeta

    model_cfg = default_config(args.model, DataMeta.from_dataset(ds))
    config = train_config(args.budget, args.seed, cycle=getattr(model_cfg, "cycle", None), system=args.system,
                          **changes)
    with tqdm_progress(f"train {args.model} on {args.system}") as progress:
        res = train(args.model, ds, config, progress=progress, resume=args.resume, device=args.device,
                    out=out)
    print(f"trained {args.model} on {args.system} (dataset {cfg.key()}): {res.iterations} iterations in "
          f"{res.seconds:.1f} s, best validation nRMSE {res.best.get('score', float('nan')):.4g} at "
          f"iteration {res.best.get('iteration')}, {res.model.n_parameters()} parameters")
    print(f"checkpoint: {res.checkpoint}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from core.errors import WorkbenchError
    from core.io import markdown_table, tqdm_progress
    from core.metrics import evaluate, rank, summarize
    from core.surrogates import REFERENCES, check_names, load_surrogates

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if not names:
        raise WorkbenchError(f"--models {args.models!r} names no model")
    check_names(names)  # before any dataset is generated
    names += [r for r in REFERENCES if r not in names]
    cfg = _dataset_config(args)
    from core.datasets import generate

    with tqdm_progress(f"data {args.system}") as progress:
        ds = generate(cfg, progress=progress)
    models, problems = load_surrogates(ds, names, checkpoints=args.checkpoints)
    if problems:
        raise WorkbenchError(next(iter(problems.values())))
    from core.metrics import scored_horizon

    steps = args.steps if args.steps is not None else scored_horizon(args.system, ds.sizes["time"] - 1)
    with tqdm_progress("evaluate", unit="model") as progress:
        metrics = evaluate(models, ds, args.split, n_steps=steps, progress=progress)
    summary = rank(summarize(metrics))
    rows = [[m, f"{r['diverged']}/{r['samples']}", r.get("nrmse_10", float("nan")),
             r.get("nrmse_25", float("nan")), r["nrmse"], r["rmse"], r["mae"], r["hct"]]
            for m, r in summary.iterrows()]
    print(f"{args.system}: {args.split} split, {steps} steps (Δt = {metrics.attrs['dt_coarse']:g})")
    print(markdown_table(["model", "diverged", "nRMSE@10", "nRMSE@25", "nRMSE", "RMSE", "MAE", "HCT"], rows))
    return 0
