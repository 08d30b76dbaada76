"""Simulate burst-sampled trajectories and write them, atomically, as one zarr store per config.

One trajectory is simulated once at the solver step; frames are recorded every Δt everywhere and
every δt inside the bursts, from the *same* run, so burst frame `k` of a burst that starts at coarse
index b is bit-for-bit the coarse frame b + 1. Trajectory s starts from
`initial_condition(np.random.default_rng([seed, s]))`: the result does not depend on whether the
trajectories run in this process or as one Dask task each.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.cluster import check_scheduler as check_scheduler  # re-exported (core.datasets.store)
from core.cluster import run_jobs
from core.datasets.config import GENERATOR_VERSION, DatasetConfig, burst_starts
from core.errors import WorkbenchError
from core.io import Progress, command_line, no_progress


def _fine_intervals(config: DatasetConfig) -> np.ndarray:
    """need[j] is True when coarse interval j → j+1 holds fine frames of some burst."""
    need = np.zeros(config.n_coarse - 1, dtype=bool)
    span = math.ceil(config.burst_len / config.k)  # coarse intervals one burst touches
    for b in burst_starts(config):
        need[b:b + span] = True
    return need


def _segments(need: np.ndarray) -> list[tuple[int, int, bool]]:
    """Maximal runs [a, b) of coarse intervals with the same `need` flag."""
    out, a = [], 0
    for j in range(1, len(need) + 1):
        if j == len(need) or need[j] != need[a]:
            out.append((a, j, bool(need[a])))
            a = j
    return out


def simulate_trajectory(config: DatasetConfig, sample: int,
                        progress: Progress = no_progress) -> dict[str, Any]:
    """Simulate trajectory `sample` of `config` (resolved first).

    One run at the solver dt from `initial_condition(default_rng([seed, sample]))`, after `warmup`
    discarded steps. Returns `coarse` (n_coarse, C, *n) and `fine` (n_bursts, burst_len + 1, C, *n),
    both float32, where fine[b, i] is the state at time[burst_start[b]] + i·δt.
    """
    from core.physics import simulate

    config = config.resolved()
    system = config.solver()
    m = round(config.dt_fine / system.dt)
    km = config.k * m  # solver steps per coarse interval
    total = config.warmup + (config.n_coarse - 1) * km
    done = 0

    def sub(d: int, t: int, msg: str = "") -> None:
        progress(done + d, total, msg or f"trajectory {sample}")

    rng = np.random.default_rng([config.seed, sample])
    state = np.asarray(system.initial_condition(rng, config.ic), dtype=np.float64)  # (C, *n)
    try:
        if config.warmup:
            state = simulate(system, state, config.warmup, record_every=config.warmup, progress=sub,
                             t0=-config.warmup * system.dt)[-1]
            done += config.warmup
        coarse = np.empty((config.n_coarse, *state.shape), dtype=np.float32)  # (T, C, *n)
        coarse[0] = state
        fine: dict[int, np.ndarray] = {}  # fine index -> frame, only inside bursts
        for a, b, dense in _segments(_fine_intervals(config)):
            every = m if dense else km
            frames = simulate(system, state, (b - a) * km, record_every=every, progress=sub,
                              t0=a * config.k * config.dt_fine)
            if dense:  # frames[i] is fine index a·k + i
                fine.update({a * config.k + i: f for i, f in enumerate(frames)})
                coarse[a + 1:b + 1] = frames[config.k::config.k]
            else:
                coarse[a + 1:b + 1] = frames[1:]
            state = frames[-1]
            done += (b - a) * km
    except WorkbenchError as exc:
        raise WorkbenchError(f"trajectory {sample} of {config.system}: {exc}") from exc
    starts = burst_starts(config)
    bursts = np.stack([np.stack([fine[s * config.k + i] for i in range(config.burst_len + 1)])
                       for s in starts]).astype(np.float32)  # (B, L+1, C, *n)
    progress(total, total, f"trajectory {sample} done")
    return {"coarse": coarse, "fine": bursts}


def split_labels(config: DatasetConfig) -> np.ndarray:
    """'train' / 'val' / 'test' per trajectory: the first n_train, then n_val, then n_test."""
    n_train, n_val, n_test = config.split_counts
    return np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test, dtype=object)


def _attrs(config: DatasetConfig, system) -> dict[str, Any]:
    """Provenance and physics, everything a reader needs without the config (zarr attrs are JSON)."""
    n_train, n_val, n_test = config.split_counts
    return {
        "system": config.system, "preset": config.preset, "fields": list(system.fields),
        "ndim": system.ndim, "n": list(system.n), "lengths": list(system.lengths), "dx": list(system.dx),
        "params": {k: float(v) for k, v in system.params().items()},
        "method": system.method, "dt": system.dt, "dt_fine": config.dt_fine,
        "dt_mult": round(config.dt_fine / system.dt), "k": config.k, "dt_coarse": config.k * config.dt_fine,
        "n_coarse": config.n_coarse, "burst_len": config.burst_len, "n_bursts": config.n_bursts,
        "burst_starts": burst_starts(config), "ic": config.ic, "seed": config.seed,
        "n_samples": config.n_samples, "warmup": config.warmup, "n_train": n_train, "n_val": n_val,
        "n_test": n_test, "overrides": config.to_dict()["overrides"], "config": config.to_dict(),
        "generator_version": GENERATOR_VERSION, "key": config.key(), "command": command_line(),
        "latex": system.latex, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def template(config: DatasetConfig):
    """The dataset's structure with lazy zero data (chunked one trajectory per chunk)."""
    import dask.array as da
    import xarray as xr

    system = config.solver()
    dims, n = tuple(system.dims), tuple(system.n)
    starts = np.array(burst_starts(config), dtype=np.int64)
    coords = {
        "sample": np.arange(config.n_samples), "split": ("sample", split_labels(config)),
        "time": np.arange(config.n_coarse) * config.k * config.dt_fine,
        "burst": np.arange(config.n_bursts), "burst_start": ("burst", starts),
        "burst_time": ("burst", starts * config.k * config.dt_fine),
        "step": np.arange(config.burst_len + 1),
        "fine_time": ("step", np.arange(config.burst_len + 1) * config.dt_fine),
        **{d: np.asarray(c, dtype=np.float64) for d, c in system.coords().items()},
    }
    coarse_shape = (config.n_samples, config.n_coarse, *n)
    fine_shape = (config.n_samples, config.n_bursts, config.burst_len + 1, *n)
    data = {}
    for f in system.fields:
        data[f] = (("sample", "time", *dims),
                   da.zeros(coarse_shape, chunks=(1, *coarse_shape[1:]), dtype=np.float32),
                   {"long_name": f, "sampling": "coarse, every dt_coarse"})
        data[f"{f}_fine"] = (("sample", "burst", "step", *dims),
                             da.zeros(fine_shape, chunks=(1, *fine_shape[1:]), dtype=np.float32),
                             {"long_name": f, "sampling": "bursts, every dt_fine"})
    return xr.Dataset(data, coords=coords, attrs=_attrs(config, system))


def _write_sample(store: Path, fields: tuple[str, ...], s: int, result: dict[str, np.ndarray], ds) -> None:
    """Write trajectory s into its region of the (already templated) store."""
    import xarray as xr

    part = {}
    for c, f in enumerate(fields):
        part[f] = (ds[f].dims, result["coarse"][None, :, c])  # (1, T, *n)
        part[f"{f}_fine"] = (ds[f"{f}_fine"].dims, result["fine"][None, :, :, c])  # (1, B, L+1, *n)
    xr.Dataset(part).to_zarr(store, region={"sample": slice(s, s + 1)}, consolidated=False)


def _in_process(config: DatasetConfig, progress: Progress) -> Iterator[tuple[int, dict]]:
    per = config.warmup + (config.n_coarse - 1) * config.k * round(config.dt_fine / config.solver().dt)
    total = per * config.n_samples
    for s in range(config.n_samples):
        def sub(d: int, t: int, msg: str = "", s=s) -> None:
            progress(s * per + d, total, f"trajectory {s + 1}/{config.n_samples}")
        yield s, simulate_trajectory(config, s, sub)


#: optimistic solver throughput for lower-bound time estimates: state values (grid points x fields)
#: advanced per second, plus a floor per step (the Python loop). Measured rates on the development
#: machines are 10-100x lower (data/results/bench_solvers.md), so a refusal is never a close call.
VALUES_PER_SECOND = 5e7
SECONDS_PER_STEP = 1e-6


def estimate(config: DatasetConfig) -> dict[str, Any]:
    """What generating `config` needs, from the config alone (no solver step is run).

    `steps`: solver steps over all trajectories; `seconds`: a lower bound on the time (see
    VALUES_PER_SECOND); `memory_bytes`: one trajectory in memory (float64 frames from the solver,
    float32 copies) plus the per-sample metadata; `disk_bytes`: the uncompressed store.
    Python integers throughout, so absurd inputs give huge numbers, not overflow errors.
    """
    config = config.resolved()
    system = config.solver()
    values = len(system.fields) * math.prod(system.n)
    m = round(config.dt_fine / system.dt)
    per_trajectory = config.warmup + (config.n_coarse - 1) * config.k * m
    steps = per_trajectory * config.n_samples
    fine_frames = config.n_bursts * (config.burst_len + 1)
    try:
        seconds = float(steps) * (SECONDS_PER_STEP + values / VALUES_PER_SECOND)
    except OverflowError:
        seconds = math.inf
    return {"values": values, "steps_per_trajectory": per_trajectory, "steps": steps, "seconds": seconds,
            "memory_bytes": values * (12 * config.n_coarse + 16 * fine_frames) + 96 * config.n_samples,
            "disk_bytes": 4 * values * (config.n_coarse + fine_frames) * config.n_samples}


def _sci(n: int | float) -> str:
    """`2.1e+303` for any size of integer (float() would overflow past 1e308)."""
    try:
        return f"{float(n):.2g}"
    except OverflowError:
        digits = str(int(n))
        return f"{digits[0]}.{digits[1]}e+{len(digits) - 1}"


def check_budget(config: DatasetConfig, folder: Path) -> dict[str, Any]:
    """Refuse, before anything runs, a dataset that does not fit in memory or on disk, or would take
    longer than `core.limits.MAX_SECONDS`; returns `estimate(config)`."""
    from core.limits import check_disk, check_memory, check_work

    config = config.resolved()
    est = estimate(config)
    what = (f"the {config.system} dataset ({config.n_samples} trajectories x {config.n_coarse} coarse "
            f"frames, dt_fine={config.dt_fine:g}, grid {'x'.join(map(str, config.solver().n))})")
    hint = "lower --samples, --n-coarse, --dt-fine or the grid"
    check_memory(what, est["memory_bytes"], "lower --samples, --n-coarse, --n-bursts or the grid")
    check_disk(what, est["disk_bytes"], folder, "lower --samples or --n-coarse, or free disk space")
    check_work(what, est["seconds"],
               f"{_sci(est['steps'])} solver steps of {est['values']} values at >= "
               f"{VALUES_PER_SECOND:.0e} values/s", hint)
    return est


def _trajectory(s: int, config: DatasetConfig) -> dict:
    return simulate_trajectory(config, s)


def _on_dask(config: DatasetConfig, scheduler: Any, progress: Progress) -> Iterator[tuple[int, dict]]:
    """One task per trajectory on a Dask cluster (`core.cluster.run_jobs`); yields results as they
    complete."""
    n = config.n_samples
    per = config.warmup + (config.n_coarse - 1) * config.k * round(config.dt_fine / config.solver().dt)
    for done, (s, result) in enumerate(run_jobs(_trajectory, range(n), scheduler, shared=config), 1):
        progress(done * per, config.n_samples * per, f"trajectory {done}/{config.n_samples} (dask)")
        yield s, result
