"""Per-step rollout metrics as xarray: RMSE, MAE, relative L2, Pearson correlation, HCT.

Every metric has the signature `metric(pred, target, dt, fields=...) -> DataArray` with dims
`(sample, time[, field])`. `pred` and `target` hold ONLY the predicted frames, steps 1..T after the
given initial frame: the given frame is never scored (a classic way to flatter a model), and the
`time` coordinate is therefore (1..T)·Δt.

Shapes: `pred`, `target` are (sample, time, C, *n) arrays (numpy or torch), C fields on an
ndim-dimensional grid n. For a frame p, truth q with N = C·prod(n) values:

    RMSE   = sqrt( (1/N) Σ (p − q)² )
    MAE    = (1/N) Σ |p − q|
    relL2  = ||p − q||₂ / ||q||₂                      (NaN where ||q||₂ = 0)
    corr_c = Σ (p_c − p̄_c)(q_c − q̄_c) / sqrt(Σ (p_c − p̄_c)² · Σ (q_c − q̄_c)²)   per field c

With `by_field=False` (the default) RMSE/MAE/relL2 pool every field and grid point, and the
correlation is the mean of the per-field correlations: pooling fields with different means (Gray-Scott
u ≈ 1, v ≈ 0) would reward the between-field offset rather than the spatial pattern. A field with zero
spatial variance has an undefined Pearson correlation; we define it as 1 when prediction and truth are
identical and 0 otherwise (no evidence of correlation). A non-finite prediction scores NaN.

HCT (high-correlation time) is the time until the correlation FIRST falls below a threshold (0.8):
if step j (1-based) is the first with corr < threshold, HCT = (j − 1)·Δt, the time of the last
frame that was still well correlated (0 if the first prediction already fails); if it never falls,
HCT is the full horizon T·Δt. A NaN correlation counts as a failure.

Aggregation over a rollout (`summarize`) is explicit, since ambiguous aggregation is a common
complaint: per sample, rollout RMSE = sqrt(mean_t RMSE_t²) (the RMSE over all predicted frames and
grid points) and rollout MAE = mean_t MAE_t; then mean and standard deviation over test samples.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from core.errors import WorkbenchError
from core.io import Progress, no_progress

METRICS: tuple[str, ...] = ("rmse", "mae", "rel_l2", "corr")


def _as_array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < 4:
        raise WorkbenchError(f"{name} must have dims (sample, time, C, *grid) with at least one grid dim; "
                             f"got shape {arr.shape}")
    return arr


def _checked(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray]:
    p, q = _as_array(pred, "pred"), _as_array(target, "target")
    if p.shape != q.shape:
        raise WorkbenchError(f"pred shape {p.shape} differs from target shape {q.shape}; both must be "
                             "(sample, time, C, *grid) holding the predicted steps only")
    return p, q


def _wrap(values: np.ndarray, dt: float, fields: Sequence[str] | None, by_field: bool,
          name: str) -> xr.DataArray:
    """values (S, T) or (S, T, C) -> DataArray with time = (1..T)·dt."""
    if dt <= 0:
        raise WorkbenchError(f"dt={dt} must be positive (the time between predicted frames)")
    n_time = values.shape[1]
    steps = np.arange(1, n_time + 1)
    coords: dict[str, Any] = {"time": dt * steps, "step": ("time", steps)}
    dims = ["sample", "time"]
    if by_field:
        n_fields = values.shape[2]
        names = list(fields) if fields is not None else [f"c{i}" for i in range(n_fields)]
        if len(names) != n_fields:
            raise WorkbenchError(f"fields {names} do not match the {n_fields} channels of the data")
        coords["field"] = names
        dims.append("field")
    return xr.DataArray(values, dims=dims, coords=coords, name=name)


def _quiet(func):
    """Diverged predictions (inf/NaN) are scored as NaN/inf, not warned about at every step."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return func(*args, **kwargs)

    return wrapper


def _space_axes(arr: np.ndarray, by_field: bool) -> tuple[int, ...]:
    """Axes reduced per frame: the grid (and the field axis unless by_field)."""
    first = 3 if by_field else 2
    return tuple(range(first, arr.ndim))


@_quiet
def rmse(pred: Any, target: Any, dt: float = 1.0, fields: Sequence[str] | None = None,
         by_field: bool = False) -> xr.DataArray:
    """Per-step root-mean-square error sqrt(mean (p − q)²) over the grid [and fields]."""
    p, q = _checked(pred, target)
    return _wrap(np.sqrt(np.mean((p - q) ** 2, axis=_space_axes(p, by_field))), dt, fields, by_field, "rmse")


@_quiet
def mae(pred: Any, target: Any, dt: float = 1.0, fields: Sequence[str] | None = None,
        by_field: bool = False) -> xr.DataArray:
    """Per-step mean absolute error mean |p − q| over the grid [and fields]."""
    p, q = _checked(pred, target)
    return _wrap(np.mean(np.abs(p - q), axis=_space_axes(p, by_field)), dt, fields, by_field, "mae")


@_quiet
def rel_l2(pred: Any, target: Any, dt: float = 1.0, fields: Sequence[str] | None = None,
           by_field: bool = False) -> xr.DataArray:
    """Per-step relative L2 error ||p − q||₂ / ||q||₂ (NaN where the truth is identically zero)."""
    p, q = _checked(pred, target)
    axes = _space_axes(p, by_field)
    num = np.sqrt(np.sum((p - q) ** 2, axis=axes))
    den = np.sqrt(np.sum(q**2, axis=axes))
    values = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return _wrap(values, dt, fields, by_field, "rel_l2")


@_quiet
def corr(pred: Any, target: Any, dt: float = 1.0, fields: Sequence[str] | None = None,
         by_field: bool = False) -> xr.DataArray:
    """Per-step Pearson correlation over the grid, per field (mean over fields unless by_field)."""
    p, q = _checked(pred, target)
    axes = tuple(range(3, p.ndim))  # grid axes of (S, T, C, *n)
    dp = p - p.mean(axis=axes, keepdims=True)
    dq = q - q.mean(axis=axes, keepdims=True)
    cov = np.sum(dp * dq, axis=axes)
    var = np.sum(dp**2, axis=axes) * np.sum(dq**2, axis=axes)
    same = np.all(p == q, axis=axes)
    c = np.where(var > 0, cov / np.sqrt(np.where(var > 0, var, 1.0)), np.where(same, 1.0, 0.0))
    c = np.where(np.all(np.isfinite(p), axis=axes), c, np.nan)  # (S, T, C)
    values = c if by_field else c.mean(axis=2)
    return _wrap(values, dt, fields, by_field, "corr")


def per_step(pred: Any, target: Any, dt: float, fields: Sequence[str] | None = None,
             by_field: bool = False) -> xr.Dataset:
    """All metrics per step: variables rmse, mae, rel_l2, corr with dims (sample, time[, field]).

    `pred`, `target`: (sample, time, C, *n), the predicted steps 1..T only; `dt` is Δt between them.
    """
    funcs = {"rmse": rmse, "mae": mae, "rel_l2": rel_l2, "corr": corr}
    return xr.Dataset({name: f(pred, target, dt, fields, by_field) for name, f in funcs.items()})


def hct(corr_da: xr.DataArray, threshold: float = 0.8) -> xr.DataArray:
    """High-correlation time: time until `corr_da` first drops below `threshold` along `time`.

    HCT = (j − 1)·Δt for the first failing step j (1-based), or the full horizon T·Δt if the
    correlation never drops below the threshold; NaN counts as below. Returns the input's dims minus
    `time` (e.g. (sample,) or (model, sample)).
    """
    if not 0.0 < threshold <= 1.0:
        raise WorkbenchError(f"HCT threshold {threshold} must lie in (0, 1]")
    if "time" not in corr_da.dims or corr_da.sizes["time"] == 0:
        raise WorkbenchError("hct needs a correlation with a non-empty 'time' dimension")
    times = corr_da["time"].values
    dt = float(times[0])  # time = (1..T)·Δt, so the first coordinate is Δt
    fails = ~(corr_da >= threshold)  # NaN >= x is False, so NaN fails
    any_fail = fails.any("time")
    first = fails.argmax("time")  # index of the first failure (0 if none, masked below)
    out = xr.where(any_fail, first * dt, float(times[-1]))
    return out.rename("hct").assign_attrs(threshold=threshold)


def summarize(metrics_ds: xr.Dataset, threshold: float = 0.8) -> pd.DataFrame:
    """Per model: rollout RMSE and MAE (mean ± std over samples), HCT mean ± std, final-step rel L2.

    `metrics_ds` has dims (model, sample, time) as returned by `evaluate` (a single model's
    (sample, time) dataset is accepted too).
    """
    ds = metrics_ds if "model" in metrics_ds.dims else metrics_ds.expand_dims(model=["model"])
    with np.errstate(over="ignore", invalid="ignore"):
        rollout_rmse = np.sqrt((ds["rmse"] ** 2).mean("time"))  # (model, sample)
    rollout_mae = ds["mae"].mean("time")
    h = ds["hct"] if "hct" in ds else hct(ds["corr"], threshold)
    rows = []
    for m in ds["model"].values:
        sel = {"model": m}
        rows.append({
            "model": str(m),
            "rmse": float(rollout_rmse.sel(sel).mean()), "rmse_std": float(rollout_rmse.sel(sel).std()),
            "mae": float(rollout_mae.sel(sel).mean()), "mae_std": float(rollout_mae.sel(sel).std()),
            "hct": float(h.sel(sel).mean()), "hct_std": float(h.sel(sel).std()),
            "final_rel_l2": float(ds["rel_l2"].sel(sel).isel(time=-1).mean()),
            "horizon": float(ds["time"].values[-1]), "samples": int(ds.sizes["sample"]),
        })
    return pd.DataFrame(rows).set_index("model")


def band(metric: xr.DataArray, dim: str = "sample") -> xr.Dataset:
    """Mean and standard deviation over `dim` (the spread bands of the error-accumulation plots)."""
    return xr.Dataset({"mean": metric.mean(dim), "std": metric.std(dim), "min": metric.min(dim),
                       "max": metric.max(dim)})


def evaluate(models: Mapping[str, Any], ds: xr.Dataset, split: str = "test", n_steps: int | None = None,
             progress: Progress = no_progress, *, ic_noise: float = 0.0, seed: int = 0,
             threshold: float = 0.8, batch_size: int = 8) -> xr.Dataset:
    """Roll every model out from the first frame of each `split` trajectory and score every step.

    Returns a Dataset with rmse, mae, rel_l2, corr of dims (model, sample, time) and hct of dims
    (model, sample). `ic_noise` = σ adds Gaussian noise of σ × (each field's spatial std of u0) to the
    initial state (seeded by `seed`; the same noisy u0 for every model) — the truth is untouched, so
    this measures sensitivity to the initial condition. A model that diverges keeps NaN/inf metrics
    from that step on (scored, not hidden) and `diverged_step` records it (0 = never).
    """
    from core.datasets import trajectories
    from core.rollout import rollout_batch

    if not models:
        raise WorkbenchError("evaluate needs at least one model")
    if ic_noise < 0:
        raise WorkbenchError(f"ic_noise={ic_noise} must be >= 0 (a noise level relative to the field std)")
    traj = trajectories(ds, split).numpy()  # (S, T, C, *n)
    n_avail = traj.shape[1] - 1
    n_steps = n_avail if n_steps is None else int(n_steps)
    if not 1 <= n_steps <= n_avail:
        raise WorkbenchError(f"n_steps={n_steps} must lie in 1..{n_avail} (the {split} trajectories hold "
                             f"{n_avail} frames after the initial one)")
    u0 = perturb(traj[:, 0], ic_noise, seed)
    target = traj[:, 1:n_steps + 1]
    dt = float(ds.attrs["dt_coarse"])
    fields = [str(f) for f in ds.attrs.get("fields", [])] or None
    if fields is not None and len(fields) != traj.shape[2]:
        fields = None
    parts, names = [], list(models)
    for i, name in enumerate(names):
        progress(i, len(names), f"rolling out {name}")
        pred = rollout_batch(models[name], u0, n_steps, batch_size=batch_size, check_finite=False)
        m = per_step(pred, target, dt, fields)
        m["hct"] = hct(m["corr"], threshold)
        bad = ~np.isfinite(pred).reshape(pred.shape[0], n_steps, -1).all(axis=2)  # (S, T)
        m["diverged_step"] = ("sample", np.where(bad.any(axis=1), bad.argmax(axis=1) + 1, 0))
        parts.append(m)
    progress(len(names), len(names), "done")
    out = xr.concat(parts, dim=xr.DataArray(names, dims="model", name="model"))
    out = out.assign_coords(sample=np.arange(traj.shape[0]))
    return out.assign_attrs(split=split, dt_coarse=dt, ic_noise=ic_noise, seed=seed, threshold=threshold,
                            system=str(ds.attrs.get("system", "")))


def perturb(u0: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """u0 (B, C, *n) + N(0, (σ·std_c)²) noise, std_c the spatial std of field c of each sample."""
    u0 = np.asarray(u0)
    if sigma == 0:
        return u0
    axes = tuple(range(2, u0.ndim))
    scale = u0.std(axis=axes, keepdims=True)  # (B, C, 1, ...)
    rng = np.random.default_rng(seed)
    return (u0 + sigma * scale * rng.standard_normal(u0.shape)).astype(u0.dtype)
