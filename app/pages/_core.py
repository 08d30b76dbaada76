"""The few `core` names the PIMRL pages use, in one place: the surrogate registry (learned models,
schemes, reference predictors), the loader and on-the-fly training, from `core.surrogates` and
`core.training`.
"""

from __future__ import annotations

from typing import Any

from core.baselines.numerical import SCHEMES
from core.surrogates import (
    CYCLE,
    MODELS,
    REFERENCES,
    checkpoint_path,
    load_surrogates,
    reference_dataset_config,
)
from core.training import train, train_config


def train_model(name: str, ds: Any, iterations: int, seed: int, progress) -> Any:
    """A small model of kind `name` trained now on `ds` with `iterations` steps (same budget for
    every model and data size, so curves compare like with like)."""
    third = max(1, iterations // 3)
    config = train_config("small", seed=seed, cycle=CYCLE.get(str(ds.attrs["system"])),
                          iterations=iterations, pretrain_iterations=third, macro_iterations=third)
    return train(name, ds, config, progress=progress).model


__all__ = ["MODELS", "REFERENCES", "SCHEMES", "checkpoint_path", "load_surrogates",
           "reference_dataset_config", "train_model"]
