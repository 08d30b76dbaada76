"""Per-step rollout metrics as xarray: RMSE, normalised RMSE, MAE, relative L2, correlation, HCT.

Every metric has the signature `metric(pred, target, dt, fields=...) -> DataArray` with dims
`(sample, time[, field])`. `pred` and `target` hold ONLY the predicted frames, steps 1..T after the
given initial frame: the given frame is never scored (a classic way to flatter a model), and the
`time` coordinate is therefore (1..T)·Δt.

Shapes: `pred`, `target` are (sample, time, C, *n) arrays (numpy or torch), C fields on an
ndim-dimensional grid n. For a frame p, truth q with N = C·prod(n) values:

    RMSE   = sqrt( (1/N) Σ (p − q)² )
    nRMSE  = sqrt( (1/C) Σ_c MSE_c / σ_c² )          σ_c: std of field c over the whole target set
    MAE    = (1/N) Σ |p − q|
    relL2  = ||p − q||₂ / ||q||₂                      (NaN where ||q||₂ = 0)
    corr_c = Σ (p_c − p̄_c)(q_c − q̄_c) / sqrt(Σ (p_c − p̄_c)² · Σ (q_c − q̄_c)²)   per field c

nRMSE is The Well's VRMSE with one σ per field for the whole scored set (not per frame, whose
variance can be near zero): 1 means no better than predicting each field's mean value; it makes
systems and fields comparable. With `by_field=False` (the default) RMSE/MAE/relL2 pool every field
and grid point, and the correlation is the mean of the per-field correlations: pooling fields with
different means (Gray-Scott u ≈ 1, v ≈ 0) would reward the between-field offset rather than the
spatial pattern. A field with zero spatial variance has an undefined Pearson correlation; we define
it as 1 when prediction and truth are identical and 0 otherwise.

Divergence is scored, never hidden. A rollout has DIVERGED at step s when its frame s is non-finite
or exceeds `BLOWUP` × the largest |value| of its true trajectory; from step s on, its RMSE, nRMSE,
MAE and relL2 are +inf and its correlation NaN (which counts as a failure for HCT). Every mean over
samples or steps propagates inf/NaN (no NaN is skipped), so a model that diverges on one trajectory
scores inf, and `rank` puts any model that diverged below every model that did not.

HCT (high-correlation time) is the time until the correlation FIRST falls below a threshold (0.8):
if step j (1-based) is the first with corr < threshold, HCT = (j − 1)·Δt, the time of the last
frame that was still well correlated (0 if the first prediction already fails); if it never falls,
HCT is the full horizon T·Δt.

Aggregation over a rollout (`summarize`) is explicit, since ambiguous aggregation is a common
complaint: per sample and window (first 10 steps, first 25, the whole scored horizon), rollout
RMSE = sqrt(mean_t RMSE_t²) (the RMSE over all predicted frames and grid points in the window),
rollout nRMSE likewise, rollout MAE = mean_t MAE_t; then mean and standard deviation over samples.
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

METRICS: tuple[str, ...] = ("rmse", "nrmse", "mae", "rel_l2", "corr")
#: a finite frame larger than BLOWUP × max |truth| of its trajectory counts as diverged
BLOWUP = 10.0
#: the windows (leading steps) every summary reports beside the whole horizon
WINDOWS: tuple[int, ...] = (10, 25)

#: Scored horizon per system, in coarse steps: long enough to test long rollouts, short enough that
#: it measures prediction rather than climatology (measured on the cpu test split with the two
#: reference predictors, nRMSE persistence / mean field):
#: - kdv1d 100 (t = 20): solitons keep moving; both references stay above 1.1 throughout.
#: - burgers2d 50 (t = 0.5): afterwards viscous decay smooths the field and the mean field's nRMSE
#:   falls below 1 (0.96 at step 50, 0.74 at 100): late steps would reward predicting decay to zero.
#: - fhn2d 50 (t = 1): persistence reaches 1.03 at step 50 and 2.65 at 100.
#: - grayscott2d 100 (t = 500): the spots fill the domain; the mean field drops to 0.85 by step 100.
#: - grayscott3d 50 (t = 500): the whole cpu trajectory.
SCORED_STEPS: dict[str, int] = {"kdv1d": 100, "burgers2d": 50, "fhn2d": 50, "grayscott2d": 100,
                                "grayscott3d": 50}


def scored_horizon(system: str, available: int) -> int:
    """The scored horizon of `system` (SCORED_STEPS), capped at the `available` predicted frames."""
    return max(1, min(SCORED_STEPS.get(system, available), available))


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


def field_scale(target: Any) -> np.ndarray:
    """σ_c: the std of each field over the whole target set (sample, time, grid): (C,)."""
    q = _as_array(target, "target")
    axes = (0, 1) + tuple(range(3, q.ndim))
    return np.sqrt(np.var(q, axis=axes))


@_quiet
def nrmse(pred: Any, target: Any, dt: float = 1.0, fields: Sequence[str] | None = None,
          by_field: bool = False, scale: Any = None) -> xr.DataArray:
    """Per-step normalised RMSE sqrt(mean_c MSE_c / σ_c²); σ_c = `scale` or `field_scale(target)`."""
    p, q = _checked(pred, target)
    sigma = field_scale(q) if scale is None else np.asarray(scale, dtype=np.float64)
    if sigma.shape != (p.shape[2],) or not np.all(sigma > 0):
        raise WorkbenchError(f"scale {sigma.tolist()} must hold one positive std per field ({p.shape[2]})")
    mse = np.mean((p - q) ** 2, axis=tuple(range(3, p.ndim))) / sigma**2  # (S, T, C)
    values = np.sqrt(mse) if by_field else np.sqrt(mse.mean(axis=2))
    return _wrap(values, dt, fields, by_field, "nrmse")


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


def diverged_step(pred: Any, target: Any, blowup: float = BLOWUP) -> np.ndarray:
    """Per sample, the first diverged step (1-based; 0 = never): a non-finite frame, or one whose
    largest |value| exceeds `blowup` × the largest |value| of the sample's true frames."""
    p, q = _checked(pred, target)
    flat_p = p.reshape(p.shape[0], p.shape[1], -1)
    bound = blowup * np.max(np.abs(q.reshape(q.shape[0], -1)), axis=1)  # (S,)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(flat_p).all(axis=2) | (np.nanmax(np.abs(np.nan_to_num(flat_p, nan=0.0)), axis=2)
                                                  > bound[:, None])
    return np.where(bad.any(axis=1), bad.argmax(axis=1) + 1, 0)


def per_step(pred: Any, target: Any, dt: float, fields: Sequence[str] | None = None,
             by_field: bool = False, scale: Any = None) -> xr.Dataset:
    """All metrics per step: rmse, nrmse, mae, rel_l2, corr with dims (sample, time[, field]), and
    `diverged_step` (sample,). From a sample's diverged step on, its errors are inf, its corr NaN.

    `pred`, `target`: (sample, time, C, *n), the predicted steps 1..T only; `dt` is Δt between them;
    `scale`: the per-field std for nRMSE (default: from `target`).
    """
    p, q = _checked(pred, target)
    out = xr.Dataset({"rmse": rmse(p, q, dt, fields, by_field),
                      "nrmse": nrmse(p, q, dt, fields, by_field, scale),
                      "mae": mae(p, q, dt, fields, by_field), "rel_l2": rel_l2(p, q, dt, fields, by_field),
                      "corr": corr(p, q, dt, fields, by_field)})
    first = diverged_step(p, q)
    gone = xr.DataArray((first[:, None] > 0) & (np.arange(1, p.shape[1] + 1)[None, :] >= first[:, None]),
                        dims=("sample", "time"))
    for name in ("rmse", "nrmse", "mae", "rel_l2"):
        out[name] = out[name].where(~gone, np.inf)
    out["corr"] = out["corr"].where(~gone, np.nan)
    out["diverged_step"] = ("sample", first)
    return out


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


def _window_mean(da: xr.DataArray, steps: int | None, squared: bool) -> xr.DataArray:
    """Per sample over the first `steps` steps (all if None): sqrt(mean_t x²) or mean_t x, no skipping."""
    part = da if steps is None else da.isel(time=slice(0, steps))
    with np.errstate(over="ignore", invalid="ignore"):
        if squared:
            return np.sqrt((part**2).mean("time", skipna=False))
        return part.mean("time", skipna=False)


def summarize(metrics_ds: xr.Dataset, threshold: float = 0.8,
              windows: Sequence[int] = WINDOWS) -> pd.DataFrame:
    """Per model: rollout RMSE / nRMSE over the first `windows` steps and the whole horizon, MAE, HCT
    (each mean and std over samples, inf when any sample diverged), and the divergence count.

    `metrics_ds` has dims (model, sample, time) as returned by `evaluate` (a single model's
    (sample, time) dataset is accepted too). Columns: rmse, rmse_std, nrmse, nrmse_std, rmse_<w>,
    nrmse_<w> per window w, mae, mae_std, hct, hct_std, final_rel_l2, diverged (samples that
    diverged), first_diverged (earliest diverged step, 0 = none), horizon, steps, samples.
    """
    ds = metrics_ds if "model" in metrics_ds.dims else metrics_ds.expand_dims(model=["model"])
    h = ds["hct"] if "hct" in ds else hct(ds["corr"], threshold)
    n_time = ds.sizes["time"]
    rows = []
    for m in ds["model"].values:
        one = ds.sel(model=m)
        first = (one["diverged_step"].values if "diverged_step" in one
                 else np.zeros(one.sizes["sample"], dtype=int))
        row: dict[str, Any] = {"model": str(m)}
        for key, metric, squared in (("rmse", "rmse", True), ("nrmse", "nrmse", True), ("mae", "mae", False)):
            if metric not in one:
                continue
            per_sample = _window_mean(one[metric], None, squared)
            row[key], row[f"{key}_std"] = _mean_std(per_sample.values)
            if key != "mae":
                for w in windows:
                    if w < n_time:
                        row[f"{key}_{w}"] = _mean_std(_window_mean(one[metric], w, squared).values)[0]
        row["hct"], row["hct_std"] = _mean_std(h.sel(model=m).values)
        row["final_rel_l2"] = float(np.mean(one["rel_l2"].isel(time=-1).values))
        row["diverged"] = int(np.count_nonzero(first))
        row["first_diverged"] = int(first[first > 0].min()) if np.any(first) else 0
        row.update(horizon=float(ds["time"].values[-1]), steps=n_time, samples=int(ds.sizes["sample"]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and std that never skip a NaN and keep inf (a diverged sample makes the mean inf)."""
    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.isnan(v), np.inf, v)  # an undefined error is a failure, not a gap
    with np.errstate(invalid="ignore", over="ignore"):
        mean = float(np.mean(v))
        std = float(np.std(v)) if np.all(np.isfinite(v)) else (0.0 if np.all(v == np.inf) else np.inf)
    return mean, std


def rank(summary: pd.DataFrame, by: str = "nrmse") -> pd.DataFrame:
    """Rows ordered best first: every model that never diverged before any that did, then by `by`."""
    ordered = summary.assign(_d=summary["diverged"] > 0).sort_values(["_d", by], kind="stable")
    return ordered.drop(columns="_d")


def band(metric: xr.DataArray, dim: str = "sample") -> xr.Dataset:
    """Mean, std, min and max over `dim` (the spread bands of the error-accumulation plots); NaN and
    inf propagate: a step where any sample diverged is inf, never silently dropped."""
    with np.errstate(invalid="ignore", over="ignore"):
        return xr.Dataset({"mean": metric.mean(dim, skipna=False), "std": metric.std(dim, skipna=False),
                           "min": metric.min(dim, skipna=False), "max": metric.max(dim, skipna=False)})


def evaluate(models: Mapping[str, Any], ds: xr.Dataset, split: str = "test", n_steps: int | None = None,
             progress: Progress = no_progress, *, ic_noise: float = 0.0, seed: int = 0,
             threshold: float = 0.8, batch_size: int = 8) -> xr.Dataset:
    """Roll every model out from the first frame of each `split` trajectory and score every step.

    Returns a Dataset with rmse, nrmse, mae, rel_l2, corr of dims (model, sample, time), hct and
    diverged_step of dims (model, sample). Models may include the references (core.surrogates).
    `ic_noise` = σ adds Gaussian noise of σ × (each field's spatial std of u0) to the initial state
    (seeded by `seed`; the same noisy u0 for every model) — the truth is untouched, so
    this measures sensitivity to the initial condition. A model that diverges scores inf from that
    step on (see the module docstring) and `diverged_step` records it (0 = never).
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
    scale = field_scale(target)  # one σ per field for every model, so nRMSEs compare
    parts, names = [], list(models)
    for i, name in enumerate(names):
        progress(i, len(names), f"rolling out {name}")
        pred = rollout_batch(models[name], u0, n_steps, batch_size=batch_size, check_finite=False)
        m = per_step(pred, target, dt, fields, scale=scale)
        m["hct"] = hct(m["corr"], threshold)
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


def energy_spectrum(field: Any, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Energy per wavenumber shell of a periodic field: where learned rollouts first go wrong.

    field: (..., *n) array whose last `dims` axes are space (leading axes, e.g. channels, are summed).
    Returns (k, E): k = 0, 1, … the integer shell |k| (in units of 2π/L per axis) and
    E(k) = Σ over modes with round(|k⃗|) = k of |û_k⃗|² / N², N the number of grid points, so that
    Σ_k E(k) = mean(u²) (Parseval). Example: u = cos(2π·3x/L) gives E(3) = 1/2 and 0 elsewhere.
    """
    u = np.asarray(field, dtype=np.float64)
    dims = int(dims)
    if not 1 <= dims <= u.ndim:
        raise WorkbenchError(f"dims={dims} must lie in 1..{u.ndim} (the field has {u.ndim} axes)")
    shape = u.shape[-dims:]
    axes = tuple(range(u.ndim - dims, u.ndim))
    power = np.abs(np.fft.fftn(u, axes=axes)) ** 2 / float(np.prod(shape)) ** 2  # (..., *n)
    power = power.reshape(-1, *shape).sum(axis=0)  # (*n,)
    freqs = np.meshgrid(*[np.fft.fftfreq(n, 1.0 / n) for n in shape], indexing="ij")
    shell = np.rint(np.sqrt(sum(f ** 2 for f in freqs))).astype(int)  # (*n,)
    energy = np.bincount(shell.ravel(), weights=power.ravel())
    return np.arange(len(energy), dtype=np.float64), energy
