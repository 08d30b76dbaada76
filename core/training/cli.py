"""`python -m core train MODEL ...` and `python -m core evaluate ...` (PIMRL and its baselines)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    t = subparsers.add_parser("train", help="train a PIMRL model or baseline on a generated dataset")
    t.add_argument("model", help="pimrl | percnn | convlstm | fno (ablations: micro, macro, pimrl_nomp)")
    _data_args(t)
    t.add_argument("--iterations", type=int, default=None,
                   help="coarse-stage iterations (default: bench preset)")
    t.add_argument("--pretrain", type=int, default=None,
                   help="micro pretraining iterations (default: bench preset)")
    t.add_argument("--seed", type=int, default=0, help="training seed (weights, window sampling)")
    t.add_argument("--out", type=Path, default=None,
                   help="checkpoint path (default data/runs/<system>/<model>.pt; the shipped ones in "
                        "data/checkpoints are written by `bench pimrl --save-checkpoints`)")
    t.add_argument("--resume", type=Path, default=None, help="continue a run from its checkpoint")
    t.add_argument("--checkpoint-every", type=int, default=0, help="also save every N iterations")
    t.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    t.set_defaults(func=_train)
    e = subparsers.add_parser("evaluate", help="roll out trained models on the test split and score them")
    _data_args(e)
    e.add_argument("--models", default="pimrl,percnn,convlstm,fno", help="comma-separated model names")
    e.add_argument("--checkpoints", type=Path, default=None,
                   help="folder with <system>/<model>.pt (default data/checkpoints, the shipped ones; "
                        "`train` writes to data/runs)")
    e.add_argument("--steps", type=int, default=None, help="rollout horizon in coarse steps (default: all)")
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


def _dataset(args: argparse.Namespace, progress: Any) -> tuple[Any, Any]:
    from core.datasets import DatasetConfig, generate

    kw: dict[str, Any] = {"n_samples": args.samples} if args.samples is not None else {}
    if args.n_coarse is not None:
        kw["n_coarse"] = args.n_coarse
    cfg = DatasetConfig(system=args.system, preset=args.preset, seed=args.data_seed,
                        overrides=_overrides(args.override), **kw)
    return cfg, generate(cfg, progress=progress)


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    from core.errors import unknown
    from core.io import data_dir, tqdm_progress
    from core.pimrl.bench import budget_for, train_config
    from core.pimrl.registry import ABLATIONS, MODELS
    from core.pimrl.training import train

    if args.model not in MODELS + ABLATIONS:
        raise unknown("model", args.model, MODELS + ABLATIONS)
    with tqdm_progress(f"data {args.system}") as progress:
        cfg, ds = _dataset(args, progress)
    config = budget_for(args.model, train_config(args.preset, args.seed, args.iterations, args.pretrain))
    if args.checkpoint_every:
        config = dataclasses.replace(config, checkpoint_every=args.checkpoint_every)
    out = args.out or data_dir() / "runs" / args.system / f"{args.model}.pt"
    with tqdm_progress(f"train {args.model} on {args.system}") as progress:
        res = train(args.model, ds, config, progress=progress, resume=args.resume, device=args.device,
                    out=out)
    print(f"trained {args.model} on {args.system} (dataset {cfg.key()}): {config.total} iterations in "
          f"{res.seconds:.1f} s, final loss {res.history[-1]:.4g}, {res.model.n_parameters()} parameters")
    print(f"checkpoint: {res.checkpoint}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from core.errors import WorkbenchError
    from core.io import data_dir, markdown_table, tqdm_progress
    from core.metrics import evaluate, summarize
    from core.pimrl.base import DataMeta
    from core.pimrl.registry import load_checkpoint

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    if not names:
        raise WorkbenchError(f"--models {args.models!r} names no model")
    with tqdm_progress(f"data {args.system}") as progress:
        _, ds = _dataset(args, progress)
    meta = DataMeta.from_dataset(ds)
    folder = args.checkpoints or data_dir() / "checkpoints"
    models = {n: load_checkpoint(folder / args.system / f"{n}.pt", expect=meta)[0] for n in names}
    with tqdm_progress("evaluate", unit="model") as progress:
        metrics = evaluate(models, ds, args.split, n_steps=args.steps, progress=progress)
    summary = summarize(metrics)
    rows = [[m, r["rmse"], r["rmse_std"], r["mae"], r["hct"], r["hct_std"], int(r["samples"])]
            for m, r in summary.iterrows()]
    print(markdown_table(["model", "RMSE", "± std", "MAE", "HCT", "± std", "samples"], rows))
    return 0
