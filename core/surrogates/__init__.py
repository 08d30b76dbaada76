"""Every surrogate by name: learned models, numerical schemes and reference predictors.

One name space, three kinds, one loader::

    LEARNED     pimrl, percnn, convlstm, fno (+ ablations micro, macro, pimrl_nomp): from checkpoints
    SCHEMES     euler, rk4: the classic schemes on the dataset's own physics (core.baselines.numerical)
    REFERENCES  persistence, mean_field: what a learned model must beat (core.surrogates.references)

`load_surrogates(ds, names)` builds any mix of them for a dataset; `checkpoint_path` and the
manifest helpers (core.surrogates.store) say where checkpoints live, so `train`, `evaluate`, the
benchmark and the app all look in the same place.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.errors import WorkbenchError, unknown
from core.surrogates.references import REFERENCES, MeanField, Persistence
from core.surrogates.registry import (
    ABLATIONS,
    CYCLE,
    MODELS,
    PRIORS,
    build_model,
    config_from_dict,
    default_config,
    load_checkpoint,
)
from core.surrogates.store import (
    checkpoint_path,
    read_manifest,
    reference_dataset_config,
    runs_path,
    shipped_dir,
    update_manifest,
)

#: learned models (trained, checkpointed)
LEARNED: tuple[str, ...] = MODELS + ABLATIONS


def schemes() -> tuple[str, ...]:
    from core.baselines.numerical import SCHEMES

    return SCHEMES


def known() -> tuple[str, ...]:
    """Every name `load_surrogates` accepts."""
    return LEARNED + schemes() + REFERENCES


def check_names(names: Sequence[str]) -> list[str]:
    """The names, each checked against the registry (unknown -> one sentence listing the known)."""
    out = []
    for name in names:
        if name not in known():
            raise unknown("model", name, known())
        out.append(name)
    return out


def load_surrogates(ds: Any, names: Sequence[str], *, checkpoints: Path | None = None,
                    scheme_substeps: int = 1) -> tuple[dict[str, Any], dict[str, str]]:
    """The surrogates `names` for dataset `ds`, and a reason for each one that could not be loaded.

    Learned models come from `checkpoints/<system>/<name>.pt` (the shipped data/checkpoints by
    default), checked against the dataset's metadata; a missing or mismatched checkpoint is reported
    in the second dict, not raised, so the rest still runs. The schemes "euler" and "rk4" are built
    on the dataset's own system and grid with dt = Δt / `scheme_substeps`. The references are built
    from the dataset (mean_field from its training split).
    """
    from core.baselines.numerical import NumericalScheme
    from core.pimrl.base import DataMeta

    if int(scheme_substeps) < 1:
        raise WorkbenchError(f"scheme_substeps={scheme_substeps} must be an integer >= 1")
    check_names(names)
    meta = DataMeta.from_dataset(ds)
    models: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name in names:
        if name in schemes():
            models[name] = NumericalScheme.from_dataset(ds, name, dt=meta.dt_coarse / int(scheme_substeps))
        elif name == "persistence":
            models[name] = Persistence(meta)
        elif name == "mean_field":
            models[name] = MeanField.from_dataset(ds)
        else:
            try:
                path = checkpoint_path(meta.system, name, checkpoints)
                models[name], _ = load_checkpoint(path, expect=meta)
            except WorkbenchError as exc:
                problems[name] = str(exc)
    return models, problems


__all__ = [
    "ABLATIONS", "CYCLE", "LEARNED", "MODELS", "PRIORS", "REFERENCES", "MeanField", "Persistence",
    "build_model", "check_names", "checkpoint_path", "config_from_dict", "default_config", "known",
    "load_checkpoint", "load_surrogates", "read_manifest", "reference_dataset_config", "runs_path",
    "schemes", "shipped_dir", "update_manifest",
]
