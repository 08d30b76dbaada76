"""`python -m core data generate | list`."""

from __future__ import annotations

import argparse
import ast
import contextlib
import time
from pathlib import Path
from typing import Any


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="generate and list burst-sampled PDE datasets")
    sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True

    gen = sub.add_parser("generate", help="simulate trajectories and cache them as zarr")
    gen.add_argument("system", help="physics system, e.g. burgers2d")
    gen.add_argument("--preset", default="cpu", help="cpu (small, fast) or paper")
    gen.add_argument("--samples", type=int, default=8, help="number of trajectories (>= 2)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--k", type=int, default=None, help="coarse step Δt = k·δt")
    gen.add_argument("--dt-fine", type=float, default=None, help="fine step δt (a multiple of the solver dt)")
    gen.add_argument("--n-coarse", type=int, default=None, help="coarse frames per trajectory, incl. t=0")
    gen.add_argument("--n-bursts", type=int, default=None)
    gen.add_argument("--burst-len", type=int, default=None, help="fine steps per burst (>= k)")
    gen.add_argument("--warmup", type=int, default=None, help="solver steps discarded before t=0")
    gen.add_argument("--ic", default=None, help="initial-condition kind of the system")
    gen.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="system override, e.g. --set n=32,32 --set nu=0.01 (repeatable)")
    gen.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://host:port) or 'local'")
    gen.add_argument("--cache", type=Path, default=None,
                     help="cache folder (default: $WORKBENCH_CACHE or data/cache)")
    gen.add_argument("--overwrite", action="store_true", help="regenerate even if the cache holds it")
    gen.set_defaults(func=_generate)

    lst = sub.add_parser("list", help="table of cached datasets, each checked chunk by chunk")
    lst.add_argument("--cache", type=Path, default=None)
    lst.add_argument("--quick", action="store_true",
                     help="check chunk presence and sizes only, not their bytes (CRC-32)")
    lst.set_defaults(func=_list)


def _value(text: str) -> Any:
    """'32,32' -> (32, 32); '0.01' -> 0.01; 'rk4' -> 'rk4'."""
    parts = [p.strip() for p in text.split(",")]
    vals = []
    for p in parts:
        try:
            vals.append(ast.literal_eval(p))
        except (ValueError, SyntaxError):
            vals.append(p)
    return tuple(vals) if len(vals) > 1 else vals[0]


def _overrides(items: list[str]) -> tuple[tuple[str, Any], ...]:
    from core.errors import WorkbenchError

    out = []
    for item in items:
        name, sep, val = item.partition("=")
        if not sep or not name.strip():
            raise WorkbenchError(f"--set {item!r} must look like NAME=VALUE, e.g. --set n=32,32")
        out.append((name.strip(), _value(val)))
    return tuple(out)


def _generate(args: argparse.Namespace) -> int:
    from core.datasets import DatasetConfig, generate
    from core.io import tqdm_progress

    cfg = DatasetConfig(system=args.system, preset=args.preset, n_samples=args.samples, seed=args.seed,
                        dt_fine=args.dt_fine, k=args.k, n_coarse=args.n_coarse, n_bursts=args.n_bursts,
                        burst_len=args.burst_len, ic=args.ic, warmup=args.warmup,
                        overrides=_overrides(args.set)).resolved()
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        bar = None

        def progress(done: int, total: int, message: str = "") -> None:
            # the bar opens with the first solver step, so refused inputs and cache hits print none
            nonlocal bar
            if bar is None:
                bar = stack.enter_context(tqdm_progress(f"{cfg.system} {cfg.preset}", unit="step"))
            bar(done, total, message)

        ds = generate(cfg, progress=progress, scheduler=args.scheduler, cache=args.cache,
                      overwrite=args.overwrite)
    seconds = time.perf_counter() - t0
    a = ds.attrs
    grid = "x".join(str(n) for n in a["n"])
    print(ds.encoding.get("source") or _path(cfg, args.cache))
    print(f"{a['system']} {a['preset']}: {a['n_samples']} trajectories ({a['n_train']} train / "
          f"{a['n_val']} val / {a['n_test']} test) x {a['n_coarse']} coarse frames at "
          f"dt_coarse={a['dt_coarse']:g} (k={a['k']}, dt_fine={a['dt_fine']:g}), "
          f"{a['n_bursts']} bursts x {a['burst_len']} fine steps, "
          f"grid {grid}, key {a['key']}, {seconds:.1f} s")
    return 0


def _path(cfg, cache) -> Path:
    from core.datasets import dataset_path

    return dataset_path(cfg, cache)


def _short_error(error: str, path: str) -> str:
    """The error without the store's path (the table's last column) and the regenerate hint."""
    for prefix in (f"dataset store {path!r} is ", f"dataset {path!r} is ", f"dataset {path!r} "):
        error = error.replace(prefix, "", 1)
    error = error.split("; delete ", 1)[0]
    return error if len(error) <= 110 else error[:107] + "..."


def _list(args: argparse.Namespace) -> int:
    from core.datasets import list_datasets
    from core.io import cache_dir

    rows = list_datasets(args.cache, verify="size" if args.quick else "checksum")
    folder = args.cache or cache_dir()
    if not rows:
        print(f"no datasets in {folder}")
        return 0
    head = ["key", "system", "preset", "samples", "coarse", "bursts", "grid", "MB", "created", "path"]
    table = []
    for r in rows:
        sz = r["sizes"]
        grid = "x".join(str(sz[d]) for d in ("z", "y", "x") if d in sz) or "-"
        status = r["created"] if r["valid"] else "INVALID: " + _short_error(r["error"], r["path"])
        table.append([r["key"], r["system"], r["preset"], r["n_samples"], sz.get("time", "-"),
                      f"{sz.get('burst', '-')}x{sz.get('step', 1) - 1}" if r["valid"] else "-", grid,
                      f"{r['bytes'] / 1e6:.1f}", status, r["path"]])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    for row in [head, *table]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    return 0
