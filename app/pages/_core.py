"""The few `core` names the PIMRL pages use, in one place: the surrogate registry (learned models,
schemes, reference predictors), the loader and on-the-fly training, from `core.surrogates` and
`core.training`.
"""

from __future__ import annotations

from typing import Any

from core.baselines.numerical import SCHEMES
from core.surrogates import (
    CYCLE,
    LEARNED,
    REFERENCES,
    checkpoint_path,
    load_surrogates,
    reference_dataset_config,
)
from core.training import train, train_config

#: sub-steps m (dt = Δt/m) offered for the Euler / RK4 schemes: powers of 2, each halving Euler's step.
#: Measured with `core.metrics.evaluate` on the quick look (4 test trajectories, RMSE at the last
#: of 40 steps): burgers2d Euler 3.1e-3 (m=1) -> 1.5e-3 (2) -> 3.7e-4 (8) -> 7.4e-5 (40),
#: first order as it should be; RK4 7.3e-8 -> 2.4e-9 at m=4, then flat (the data's own solver
#: error). grayscott2d / fhn2d: RK4 stable from m=8, Euler from 10 / 16 (below, both diverge:
#: stability, not accuracy); grayscott3d: both from 4. kdv1d: RK4 stable from m=100 (5.4e-7; 2.7e-8
#: at 400, 14 s), Euler never (u_xxx makes forward Euler unstable at every step size). Up to 512 so
#: KdV's RK4 can be seen to converge; every doubling shows on a log axis.
SCHEME_SUBSTEPS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def train_model(name: str, ds: Any, iterations: int, seed: int, progress) -> Any:
    """A small model of kind `name` trained now on `ds` with `iterations` coarse-window steps (the same
    for every model and data size, so curves compare like with like)."""
    third = max(1, iterations // 3)
    # coarse-window steps as in core.training.plan (macro pretraining + joint = a baseline's steps);
    # a micro cell first takes 10 one-δt burst steps per coarse step (each about k times cheaper)
    system = str(ds.attrs["system"])
    config = train_config("small", seed=seed, cycle=CYCLE.get(system), system=system,
                          iterations=max(1, iterations - third), macro_iterations=third,
                          pretrain_iterations=10 * iterations)
    return train(name, ds, config, progress=progress).model


__all__ = ["LEARNED", "REFERENCES", "SCHEMES", "SCHEME_SUBSTEPS", "checkpoint_path",
           "load_surrogates", "reference_dataset_config", "train_model"]
