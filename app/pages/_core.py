"""The few `core` names the PIMRL pages use, in one place: the surrogate registry (learned models,
schemes, reference predictors), the loader and on-the-fly training. `core.surrogates` and
`core.training` hold them; older checkouts had them in `core.rollout` / `core.pimrl`.
"""

from __future__ import annotations

from typing import Any

from core.baselines.numerical import SCHEMES

try:
    from core.surrogates import MODELS, REFERENCES, checkpoint_path, load_surrogates, reference_dataset_config
except ImportError:  # before core.surrogates
    from core.pimrl import MODELS
    from core.rollout import checkpoint_path, load_surrogates, reference_dataset_config

    REFERENCES: tuple[str, ...] = ()


def train_model(name: str, ds: Any, iterations: int, seed: int, progress) -> Any:
    """A small model of kind `name` trained now on `ds` with `iterations` steps (same budget for
    every model and data size, so curves compare like with like)."""
    try:
        from core.training import train, train_config
    except ImportError:  # before core.training
        from core.pimrl import TrainConfig, train

        config = TrainConfig(iterations=iterations, pretrain_iterations=max(1, iterations // 3), rollout=4,
                             rollout_start=2, lr_step=max(1, iterations // 2), seed=seed)
        return train(name, ds, config, progress=progress).model
    from core.surrogates import CYCLE

    third = max(1, iterations // 3)
    config = train_config("small", seed=seed, cycle=CYCLE.get(str(ds.attrs["system"])),
                          iterations=iterations, pretrain_iterations=third, macro_iterations=third)
    return train(name, ds, config, progress=progress).model


__all__ = ["MODELS", "REFERENCES", "SCHEMES", "checkpoint_path", "load_surrogates",
           "reference_dataset_config", "train_model"]
