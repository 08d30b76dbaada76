"""The dataset cache: `<cache>/<system>-<preset>-<key>.zarr`, written atomically, reopened lazily."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.datasets.config import GENERATOR_VERSION, DatasetConfig
from core.datasets.sampling import _in_process, _on_dask, _write_sample, check_scheduler, template
from core.errors import WorkbenchError
from core.io import Progress, atomic_path, cache_dir, ensure_writable_dir, no_progress


def dataset_path(config: DatasetConfig, cache: Path | None = None) -> Path:
    """Where the store of `config` lives: `<cache>/<system>-<preset>-<key>.zarr`."""
    folder = Path(cache) if cache is not None else cache_dir()
    return folder / f"{config.system}-{config.preset}-{config.key()}.zarr"


def _regenerate_hint(path: Path) -> str:
    return (f"delete {str(path)!r} and regenerate it (python -m core data generate ... --overwrite)")


def _validate(ds, path: Path) -> None:
    """Metadata and one chunk per variable must be consistent with what the generator writes."""
    a = ds.attrs
    if a.get("generator_version") != GENERATOR_VERSION:
        raise WorkbenchError(f"dataset {str(path)!r} was made by generator version "
                             f"{a.get('generator_version')!r}, this workbench reads version "
                             f"{GENERATOR_VERSION!r}; "
                             f"{_regenerate_hint(path)}")
    fields = a.get("fields") or []
    want = {"sample": a.get("n_samples"), "time": a.get("n_coarse"), "burst": a.get("n_bursts"),
            "step": (a.get("burst_len") or 0) + 1}
    missing = [v for f in fields for v in (f, f"{f}_fine") if v not in ds.data_vars]
    bad = {d: (ds.sizes.get(d), n) for d, n in want.items() if ds.sizes.get(d) != n}
    if not fields or missing or bad or "split" not in ds.coords:
        raise WorkbenchError(f"dataset {str(path)!r} is incomplete or inconsistent "
                             f"(missing {missing or 'nothing'}, sizes {bad or 'ok'}); "
                             f"{_regenerate_hint(path)}")
    for f in fields:  # reading the last trajectory's chunks catches truncated or garbled chunk files
        for v in (f, f"{f}_fine"):
            last = np.asarray(ds[v].isel(sample=-1).values)
            if not np.all(np.isfinite(last)):
                raise WorkbenchError(f"dataset {str(path)!r} holds non-finite values in {v!r}; "
                                     f"{_regenerate_hint(path)}")


def open_dataset(config_or_path: DatasetConfig | str | Path):
    """Reopen a generated dataset lazily (dask-backed) from its config or its store path.

    A missing, corrupted or incompatible store raises WorkbenchError naming the path.
    """
    import xarray as xr

    path = dataset_path(config_or_path) if isinstance(config_or_path, DatasetConfig) else Path(config_or_path)
    if not path.exists():
        raise WorkbenchError(f"no dataset at {str(path)!r}; generate it first "
                             "(python -m core data generate SYSTEM)")
    try:
        ds = xr.open_zarr(path, consolidated=False)
        _validate(ds, path)
        # zarr 3 hands strings back as numpy StringDType, which `.astype(str)` cannot cast: use '<U5'
        ds = ds.assign_coords(split=("sample", np.array(ds["split"].values.tolist(), dtype=str)))
    except WorkbenchError:
        raise
    except Exception as exc:  # zarr/xarray raise many types for broken stores; all mean the same here
        raise WorkbenchError(f"dataset store {str(path)!r} is corrupted or unreadable "
                             f"({type(exc).__name__}: {exc}); {_regenerate_hint(path)}") from exc
    return ds


def generate(config: DatasetConfig, progress: Progress = no_progress, scheduler: Any = None,
             cache: Path | None = None, overwrite: bool = False):
    """Generate (or reuse) the dataset of `config` and return it lazily reopened from zarr.

    If a valid store for the config's key exists it is returned without recomputing (unless
    `overwrite`); an invalid one raises WorkbenchError unless `overwrite`. Otherwise trajectories
    run in this process (`scheduler=None`) or as one Dask task each (`scheduler` =
    "tcp://host:port", "local" for a throw-away 2-worker LocalCluster, or a `distributed.Client`);
    each finished trajectory is written into a temporary store, which is renamed into place only
    when all are written, so a failure never leaves a partial store.
    `progress(done, total, message)` counts solver steps.
    """
    cfg = config.resolved()
    check_scheduler(scheduler)
    path = dataset_path(cfg, cache)
    ensure_writable_dir(path.parent)  # fail before any computation
    if path.exists() and not overwrite:
        try:
            return open_dataset(path)
        except WorkbenchError as exc:  # never replace a user's store silently: ask for --overwrite
            raise WorkbenchError(f"{exc} (or pass overwrite=True / --overwrite to replace it)") from exc
    tmpl = template(cfg)
    fields = tuple(tmpl.attrs["fields"])
    results = _in_process(cfg, progress) if scheduler is None else _on_dask(cfg, scheduler, progress)
    with atomic_path(path) as tmp:
        tmpl.to_zarr(tmp, compute=False, mode="w", consolidated=False, zarr_format=3)
        for s, result in results:
            _write_sample(tmp, fields, s, result, tmpl)
    return open_dataset(path)


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def list_datasets(cache: Path | None = None) -> list[dict[str, Any]]:
    """The stores in the cache, oldest first: key, system, preset, n_samples, sizes, path, created,
    bytes (on disk), valid and (for unreadable stores) error."""
    folder = Path(cache) if cache is not None else cache_dir()
    if not folder.is_dir():
        return []
    rows = []
    for path in sorted(p for p in folder.glob("*.zarr") if not p.name.startswith(".")):
        try:
            ds = open_dataset(path)
            a = ds.attrs
            rows.append({"key": a["key"], "system": a["system"], "preset": a["preset"],
                         "n_samples": a["n_samples"], "sizes": dict(ds.sizes), "path": str(path),
                         "created": a.get("created", ""), "bytes": _disk_bytes(path), "valid": True,
                         "dt_fine": a["dt_fine"], "dt_coarse": a["dt_coarse"], "k": a["k"]})
        except WorkbenchError as exc:
            rows.append({"key": path.stem.rsplit("-", 1)[-1], "system": "?", "preset": "?", "n_samples": 0,
                         "sizes": {}, "path": str(path), "created": "", "valid": False, "error": str(exc),
                         "bytes": _disk_bytes(path)})
    return sorted(rows, key=lambda r: (r["created"], r["path"]))
