"""Where checkpoints live, and the manifest of the shipped ones.

Two folders, one search order:

* ``data/runs/<system>/<model>.pt``: what `python -m core train` writes (your own runs);
* ``data/checkpoints/<system>/<model>.pt``: the shipped checkpoints, written by
  `python -m core bench pimrl --save-checkpoints` and recorded in ``data/checkpoints/manifest.json``.

`checkpoint_path(system, model)` returns the first that exists (your run wins over the shipped one),
so a model you train is what `evaluate`, the notebooks and the app then use; an explicit `folder`
looks only there.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from core.errors import WorkbenchError
from core.io import data_dir, to_jsonable, write_json_atomic


def shipped_dir() -> Path:
    return data_dir() / "checkpoints"


def runs_path(system: str, model: str) -> Path:
    """Where `train` writes model `model` for `system` by default."""
    return data_dir() / "runs" / system / f"{model}.pt"


def checkpoint_path(system: str, model: str, folder: Path | None = None) -> Path:
    """The checkpoint of `model` for `system`: in `folder` if given, else your run if there is one,
    else the shipped one (the returned path may not exist; loading then says how to make it)."""
    if folder is not None:
        return Path(folder) / system / f"{model}.pt"
    run = runs_path(system, model)
    return run if run.is_file() else shipped_dir() / system / f"{model}.pt"


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    """The shipped checkpoints' manifest ({"checkpoints": {system: {model: record}}}); {} if absent."""
    path = (Path(folder) if folder is not None else shipped_dir()) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WorkbenchError(f"checkpoint manifest {str(path)!r} cannot be read ({exc}); re-create it "
                             "with `python -m core bench pimrl --save-checkpoints`") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("checkpoints", {}), dict):
        raise WorkbenchError(f"checkpoint manifest {str(path)!r} is not a manifest (no 'checkpoints' "
                             "table); re-create it with `python -m core bench pimrl --save-checkpoints`")
    return manifest


def update_manifest(system: str, entries: dict[str, Any], note: str = "",
                    folder: Path | None = None) -> Path:
    """Merge `entries` (model -> record) for `system` into the manifest (atomically)."""
    folder = Path(folder) if folder is not None else shipped_dir()
    manifest = read_manifest(folder) or {"checkpoints": {}}
    manifest.setdefault("checkpoints", {}).setdefault(system, {}).update(entries)
    if note:
        manifest["note"] = note
    return write_json_atomic(folder / "manifest.json", to_jsonable(manifest))


def reference_dataset_config(system: str, preset: str = "cpu", *, folder: Path | None = None,
                             **changes: Any) -> Any:
    """The dataset config the shipped checkpoints of `system` were trained on (so their test split
    is held out), read from the manifest; the preset defaults when the manifest names none.
    `changes` replace fields (e.g. n_samples, overrides for a quick small grid).
    """
    from core.datasets import DatasetConfig

    config = DatasetConfig(system=system, preset=preset)
    found = _manifest_dataset(read_manifest(folder), system, preset)
    if found is not None:
        fields = {f.name for f in dataclasses.fields(DatasetConfig)}
        kw = {k: v for k, v in found.items() if k in fields}
        kw["overrides"] = tuple((k, tuple(v) if isinstance(v, list) else v)
                                for k, v in dict(kw.get("overrides") or {}).items())
        kw["splits"] = tuple(kw.get("splits", config.splits))
        try:
            config = DatasetConfig(**kw)
        except TypeError as exc:
            raise WorkbenchError(f"the manifest's dataset config for {system!r} is garbled ({exc}); "
                                 "re-create it with `python -m core bench pimrl --save-checkpoints`") from exc
    return dataclasses.replace(config, **changes) if changes else config


def _manifest_dataset(entries: Any, system: str, preset: str) -> dict | None:
    """The first dataset config recorded for (`system`, `preset`) anywhere in a manifest."""
    if isinstance(entries, dict):
        ds = entries.get("dataset_config")
        if isinstance(ds, dict) and ds.get("system") == system and ds.get("preset", "cpu") == preset:
            return ds
        children = list(entries.values())
    elif isinstance(entries, list):
        children = entries
    else:
        return None
    for child in children:
        found = _manifest_dataset(child, system, preset)
        if found is not None:
            return found
    return None
