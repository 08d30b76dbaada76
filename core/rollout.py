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

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import WorkbenchError, unknown
from core.io import Progress, data_dir, no_progress


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


def checkpoint_path(system: str, model: str, folder: Path | None = None) -> Path:
    """Where the shipped checkpoint of `model` for `system` lives: data/checkpoints/<system>/<model>.pt."""
    return (Path(folder) if folder is not None else data_dir() / "checkpoints") / system / f"{model}.pt"


def load_surrogates(ds: Any, names: Sequence[str], *, checkpoints: Path | None = None,
                    scheme_substeps: int = 1) -> tuple[dict[str, Any], dict[str, str]]:
    """The surrogates `names` for dataset `ds`, and a reason for each one that could not be loaded.

    Learned models (core.pimrl.MODELS and ablations) come from `checkpoints/<system>/<name>.pt`
    (shipped ones by default), checked against the dataset's metadata; a missing or mismatched
    checkpoint is reported in the second dict, not raised, so the rest still runs. The numerical
    schemes "euler" and "rk4" are built on the dataset's own system and grid with
    dt = Δt / `scheme_substeps` (1: one step per frame, the "large dt" of the teaching pages).
    """
    from core.baselines.numerical import SCHEMES, NumericalScheme
    from core.pimrl import ABLATIONS, MODELS, DataMeta, load_checkpoint

    if int(scheme_substeps) < 1:
        raise WorkbenchError(f"scheme_substeps={scheme_substeps} must be an integer >= 1")
    meta = DataMeta.from_dataset(ds)
    models: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name in names:
        if name in SCHEMES:
            models[name] = NumericalScheme.from_dataset(ds, name, dt=meta.dt_coarse / int(scheme_substeps))
        elif name in MODELS + ABLATIONS:
            path = checkpoint_path(meta.system, name, checkpoints)
            try:
                models[name], _ = load_checkpoint(path, expect=meta)
            except WorkbenchError as exc:
                problems[name] = str(exc)
        else:
            raise unknown("model", name, MODELS + ABLATIONS + SCHEMES)
    return models, problems


def reference_dataset_config(system: str, preset: str = "cpu", *, folder: Path | None = None,
                             **changes: Any) -> Any:
    """The dataset config the shipped checkpoints of `system` were trained on (so their test split
    is held out), read from data/checkpoints/manifest.json; the preset defaults when the manifest
    does not name one. `changes` replace fields (e.g. n_samples, overrides for a quick small grid).
    """
    import dataclasses
    import json

    from core.datasets import DatasetConfig

    config = DatasetConfig(system=system, preset=preset)
    manifest = (Path(folder) if folder is not None else data_dir() / "checkpoints") / "manifest.json"
    if preset == "cpu" and manifest.is_file():
        try:
            entries = json.loads(manifest.read_text())
        except (OSError, ValueError) as exc:
            raise WorkbenchError(f"checkpoint manifest {str(manifest)!r} cannot be read ({exc}); "
                                 "re-create it with the benchmark that ships the checkpoints") from exc
        found = _manifest_dataset(entries, system)
        if found is not None:
            fields = {f.name for f in dataclasses.fields(DatasetConfig)}
            kw = {k: v for k, v in found.items() if k in fields}
            kw["overrides"] = tuple((k, tuple(v) if isinstance(v, list) else v)
                                    for k, v in dict(kw.get("overrides") or {}).items())
            kw["splits"] = tuple(kw.get("splits", config.splits))
            config = DatasetConfig(**kw)
    return dataclasses.replace(config, **changes) if changes else config


def _manifest_dataset(entries: Any, system: str) -> dict | None:
    """The first dataset config recorded for `system` anywhere in a manifest
    ({"checkpoints": {system: {model: {"dataset_config": {...}}}}} as `bench pimrl` writes it)."""
    if isinstance(entries, dict):
        ds = entries.get("dataset_config")
        if isinstance(ds, dict) and ds.get("system") == system:
            return ds
        children = list(entries.values())
    elif isinstance(entries, list):
        children = entries
    else:
        return None
    for child in children:
        found = _manifest_dataset(child, system)
        if found is not None:
            return found
    return None
