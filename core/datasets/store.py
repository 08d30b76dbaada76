"""The dataset cache: `<cache>/<system>-<preset>-<key>.zarr`, written atomically, reopened lazily.

Integrity: when a store is written, the size and CRC-32 of every file in it (every chunk of every
trajectory, every coordinate and metadata file) go into the root attribute `chunk_manifest`. Opening
a store checks that every listed file is there with its size (one `stat` each, so it scales with
the number of chunks, not their bytes); `verify="checksum"` (used by `data list`) also compares the
CRC-32 of the stored bytes. A store written before the manifest existed is checked by decoding
every chunk instead. A damaged store is named with its damaged samples, and never passes as valid.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from core.datasets.config import GENERATOR_VERSION, DatasetConfig
from core.datasets.sampling import (
    _in_process,
    _on_dask,
    _write_sample,
    check_budget,
    check_scheduler,
    template,
)
from core.errors import WorkbenchError
from core.io import Progress, atomic_path, cache_dir, clean_stale_tmp, no_progress, recover

#: root attribute holding {relative file path: [bytes, crc32]} of every file written in the store
MANIFEST_ATTR = "chunk_manifest"
VERIFY = ("size", "checksum")
_STORE_NAME = re.compile(r"^[a-z0-9]+-[a-z]+-[0-9a-f]{12}\.zarr$")


def dataset_path(config: DatasetConfig, cache: Path | None = None) -> Path:
    """Where the store of `config` lives: `<cache>/<system>-<preset>-<key>.zarr`."""
    folder = Path(cache) if cache is not None else cache_dir()
    return folder / f"{config.system}-{config.preset}-{config.key()}.zarr"


def _regenerate_hint(path: Path) -> str:
    return (f"delete {str(path)!r} and regenerate it (python -m core data generate ... --overwrite)")


def _validate(ds, path: Path, manifest: dict[str, Any] | None, verify: str) -> None:
    """Metadata consistent with what the generator writes, and every chunk of every trajectory
    present and intact (see the module docstring)."""
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
    variables = [v for f in fields for v in (f, f"{f}_fine")]
    if manifest is not None:
        problems = _check_files(path, manifest, set(variables), verify == "checksum")
    else:  # written before the manifest: decode every chunk (a deleted one reads as the NaN fill)
        problems = []
        for v in variables:
            for s in range(ds.sizes["sample"]):
                try:
                    ok = bool(np.all(np.isfinite(np.asarray(ds[v].isel(sample=s).values))))
                except Exception as exc:  # noqa: BLE001 -- any decode failure means a damaged chunk
                    problems.append((s, f"{v!r} cannot be decoded ({type(exc).__name__})"))
                    continue
                if not ok:
                    problems.append((s, f"{v!r} holds missing or non-finite values"))
    if problems:
        raise WorkbenchError(f"dataset {str(path)!r} is damaged: {_describe(problems)}; "
                             f"{_regenerate_hint(path)}")


def _check_files(path: Path, manifest: dict[str, Any], variables: set[str],
                 checksum: bool) -> list[tuple[int | None, str]]:
    """(sample or None, what is wrong) for every file of the manifest that is missing, has another
    size, or (with `checksum`) other bytes."""
    problems: list[tuple[int | None, str]] = []
    for rel, (size, crc) in manifest.items():
        parts = rel.split("/")
        sample = int(parts[2]) if parts[0] in variables and len(parts) > 2 and parts[1] == "c" else None
        what = f"{parts[0]!r} (file {rel})"
        f = path / rel
        try:
            actual = f.stat().st_size
        except OSError:
            problems.append((sample, f"{what} is missing"))
            continue
        if actual != size:
            problems.append((sample, f"{what} has {actual} bytes instead of {size}"))
        elif checksum and zlib.crc32(f.read_bytes()) != crc:
            problems.append((sample, f"{what} has other bytes than were written (CRC-32 differs)"))
    return problems


def _describe(problems: list[tuple[int | None, str]]) -> str:
    """'sample 0: 'u' (file u/c/0/0/0/0) is missing, and 2 more problems (samples 0, 1)'."""
    samples = sorted({s for s, _ in problems if s is not None})
    first = problems[0]
    text = (f"sample {first[0]}: " if first[0] is not None else "") + first[1]
    if len(problems) > 1:
        text += f", and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''}"
    if samples:
        text += f" (damaged sample{'s' if len(samples) > 1 else ''}: {', '.join(map(str, samples))})"
    return text


def _file_manifest(store: Path) -> dict[str, list[int]]:
    """{relative path: [bytes, crc32]} of every file in `store` but the root metadata (which will
    hold this manifest)."""
    out = {}
    for f in sorted(store.rglob("*")):
        if f.is_file() and f != store / "zarr.json":
            data = f.read_bytes()
            out[f.relative_to(store).as_posix()] = [len(data), zlib.crc32(data)]
    return out


def _read_manifest(path: Path) -> dict[str, Any] | None:
    """The store's chunk manifest from its root metadata (None for stores written before it)."""
    try:
        attrs = json.loads((path / "zarr.json").read_text()).get("attributes") or {}
    except (OSError, ValueError, AttributeError):
        return None  # xarray reports the unreadable metadata itself
    manifest = attrs.get(MANIFEST_ATTR)
    return manifest if isinstance(manifest, dict) else None


def open_dataset(config_or_path: DatasetConfig | str | Path, verify: str = "size"):
    """Reopen a generated dataset lazily (dask-backed) from its config or its store path.

    A missing, corrupted, damaged or incompatible store raises WorkbenchError naming the path (and
    the damaged samples). `verify="size"` checks every chunk's presence and size; "checksum" also
    its bytes (reads the whole store once). Reading needs no write permission.
    """
    import xarray as xr

    if verify not in VERIFY:
        from core.errors import unknown

        raise unknown("verify level", verify, VERIFY)
    path = dataset_path(config_or_path) if isinstance(config_or_path, DatasetConfig) else Path(config_or_path)
    recover(path)  # a replacement killed half way: the previous store comes back
    if not path.exists():
        raise WorkbenchError(f"no dataset at {str(path)!r}; generate it first "
                             "(python -m core data generate SYSTEM)")
    try:
        ds = xr.open_zarr(path, consolidated=False)
        ds.attrs.pop(MANIFEST_ATTR, None)
        _validate(ds, path, _read_manifest(path), verify)
        # zarr 3 hands strings back as numpy StringDType, which `.astype(str)` cannot cast: use '<U5'
        ds = ds.assign_coords(split=("sample", np.array(ds["split"].values.tolist(), dtype=str)))
    except WorkbenchError:
        raise
    except Exception as exc:  # zarr/xarray raise many types for broken stores; all mean the same here
        raise WorkbenchError(f"dataset store {str(path)!r} is corrupted or unreadable "
                             f"({type(exc).__name__}: {exc}); {_regenerate_hint(path)}") from exc
    return ds


def _written_by_generator(path: Path, tmpl) -> bool:
    """True for a folder that holds nothing but what `generate` writes for this config (so that
    `overwrite` may replace it, even damaged); a user's folder of the same name is never replaced."""
    allowed = {"zarr.json", *map(str, tmpl.variables)}
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return False
    return bool(_STORE_NAME.match(path.name)) and names <= allowed


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
    recover(path)
    if path.exists() and not overwrite:  # a valid store is read even from a read-only cache
        try:
            return open_dataset(path)
        except WorkbenchError as exc:  # never replace a user's store silently: ask for --overwrite
            raise WorkbenchError(f"{exc} (or pass overwrite=True / --overwrite to replace it)") from exc
    check_budget(cfg, path.parent)  # memory, disk and time estimates: refuse what cannot finish
    tmpl = template(cfg)
    fields = tuple(tmpl.attrs["fields"])

    def ours(p: Path) -> bool:
        return _written_by_generator(p, tmpl)

    with atomic_path(path, replace_dir=ours) as tmp:  # checks writability before any computation
        results = _in_process(cfg, progress) if scheduler is None else _on_dask(cfg, scheduler, progress)
        tmpl.to_zarr(tmp, compute=False, mode="w", consolidated=False, zarr_format=3)
        for s, result in results:
            _write_sample(tmp, fields, s, result, tmpl)
        _seal(tmp)
    return open_dataset(path)


def _seal(store: Path) -> None:
    """Record the size and CRC-32 of every file of the finished `store` in its root attributes."""
    import zarr

    manifest = _file_manifest(store)
    zarr.open_group(store, mode="r+", zarr_format=3).attrs[MANIFEST_ATTR] = manifest


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def list_datasets(cache: Path | None = None, verify: str = "size") -> list[dict[str, Any]]:
    """The stores in the cache, oldest first: key, system, preset, n_samples, sizes, path, created,
    bytes (on disk), valid and (for unreadable or damaged stores) error.

    Every store is checked as `open_dataset(path, verify)` does ("checksum" reads every byte, which
    `python -m core data list` does; "size" costs one `stat` per chunk). Replacements and
    temporary stores left by killed runs are repaired or removed first.
    """
    folder = Path(cache) if cache is not None else cache_dir()
    if not folder.is_dir():
        return []
    clean_stale_tmp(folder)  # temporary stores of killed runs
    for aside in folder.glob(".*.zarr.aside"):  # replacements killed half way
        recover(folder / aside.name[1:-len(".aside")])
    rows = []
    for path in sorted(p for p in folder.glob("*.zarr") if not p.name.startswith(".")):
        try:
            ds = open_dataset(path, verify=verify)
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
