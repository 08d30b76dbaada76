"""The surrogate protocol, data metadata and checkpoints shared by PIMRL and its baselines.

Every model maps a coarse frame u_j (B, C, *n) to the next one u_{j+1} at +Δt, possibly carrying a
recurrent state. Two equivalent faces:

* streaming: ``state = model.start(u0)`` then ``frame, state = model.advance(state)`` (used by
  ``core.rollout``);
* batched: ``model(u0, n_steps) -> (B, n_steps, C, *n)`` (used in training), the frames AFTER u0.

Checkpoints are plain ``torch.save`` dicts holding only tensors and plain Python values, so they load
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from core.errors import WorkbenchError
from core.io import atomic_path, command_line, to_jsonable

#: opaque recurrent state handed from `start` to `advance`; each model defines what it holds.
State = Any

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class DataMeta:
    """What a model needs to know about its data: physics, grid and the two time steps.

    ``n`` and ``dx`` are in array order ([z,] y, x); Δt = k·δt.
    """

    system: str
    ndim: int
    channels: int
    n: tuple[int, ...]
    dx: tuple[float, ...]
    dt_fine: float
    k: int
    dt_coarse: float
    dataset_key: str = ""
    preset: str = "cpu"
    fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", tuple(int(v) for v in self.n))
        object.__setattr__(self, "dx", tuple(float(v) for v in self.dx))
        object.__setattr__(self, "fields", tuple(str(f) for f in self.fields))
        if self.ndim not in (1, 2, 3):
            raise WorkbenchError(f"ndim={self.ndim} is not supported; use 1, 2 or 3")
        if len(self.n) != self.ndim or len(self.dx) != self.ndim:
            raise WorkbenchError(f"grid n={self.n} / dx={self.dx} must have ndim={self.ndim} entries")
        if self.channels < 1:
            raise WorkbenchError(f"channels={self.channels} must be >= 1")
        if self.k < 1:
            raise WorkbenchError(f"k={self.k} must be >= 1 (Δt = k·δt)")
        if not (self.dt_fine > 0 and math.isclose(self.dt_coarse, self.k * self.dt_fine, rel_tol=1e-6)):
            raise WorkbenchError(f"dt_coarse={self.dt_coarse} must equal k·dt_fine = "
                                 f"{self.k}·{self.dt_fine} > 0")

    @classmethod
    def from_dataset(cls, ds: Any) -> DataMeta:
        """Read the metadata from a ``core.datasets`` xarray dataset (attrs + coordinates)."""
        attrs = ds.attrs
        dims = [d for d in ("z", "y", "x") if d in ds.dims]
        fields = tuple(str(v) for v in attrs.get("fields", [])) or tuple(
            str(v) for v in ds.data_vars if not str(v).endswith("_fine"))
        dx = [float(v) for v in attrs.get("dx", [])]
        if len(dx) != len(dims):  # no (or inconsistent) attribute: infer from the cell coordinates
            dx = []
            for d in dims:
                c = ds[d].values
                if len(c) < 2:
                    raise WorkbenchError(f"coordinate {d!r} has fewer than 2 points; cannot infer dx")
                dx.append(float(c[1] - c[0]))
        dt_fine = float(attrs["dt_fine"])
        k = int(attrs["k"])
        key = str(attrs.get("key", attrs.get("config_hash", attrs.get("dataset_key", ""))))
        return cls(system=str(attrs["system"]), ndim=len(dims), channels=len(fields),
                   n=tuple(int(ds.sizes[d]) for d in dims), dx=tuple(dx), dt_fine=dt_fine, k=k,
                   dt_coarse=float(attrs.get("dt_coarse", k * dt_fine)), dataset_key=key,
                   preset=str(attrs.get("preset", "cpu")), fields=fields)

    def check_compatible(self, other: DataMeta) -> None:
        """Raise if a model made for `self` cannot run on data described by `other`."""
        for name in ("system", "channels", "n", "k"):
            a, b = getattr(self, name), getattr(other, name)
            if a != b:
                raise WorkbenchError(f"checkpoint was trained for {name}={a!r} but the data has "
                                     f"{name}={b!r}; use a checkpoint trained on this system and grid")
        for name in ("dx", "dt_fine"):
            a, b = getattr(self, name), getattr(other, name)
            if not all(math.isclose(x, y, rel_tol=1e-5) for x, y in
                       zip(torch.as_tensor(a).flatten().tolist(), torch.as_tensor(b).flatten().tolist())):
                raise WorkbenchError(f"checkpoint was trained for {name}={a!r} but the data has "
                                     f"{name}={b!r}; use a checkpoint trained on this system and grid")


def conv_nd(ndim: int) -> type[torch.nn.Module]:
    """``nn.Conv1d/2d/3d`` for the grid dimension."""
    return {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[ndim]


def periodic_conv(ndim: int, c_in: int, c_out: int, kernel: int, bias: bool = True) -> torch.nn.Module:
    """A same-size convolution with periodic (circular) padding, in 1D/2D/3D."""
    return conv_nd(ndim)(c_in, c_out, kernel, padding=kernel // 2, padding_mode="circular", bias=bias)


class Surrogate(torch.nn.Module, abc.ABC):
    """Base class of every coarse-step model: subclasses implement `start` and `advance`.

    ``forward(u0, n_steps)`` is defined here from them, so the batched and streaming faces agree by
    construction; subclasses may override it only with an equivalent faster form.
    """

    name: ClassVar[str] = ""

    def __init__(self, meta: DataMeta, config: Any) -> None:
        super().__init__()
        self.meta = meta
        self.config = config

    @abc.abstractmethod
    def start(self, u0: Tensor) -> State:
        """u0 (B, C, *n) -> the recurrent state before the first step."""

    @abc.abstractmethod
    def advance(self, state: State) -> tuple[Tensor, State]:
        """One coarse step: the next frame (B, C, *n) at +Δt and the new state."""

    def forward(self, u0: Tensor, n_steps: int) -> Tensor:
        """Roll out `n_steps` coarse frames after u0: (B, C, *n) -> (B, n_steps, C, *n)."""
        self.check_input(u0)
        state = self.start(u0)
        frames = []
        for _ in range(int(n_steps)):
            frame, state = self.advance(state)
            frames.append(frame)
        return torch.stack(frames, dim=1)  # (B, T, C, *n)

    def check_input(self, u0: Tensor) -> None:
        expected = (self.meta.channels, *self.meta.n)
        if u0.dim() != self.meta.ndim + 2 or tuple(u0.shape[1:]) != expected:
            raise WorkbenchError(f"{self.name} expects frames of shape (B, {', '.join(map(str, expected))}); "
                                 f"got {tuple(u0.shape)}")

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def save_checkpoint(path: Path, model: Surrogate, meta: DataMeta, train_config: Any, history: list[float],
                    metrics: dict[str, float] | None = None, optimizer: dict | None = None,
                    scheduler: dict | None = None, iteration: int | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically; everything in it is a tensor or a plain Python value."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": model.name,
        "model_config": to_jsonable(model.config),
        "meta": to_jsonable(meta),
        "train_config": to_jsonable(train_config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer,
        "scheduler": scheduler,
        "iteration": int(iteration if iteration is not None else len(history)),
        "history": [float(h) for h in history],
        "metrics": to_jsonable(metrics or {}),
        "command": command_line(),
        **(extra or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The raw checkpoint dict (safe load); missing or unreadable file -> WorkbenchError."""
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"checkpoint {str(path)!r} does not exist; "
                             "train one with `python -m core train`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- any unpickling failure means a bad file
        raise WorkbenchError(f"checkpoint {str(path)!r} cannot be read ({type(exc).__name__}); "
                             "re-create it with `python -m core train`") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise WorkbenchError(f"checkpoint {str(path)!r} is not a workbench checkpoint (format "
                             f"{CHECKPOINT_FORMAT}); re-create it with `python -m core train`")
    expected = {"model": str, "meta": dict, "model_config": dict, "state_dict": dict}
    bad = [k for k, kind in expected.items() if not isinstance(payload.get(k), kind)]
    if bad:
        raise WorkbenchError(f"checkpoint {str(path)!r} has missing or garbled metadata ({', '.join(bad)}); "
                             "re-create it with `python -m core train`")
    return payload


def meta_from_dict(d: dict[str, Any]) -> DataMeta:
    fields = {f.name for f in dataclasses.fields(DataMeta)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in fields}
    return DataMeta(**kw)
