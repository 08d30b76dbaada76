"""`python -m core bench solvers`: reference-solver speed per system and preset;
`python -m core bench convergence`: the solvers' measured convergence orders (core.physics.convergence).

For every system and preset: grid, dt, method, the stability bound, steps per second (best of
`--repeat` timed runs of `--steps` steps after two untimed warm-up steps, one process, numpy only)
and the seconds one dataset trajectory takes, extrapolated from steps/s. The trajectory length is the
number of solver steps `core.datasets` runs per trajectory at its preset defaults:

    steps = warmup + (n_coarse - 1) · k · m        (δt = m·dt, Δt = k·δt)

read from `core.datasets.preset_defaults`, so the two modules cannot disagree.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import numpy as np

#: default timed steps per preset (keeps `--preset cpu` well under a minute on one loaded core)
DEFAULT_STEPS = {"cpu": 200, "paper": 50}


def register(bench_subparsers: Any) -> None:
    """Add `solvers` to `python -m core bench`."""
    p = bench_subparsers.add_parser("solvers", help="reference solver speed per system")
    p.add_argument("--preset", default="cpu", choices=["cpu", "paper", "all"], help="which presets to time")
    p.add_argument("--steps", type=int, default=None,
                   help=f"timed solver steps per system (default {DEFAULT_STEPS})")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per system; the fastest counts")
    p.add_argument("--systems", nargs="*", default=None, help="subset of systems (default: all)")
    p.set_defaults(func=func)
    c = bench_subparsers.add_parser("convergence", help="measured convergence orders of the solvers")
    c.set_defaults(func=convergence)


def convergence(args: argparse.Namespace) -> int:
    """Run every study of core.physics.convergence; print and write data/results/bench_convergence.*."""
    from core.io import markdown_table, tqdm_progress, write_result
    from core.physics import convergence as conv

    jobs = [("fd stencils", conv.fd_stencils), ("burgers rhs", lambda: [conv.burgers_rhs()]),
            ("rk4", lambda: [conv.diffusion_time("rk4")]), ("euler", lambda: [conv.diffusion_time("euler")]),
            ("etdrk4", lambda: [conv.kdv_time("etdrk4")]), ("ifrk4", lambda: [conv.kdv_time("ifrk4")]),
            ("kdv space", lambda: [conv.kdv_space()])]
    studies, transport = [], []
    with tqdm_progress("bench convergence", unit="study") as progress:
        for i, (label, job) in enumerate(jobs):
            progress(i, len(jobs) + 2, label)
            studies += job()
        for j, method in enumerate(("etdrk4", "ifrk4")):
            progress(len(jobs) + j, len(jobs) + 2, f"soliton {method}")
            transport.append(conv.soliton_transport(method))
        progress(len(jobs) + 2, len(jobs) + 2, "done")
    rows = [[st.what, "spectral" if st.expected is None else f"{st.expected:g}", round(st.order, 2),
             " → ".join(f"{h:.3g}" for h in (st.h[0], st.h[-1])),
             " → ".join(f"{e:.2g}" for e in (st.errors[0], st.errors[-1]))] for st in studies]
    md = ("## Reference solvers: measured convergence orders\n\n"
          + markdown_table(["study", "theory", "measured order", "h or dt", "max error"], rows)
          + "\n\nOrder = least-squares slope of log(max error) vs log(h); errors against exact solutions "
            "(see core/physics/convergence.py). For the spectral KdV discretisation the slope is only a "
            "local algebraic rate (far above any finite-difference order).\n\n"
          + "### KdV one-soliton, cpu preset, t = 0..20\n\n"
          + markdown_table(["method", "speed rel. error", "max shape error", "mass drift", "momentum drift"],
                           [[t["method"], f"{t['speed_rel_error']:.2g}", f"{t['shape_error']:.2g}",
                             f"{t['mass_drift']:.2g}", f"{t['momentum_drift']:.2g}"] for t in transport]))
    print(md)
    payload = {"studies": [{"name": st.name, "what": st.what, "h": list(st.h), "errors": list(st.errors),
                            "order": st.order, "expected": st.expected} for st in studies],
               "soliton": transport}
    md_path, _ = write_result("bench_convergence", md, payload, {"studies": [st.name for st in studies]})
    print(f"\nwrote {md_path} (+ .json)")
    return 0


def trajectory_steps(name: str, preset: str) -> dict[str, int]:
    """Solver steps per dataset trajectory at `core.datasets` preset defaults (and its parts)."""
    from core.datasets import preset_defaults

    d = preset_defaults(name, preset)
    recorded = (int(d["n_coarse"]) - 1) * int(d["k"]) * int(d["dt_mult"])
    return {"warmup": int(d["warmup"]), "recorded": recorded, "total": int(d["warmup"]) + recorded,
            "n_coarse": int(d["n_coarse"])}


def time_solver(name: str, preset: str, steps: int, repeat: int = 3, seed: int = 0) -> dict[str, Any]:
    """Best-of-`repeat` wall time of `steps` reference steps from the default IC of `name` at `preset`."""
    from core.physics import get_system, simulate

    system = get_system(name, preset)
    u0 = simulate(system, system.initial_condition(np.random.default_rng(seed)), 2, record_every=2)[-1]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        simulate(system, u0, steps, record_every=steps)
        best = min(best, time.perf_counter() - start)
    return {"system": name, "preset": preset, "grid": "×".join(str(m) for m in system.n),
            "cells": int(np.prod(system.n)), "dt": system.dt, "method": system.method,
            "stability_limit": system.stability_limit(), "timed_steps": steps, "seconds": best,
            "steps_per_s": steps / best, "ms_per_step": 1e3 * best / steps}


def func(args: argparse.Namespace) -> int:
    """Time every (system, preset), print the markdown table and write data/results/bench_solvers.*."""
    from core.errors import WorkbenchError, unknown
    from core.io import markdown_table, tqdm_progress, write_result
    from core.physics import SYSTEMS

    presets = ["cpu", "paper"] if args.preset == "all" else [args.preset]
    systems = list(args.systems) if args.systems else list(SYSTEMS)
    for name in systems:
        if name not in SYSTEMS:
            raise unknown("system", name, SYSTEMS)
    if args.steps is not None and args.steps < 1:
        raise WorkbenchError(f"--steps={args.steps} must be at least 1")
    if args.repeat < 1:
        raise WorkbenchError(f"--repeat={args.repeat} must be at least 1")
    rows, records = [], []
    jobs = [(p, s) for p in presets for s in systems]
    with tqdm_progress("bench solvers", unit="system") as progress:
        for i, (preset, name) in enumerate(jobs):
            progress(i, len(jobs), f"{name} {preset}")
            steps = args.steps or DEFAULT_STEPS[preset]
            rec = time_solver(name, preset, steps, args.repeat)
            traj = trajectory_steps(name, preset)
            rec.update(trajectory_steps=traj["total"], trajectory_warmup=traj["warmup"],
                       trajectory_n_coarse=traj["n_coarse"],
                       seconds_per_trajectory=traj["total"] / rec["steps_per_s"])
            records.append(rec)
            rows.append([name, preset, rec["grid"], rec["method"], rec["dt"], rec["stability_limit"],
                         round(rec["steps_per_s"], 1), rec["ms_per_step"], traj["total"],
                         round(rec["seconds_per_trajectory"], 2)])
        progress(len(jobs), len(jobs), "done")
    headers = ["system", "preset", "grid", "method", "dt", "stable dt <=", "steps/s", "ms/step",
               "steps/trajectory", "s/trajectory"]
    md = ("## Reference solvers: speed per system and preset\n\n" + markdown_table(headers, rows)
          + "\n\nsteps/trajectory = warmup + (n_coarse − 1)·k·m at core.datasets preset defaults; "
          f"s/trajectory = steps/trajectory ÷ steps/s. Single process, numpy {np.__version__}, "
          f"{platform.processor() or platform.machine()}, best of {args.repeat} runs.")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    md += f" Load average during the run: {load:.1f} on {os.cpu_count()} CPUs (shared machines time slower)."
    print(md)
    steps = args.steps or {p: DEFAULT_STEPS[p] for p in presets}
    config = {"presets": presets, "systems": systems, "steps": steps, "repeat": args.repeat}
    md_path, _ = write_result("bench_solvers", md, {"rows": records, "load_average": load,
                                                    "cpu_count": os.cpu_count()}, config)
    print(f"\nwrote {md_path} (+ .json)")
    return 0
