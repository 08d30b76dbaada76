"""Burst-sampled multi-scale trajectories: generation, zarr cache, torch views.

A dataset is an `xarray.Dataset` per `DatasetConfig`, for a `core.physics` system with fields
(u[, v]):

- coarse fields `u`, `v`: (sample, time, [z,] y, x) float32 at t_j = j·Δt, j = 0..n_coarse−1;
- fine bursts `u_fine`, `v_fine`: (sample, burst, step, [z,] y, x) float32; burst b starts at coarse
  index `burst_start[b]` and holds the states at time[burst_start[b]] + i·δt, i = 0..burst_len
  (`fine_time` = i·δt), so step k is the coarse frame burst_start[b] + 1. Bursts sit at the same
  coarse indices in every sample, `n_bursts` of them evenly spread from t = 0 to the last start that
  fits (see `burst_starts`);
- coordinates x, y, z (physical), `split` on `sample` ("train"/"val"/"test", by trajectory);
- attrs: system, preset, params (dict), method, dt, dt_fine, dt_mult, k, dt_coarse, n_coarse,
  burst_len, n_bursts, burst_starts, ic, seed, n_samples, warmup, n_train/n_val/n_test, overrides,
  config, generator_version, key, command, latex, created, fields, ndim, n, lengths, dx.

Preset defaults (`preset_defaults` gives the resolved numbers; δt is the multiple m of the solver
dt nearest to the target, Δt = k·δt, burst_len = 2k fine steps, the warmup is discarded before t = 0;
8 trajectories per dataset by default, split 0.6/0.2/0.2 by trajectory):

| system      | preset | solver dt | δt (m)     | k  | Δt    | n_coarse | T    | bursts | warmup     |
|-------------|--------|-----------|------------|----|-------|----------|------|--------|------------|
| kdv1d       | cpu    | 0.005     | 0.04 (8)   | 5  | 0.2   | 201      | 40   | 4      | 0          |
| burgers2d   | cpu    | 5e-4      | 0.002 (4)  | 5  | 0.01  | 101      | 1    | 4      | 0          |
| fhn2d       | cpu    | 0.002     | 0.002 (1)  | 10 | 0.02  | 101      | 2    | 4      | t=3 (1500) |
| grayscott2d | cpu    | 0.5       | 0.5 (1)    | 10 | 5     | 201      | 1000 | 4      | t=100 (200)|
| grayscott3d | cpu    | 0.5       | 1.0 (2)    | 10 | 10    | 51       | 500  | 4      | t=100 (200)|
| kdv1d       | paper  | 0.005     | 0.04 (8)   | 5  | 0.2   | 401      | 80   | 8      | 0          |
| burgers2d   | paper  | 1e-4      | 0.002 (20) | 5  | 0.01  | 201      | 2    | 8      | 0          |
| fhn2d       | paper  | 0.002     | 0.002 (1)  | 10 | 0.02  | 301      | 6    | 8      | t=3 (1500) |
| grayscott2d | paper  | 0.5       | 0.5 (1)    | 10 | 5     | 401      | 2000 | 8      | t=200 (400)|
| grayscott3d | paper  | 0.5       | 1.0 (2)    | 10 | 10    | 201      | 2000 | 8      | t=100 (200)|

Solver dt values are core.physics's presets at the time of writing (the table above is derived from
targets in physical units, see `core.datasets.config._DEFAULTS`).
"""

from __future__ import annotations

from core.datasets.config import GENERATOR_VERSION, DatasetConfig, burst_starts, preset_defaults
from core.datasets.sampling import simulate_trajectory
from core.datasets.store import dataset_path, generate, list_datasets, open_dataset

#: the torch views import torch (slow); load them on first use so `python -m core --help` stays fast
_LAZY = {"SPLITS", "CoarseWindows", "FineWindows", "stack_fields", "trajectories"}


def __getattr__(name: str):
    if name in _LAZY:
        from core.datasets import views

        return getattr(views, name)
    raise AttributeError(f"module 'core.datasets' has no attribute {name!r}")


__all__ = [
    "GENERATOR_VERSION", "SPLITS", "CoarseWindows", "DatasetConfig", "FineWindows", "burst_starts",
    "dataset_path", "generate", "list_datasets", "open_dataset", "preset_defaults", "simulate_trajectory",
    "stack_fields", "trajectories",
]
