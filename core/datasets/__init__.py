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

Preset defaults (δt = m·solver dt, Δt = k·δt, burst_len = 2k, warmup in solver steps; see
`preset_defaults` for the resolved numbers):

| system      | preset | m  | k  | n_coarse | n_bursts | warmup |
|-------------|--------|----|----|----------|----------|--------|
| kdv1d       | cpu    | 10 | 5  | 201      | 4        | 0      |
| burgers2d   | cpu    | 4  | 5  | 101      | 4        | 0      |
| fhn2d       | cpu    | 1  | 10 | 101      | 4        | 1000   |
| grayscott2d | cpu    | 2  | 10 | 201      | 4        | 2000   |
| grayscott3d | cpu    | 2  | 10 | 101      | 4        | 1000   |
"""

from __future__ import annotations

from core.datasets.config import GENERATOR_VERSION, DatasetConfig, burst_starts, preset_defaults
from core.datasets.sampling import simulate_trajectory
from core.datasets.store import dataset_path, generate, list_datasets, open_dataset
from core.datasets.views import SPLITS, CoarseWindows, FineWindows, stack_fields, trajectories

__all__ = [
    "GENERATOR_VERSION", "SPLITS", "CoarseWindows", "DatasetConfig", "FineWindows", "burst_starts",
    "dataset_path", "generate", "list_datasets", "open_dataset", "preset_defaults", "simulate_trajectory",
    "stack_fields", "trajectories",
]
