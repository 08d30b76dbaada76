"""Autoregressive rollout: one loop for every surrogate, streamed frame by frame.

A surrogate follows the protocol of `core.pimrl.base.Surrogate` (also `NumericalScheme`):
`start(u0 (B, C, *n)) -> state`, `advance(state) -> (frame (B, C, *n) at +Δt, state)` and the batched
`forward(u0, n_steps) -> (B, n_steps, C, *n)`. `rollout` is the streaming form the app and notebooks
consume; `rollout_batch` is the batched form used by `core.metrics.evaluate`.

Free running vs teacher forcing is a flag, not a second loop: with teacher forcing the model is
restarted from the TRUE frame after every step (so the error shown is the one-step error, and
recurrent state is rebuilt from the truth), otherwise it feeds on its own predictions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.errors import WorkbenchError
from core.io import Progress, no_progress


@dataclass(frozen=True)
class RolloutFrame:
    """One predicted frame: step j ≥ 1 at time j·Δt after the initial state.

    pred, truth: (C, *n); error = pred − truth (signed; NaN-free as long as the rollout is finite),
    truth and error are None when no truth was given or the horizon exceeds it.
    """

    step: int
    time: float
    pred: np.ndarray
    truth: np.ndarray | None = None
    error: np.ndarray | None = None


def model_device(model: Any) -> torch.device:
    """The device of the model's parameters (CPU for parameter-free models)."""
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
        for b in model.buffers():
            return b.device
    return torch.device("cpu")


def model_dt(model: Any) -> float | None:
    """Δt of a surrogate from its data metadata (`model.meta.dt_coarse`), or None."""
    meta = getattr(model, "meta", None)
    dt = getattr(meta, "dt_coarse", None) if meta is not None else getattr(model, "dt_coarse", None)
    return float(dt) if dt is not None else None


def _to_tensor(x: Any, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)


def _to_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def rollout(model: Any, u0: Any, n_steps: int, truth: Any = None, *, dt: float | None = None,
            teacher_forcing: bool = False, progress: Progress = no_progress,
            should_stop: Callable[[], bool] = lambda: False) -> Iterator[RolloutFrame]:
    """Yield the frames u_1 … u_{n_steps} of an autoregressive rollout from `u0` as they are computed.

    u0: (C, *n) initial state; truth: optional (T, C, *n) TRUE frames AFTER u0 (truth[j-1] at step
    j), T ≥ n_steps; dt: time between frames (default: the model's Δt, else 1). Runs under
    `torch.no_grad()` in eval mode on the model's device. `should_stop()` is polled before every
    step; when it returns True the generator ends quietly. If step s is non-finite, every finite
    frame before it has been yielded and WorkbenchError("rollout diverged at step s (t=...)") is
    raised. Errors in the arguments (horizon beyond the truth, shapes) are raised before any step.
    """
    n_steps = int(n_steps)
    if n_steps < 1:
        raise WorkbenchError(f"n_steps={n_steps} must be >= 1")
    u0_np = _to_numpy(u0)
    truth_np = None if truth is None else _to_numpy(truth)
    if truth_np is not None:
        if truth_np.shape[1:] != u0_np.shape:
            raise WorkbenchError(f"truth frames have shape {truth_np.shape[1:]} but u0 has shape "
                                 f"{u0_np.shape}; truth must be (T, C, *grid) frames after u0")
        if n_steps > truth_np.shape[0]:
            raise WorkbenchError(f"n_steps={n_steps} exceeds the {truth_np.shape[0]} true frames "
                                 f"available; choose n_steps <= {truth_np.shape[0]}")
    if teacher_forcing and truth_np is None:
        raise WorkbenchError("teacher forcing needs the true frames (truth=...)")
    dt = dt if dt is not None else (model_dt(model) or 1.0)
    # validation above runs at call time; the steps run lazily as the caller iterates
    return _frames(model, u0_np, n_steps, truth_np, dt, teacher_forcing, progress, should_stop)


def _frames(model: Any, u0: np.ndarray, n_steps: int, truth: np.ndarray | None, dt: float,
            teacher_forcing: bool, progress: Progress,
            should_stop: Callable[[], bool]) -> Iterator[RolloutFrame]:
    """The single rollout loop behind `rollout` (free running or teacher forced)."""
    device = model_device(model)
    was_training = getattr(model, "training", False)
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            state = model.start(_to_tensor(u0, device)[None])  # (1, C, *n)
            for step in range(1, n_steps + 1):
                if should_stop():
                    return
                frame, state = model.advance(state)
                pred = _to_numpy(frame[0]).astype(np.float32, copy=False)  # (C, *n)
                t = step * dt
                if not np.all(np.isfinite(pred)):
                    raise WorkbenchError(f"rollout diverged at step {step} (t={t:.4g}): the prediction "
                                         f"became non-finite; the {step - 1} finite frames before it "
                                         "were kept")
                true = None if truth is None else truth[step - 1]
                err = None if true is None else pred - true
                yield RolloutFrame(step=step, time=t, pred=pred, truth=true, error=err)
                progress(step, n_steps, f"step {step}/{n_steps}")
                if teacher_forcing:
                    state = model.start(_to_tensor(true, device)[None])  # restart from the truth
    finally:
        if isinstance(model, torch.nn.Module) and was_training:
            model.train()


def rollout_batch(model: Any, u0: Any, n_steps: int, *, batch_size: int | None = None,
                  check_finite: bool = True) -> np.ndarray:
    """Batched free-running rollout with `model.forward`: u0 (B, C, *n) -> (B, n_steps, C, *n) float32.

    Processes `batch_size` trajectories at a time (all by default) to bound memory. With
    `check_finite` a non-finite prediction raises WorkbenchError naming the first bad step;
    without it NaN/inf are returned as they are (evaluate scores them rather than hiding them).
    """
    n_steps = int(n_steps)
    if n_steps < 1:
        raise WorkbenchError(f"n_steps={n_steps} must be >= 1")
    u0_np = _to_numpy(u0)
    if u0_np.ndim < 3:
        raise WorkbenchError(f"u0 must be (B, C, *grid); got shape {u0_np.shape}")
    device = model_device(model)
    bs = batch_size or u0_np.shape[0]
    was_training = getattr(model, "training", False)
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            chunks = [_to_numpy(model(_to_tensor(u0_np[i:i + bs], device), n_steps)).astype(np.float32)
                      for i in range(0, u0_np.shape[0], bs)]
    finally:
        if isinstance(model, torch.nn.Module) and was_training:
            model.train()
    out = np.concatenate(chunks, axis=0)  # (B, n_steps, C, *n)
    if check_finite:
        bad = ~np.isfinite(out).reshape(out.shape[0], n_steps, -1).all(axis=(0, 2))  # (n_steps,)
        if bad.any():
            step = int(bad.argmax()) + 1
            dt = model_dt(model)
            when = f" (t={step * dt:.4g})" if dt else ""
            raise WorkbenchError(f"rollout diverged at step {step}{when}: the prediction became non-finite")
    return out
