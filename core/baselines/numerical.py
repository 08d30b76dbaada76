"""The classic numerical schemes as surrogates: forward Euler and RK4 stepping the reference physics.

`NumericalScheme` follows the surrogate protocol (`start`/`advance`/`forward`), so the same rollout,
metrics and pages show that error accumulation is not special to neural surrogates: a scheme with
local error O(dt^{p+1}) accumulates a global error O(dt^p) over a fixed horizon, forward Euler (p = 1)
drifts visibly at a large dt while RK4 (p = 4) tracks the reference closely.

Each coarse step Δt is m = Δt/dt sub-steps of `core.physics.euler_step` / `rk4_step` applied to
`system.rhs` (the same right-hand side the reference solver integrates):

    euler: u ← u + dt·f(u)
    rk4:   k1 = f(u), k2 = f(u + dt/2·k1), k3 = f(u + dt/2·k2), k4 = f(u + dt·k3),
           u ← u + dt/6·(k1 + 2k2 + 2k3 + k4)

Unlike `core.physics`, no stability guard is applied here: showing what happens beyond the stability
bound (`system.stability_limit()`) is the point; a blow-up surfaces as the rollout's "diverged at
step s" error. The state is kept in float64 so the scheme's error is not float32 round-off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from core.errors import WorkbenchError, unknown
from core.pimrl.base import Surrogate

#: the schemes, by registry name
SCHEMES: tuple[str, ...] = ("euler", "rk4")


@dataclass(frozen=True)
class NumericalConfig:
    """method: "euler" | "rk4"; dt: the scheme's step (Δt must be an integer multiple of it)."""

    method: str
    dt: float
    dt_coarse: float

    def __post_init__(self) -> None:
        if self.method not in SCHEMES:
            raise unknown("numerical scheme", self.method, SCHEMES)
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise WorkbenchError(f"dt={self.dt} must be a positive number")
        if not self.dt_coarse > 0:
            raise WorkbenchError(f"dt_coarse={self.dt_coarse} must be positive")
        m = self.dt_coarse / self.dt
        if m < 1 - 1e-9 or abs(m - round(m)) > 1e-6 * max(1.0, m):
            raise WorkbenchError(f"dt={self.dt} must divide the coarse step dt_coarse={self.dt_coarse} "
                                 f"into a whole number of sub-steps (got {m:.6g}); choose dt = "
                                 f"dt_coarse / m for an integer m >= 1")

    @property
    def substeps(self) -> int:
        """m = Δt / dt scheme steps per coarse frame."""
        return max(1, round(self.dt_coarse / self.dt))


class NumericalScheme(Surrogate):
    """Forward Euler or RK4 on `system.rhs`, one coarse frame (+Δt) per `advance`.

    system: a `core.physics.System` on the data's grid; method: "euler" | "rk4"; dt: scheme step
    (default: the system's reference dt); dt_coarse: Δt between frames (default: `meta.dt_coarse`).
    """

    name: ClassVar[str] = "numerical"

    def __init__(self, system: Any, method: str = "rk4", dt: float | None = None,
                 dt_coarse: float | None = None, meta: Any = None) -> None:
        if dt_coarse is None:
            if meta is None:
                raise WorkbenchError("NumericalScheme needs dt_coarse (the time between frames) or meta")
            dt_coarse = float(meta.dt_coarse)
        super().__init__(meta, NumericalConfig(method=method, dt=float(dt if dt is not None else system.dt),
                                               dt_coarse=float(dt_coarse)))
        self.system = system
        self.dt_coarse = self.config.dt_coarse

    @classmethod
    def from_meta(cls, meta: Any, method: str = "rk4", dt: float | None = None,
                  **system_overrides: Any) -> NumericalScheme:
        """Build on the system and grid a `DataMeta` describes (same name, preset and grid n)."""
        from core.physics import get_system

        overrides = dict(system_overrides)
        overrides.setdefault("n", tuple(meta.n))
        system = get_system(meta.system, getattr(meta, "preset", "cpu"), **overrides)
        return cls(system, method=method, dt=dt, meta=meta)

    @classmethod
    def from_dataset(cls, ds: Any, method: str = "rk4", dt: float | None = None) -> NumericalScheme:
        """Build on exactly the system a `core.datasets` dataset was generated with (preset + overrides).

        dt defaults to the dataset's solver dt (the reference step), i.e. the scheme at reference
        resolution; pass dt = Δt (or Δt/m) for the coarse, error-accumulating variants.
        """
        from core.physics import get_system
        from core.pimrl import DataMeta

        attrs = ds.attrs
        raw = dict(attrs.get("overrides", {}))
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        system = get_system(str(attrs["system"]), str(attrs.get("preset", "cpu")), **overrides)
        return cls(system, method=method, dt=dt, meta=DataMeta.from_dataset(ds))

    @property
    def label(self) -> str:
        """A display name such as `euler (dt=0.05)`."""
        return f"{self.config.method} (dt={self.config.dt:.3g})"

    def stability_limit(self) -> float:
        """Largest stable dt of this scheme on the system's linearised operator (core.physics); 0 for
        forward Euler on KdV, whose dispersive u_xxx term it amplifies at every dt."""
        return float(self.system.stability_limit(method=self.config.method))

    def stability_ratio(self) -> float:
        """dt divided by the scheme's stability bound (> 1: expect a blow-up)."""
        limit = self.stability_limit()
        return self.config.dt / limit if limit > 0 else math.inf

    def _step(self, u: np.ndarray) -> np.ndarray:
        """One scheme step on every sample of u (B, C, *n); the steppers are core.physics' own."""
        from core.physics import euler_step, rk4_step

        stepper = euler_step if self.config.method == "euler" else rk4_step
        return np.stack([stepper(self.system, s, self.config.dt) for s in u])

    def check_input(self, u0: Tensor) -> None:
        """Frames must be on the system's own grid (`meta` may be absent for a bare scheme)."""
        expected = (len(self.system.fields), *self.system.n)
        if tuple(u0.shape[1:]) != expected:
            shape = ", ".join(map(str, expected))
            raise WorkbenchError(f"{self.label} expects frames of shape (B, {shape}); got {tuple(u0.shape)}")

    def start(self, u0: Tensor) -> np.ndarray:
        """u0 (B, C, *n) -> float64 state."""
        self.check_input(u0)
        return u0.detach().cpu().numpy().astype(np.float64)

    def advance(self, state: np.ndarray) -> tuple[Tensor, np.ndarray]:
        """m sub-steps of the scheme: the frame at +Δt (float32 tensor) and the float64 state."""
        u = state
        with np.errstate(over="ignore", invalid="ignore"):  # a blow-up is reported by the rollout
            for _ in range(self.config.substeps):
                u = self._step(u)
                if not np.all(np.isfinite(u)):
                    break
            frame = u.astype(np.float32)  # values beyond float32 become inf: the rollout reports it
        return torch.from_numpy(frame), u
