"""Trivial reference predictors: what a learned model must beat before its score means anything.

* ``persistence``: nothing changes, u_j = u_0 for every step.
* ``mean_field``: the training split's ensemble mean at each coarse time, ū_j = mean over training
  trajectories of u_j (the "climatology" forecast; it ignores u_0). Beyond the training horizon the
  last mean frame is repeated.

Both follow the surrogate protocol (`start`/`advance`/`forward`), so rollouts, metrics, tables and
plots treat them exactly like models. A model whose error is not clearly below both has not learned
the dynamics, whatever its absolute score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from core.errors import WorkbenchError
from core.pimrl.base import DataMeta, State, Surrogate

#: reference predictors, by registry name (drawn dashed in every per-step plot)
REFERENCES: tuple[str, ...] = ("persistence", "mean_field")


@dataclass(frozen=True)
class ReferenceConfig:
    """What the reference was built from (recorded, never trained)."""

    kind: str
    split: str = ""
    samples: int = 0


class Persistence(Surrogate):
    """u_j = u_0."""

    name = "persistence"
    stages = ()

    def __init__(self, meta: DataMeta) -> None:
        super().__init__(meta, ReferenceConfig("persistence"))

    def start(self, u0: Tensor) -> State:
        self.check_input(u0)
        return u0

    def advance(self, state: State) -> tuple[Tensor, State]:
        return state.clone(), state


class MeanField(Surrogate):
    """u_j = the training ensemble's mean frame at step j (independent of u_0)."""

    name = "mean_field"
    stages = ()

    def __init__(self, meta: DataMeta, mean: Tensor, split: str = "train", samples: int = 0) -> None:
        super().__init__(meta, ReferenceConfig("mean_field", split, samples))
        mean = torch.as_tensor(mean, dtype=torch.float32)
        if mean.dim() != meta.ndim + 2 or tuple(mean.shape[1:]) != (meta.channels, *meta.n):
            raise WorkbenchError(f"mean field must be (T, {meta.channels}, {', '.join(map(str, meta.n))}); "
                                 f"got {tuple(mean.shape)}")
        self.register_buffer("mean", mean)  # (T, C, *n), mean[0] at t = 0

    @classmethod
    def from_dataset(cls, ds: Any, split: str = "train") -> MeanField:
        """The mean over the `split` trajectories of `ds` (core.datasets), frame by frame."""
        from core.datasets import trajectories

        traj = trajectories(ds, split)  # (S, T, C, *n)
        if traj.shape[0] == 0:
            raise WorkbenchError(f"the {split!r} split has no trajectory to average")
        return cls(DataMeta.from_dataset(ds), traj.double().mean(dim=0).float(), split, int(traj.shape[0]))

    def start(self, u0: Tensor) -> State:
        self.check_input(u0)
        return (u0.shape[0], 0)

    def advance(self, state: State) -> tuple[Tensor, State]:
        batch, j = state
        frame = self.mean[min(j + 1, self.mean.shape[0] - 1)]
        return frame.expand(batch, *frame.shape).clone(), (batch, j + 1)
