"""Torch views of a generated dataset: micro (δt) windows from the bursts, macro (Δt) windows along
the trajectories, and whole trajectories of a split. Each loads its part of the data once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from core.errors import WorkbenchError

SPLITS = ("train", "val", "test")


def _split_index(ds, split: str) -> np.ndarray:
    if split not in SPLITS:
        raise WorkbenchError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return np.flatnonzero(np.array(ds["split"].values.tolist(), dtype=str) == split)


def stack_fields(ds, names: Sequence[str] | None = None) -> np.ndarray:
    """Stack variables into one float32 array with the channel axis just before the space axes.

    Coarse fields (default: the dataset's `fields`) give (sample, time, C, *n); the fine variables
    (e.g. `["u_fine", "v_fine"]`) give (sample, burst, step, C, *n).
    """
    names = list(names) if names is not None else list(ds.attrs["fields"])
    unknown_names = [n for n in names if n not in ds.data_vars]
    if not names or unknown_names:
        raise WorkbenchError(f"variables {unknown_names or names!r} are not in the dataset; "
                             f"known: {', '.join(ds.data_vars)}")
    ndim = int(ds.attrs["ndim"])
    try:
        arrays = [np.asarray(ds[n].values, dtype=np.float32) for n in names]
    except Exception as exc:  # a garbled chunk surfaces only when read
        raise WorkbenchError(f"reading {names} failed ({type(exc).__name__}: {exc}); regenerate the dataset "
                             "(python -m core data generate ... --overwrite)") from exc
    return np.stack(arrays, axis=arrays[0].ndim - ndim)  # (..., C, *n)


def trajectories(ds, split: str) -> torch.Tensor:
    """Coarse frames of the trajectories in `split`: (S, T, C, *n) float32."""
    idx = _split_index(ds, split)
    return torch.from_numpy(np.ascontiguousarray(stack_fields(ds.isel(sample=idx))))


class _Windows(torch.utils.data.Dataset):
    """Items (x0, target): x0 = frames[r, i] (C, *n), target = frames[r, i+1 : i+1+length]."""

    def __init__(self, frames: np.ndarray, length: int, what: str):
        if not isinstance(length, int) or length < 1 or length > frames.shape[1] - 1:
            raise WorkbenchError(f"window length={length!r} must be an integer in 1..{frames.shape[1] - 1} "
                                 f"for {what} of {frames.shape[1]} frames")
        self.frames = torch.from_numpy(np.ascontiguousarray(frames))  # (R, F, C, *n)
        self.length = length
        self.per_row = frames.shape[1] - length

    def __len__(self) -> int:
        return self.frames.shape[0] * self.per_row

    def index(self, item: int) -> tuple[int, int]:
        """(row, start) of window `item`."""
        if not -len(self) <= item < len(self):
            raise IndexError(item)
        return divmod(item % len(self), self.per_row)

    def __getitem__(self, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        r, i = self.index(item)
        return self.frames[r, i], self.frames[r, i + 1:i + 1 + self.length]  # (C, *n), (L, C, *n)


class FineWindows(_Windows):
    """Micro windows at δt from the bursts of `split`: x0 (C, *n), target (length, C, *n).

    Rows are (sample, burst) pairs in sample-major order; starts run over 0..burst_len − length.
    """

    def __init__(self, ds, split: str = "train", length: int = 1):
        idx = _split_index(ds, split)
        names = [f"{f}_fine" for f in ds.attrs["fields"]]
        fine = stack_fields(ds.isel(sample=idx), names)  # (S, B, L+1, C, *n)
        self.dt = float(ds.attrs["dt_fine"])
        self.samples = idx
        super().__init__(fine.reshape(-1, *fine.shape[2:]), length, "bursts")  # (S·B, L+1, C, *n)


class CoarseWindows(_Windows):
    """Macro windows at Δt along the trajectories of `split`: x0 (C, *n), target (length, C, *n)."""

    def __init__(self, ds, split: str = "train", length: int = 1):
        idx = _split_index(ds, split)
        self.dt = float(ds.attrs["dt_coarse"])
        self.samples = idx
        super().__init__(stack_fields(ds.isel(sample=idx)), length, "trajectories")  # (S, T, C, *n)
