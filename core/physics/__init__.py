"""PDE systems of the PIMRL benchmarks and their reference solvers.

    >>> from core.physics import get_system, simulate
    >>> s = get_system("burgers2d", "cpu", n=(32, 32))
    >>> u0 = s.initial_condition(np.random.default_rng(0))      # (C, *n)
    >>> frames = simulate(s, u0, n_steps=100, record_every=10)   # (11, C, *n)

Systems (one file each; parameters from the PeRCNN/PhyCRNet benchmarks):

| name | grid paper / cpu | domain paper / cpu | dt paper / cpu | method |
|---|---|---|---|---|
| kdv1d | 256 / 128 | L = 40 / 40 | 0.005 / 0.005 | ETDRK4 (or IFRK4), pseudo-spectral |
| burgers2d | 128² / 64² | [0,1)² / [0,1)² | 1e-4 / 5e-4 | RK4 (or Euler), 4th-order FD |
| fhn2d | 128² / 64² | 128² / 64² (dx = 1) | 0.002 / 0.002 | RK4 (or Euler), 4th-order FD |
| grayscott2d | 128² / 64² | 1² / 0.5² (dx = 1/128) | 0.5 / 0.5 | RK4 (or Euler), 4th-order FD |
| grayscott3d | 48³ / 24³ | 100³ / 50³ (dx = 100/48) | 0.5 / 0.5 | RK4 (or Euler), 4th-order FD |

Overrides go through `dataclasses.replace` and are validated; overriding `n` keeps the preset's
domain `lengths` (so dx changes) unless `lengths` is overridden too.
"""

from __future__ import annotations

import dataclasses

from core.errors import unknown
from core.physics.base import System, gaussian_random_field, largest_stable_dt
from core.physics.burgers import Burgers2D
from core.physics.fhn import FitzHughNagumo2D
from core.physics.grayscott import GrayScott2D, GrayScott3D
from core.physics.kdv import KdV1D
from core.physics.solvers import euler_step, rk4_step, simulate, step
from core.physics.stencils import GRAD_4TH, LAPLACE_4TH, STENCIL_OFFSETS, gradient, laplacian

SYSTEMS: tuple[str, ...] = ("kdv1d", "burgers2d", "fhn2d", "grayscott2d", "grayscott3d")
PRESETS: tuple[str, ...] = ("paper", "cpu")

_CLASSES: dict[str, type[System]] = {
    "kdv1d": KdV1D, "burgers2d": Burgers2D, "fhn2d": FitzHughNagumo2D,
    "grayscott2d": GrayScott2D, "grayscott3d": GrayScott3D,
}

#: per system and preset, the values that differ from the class defaults (which are the cpu preset)
_PRESET_VALUES: dict[str, dict[str, dict[str, object]]] = {
    "kdv1d": {"paper": {"n": (256,)}, "cpu": {}},
    "burgers2d": {"paper": {"n": (128, 128), "dt": 1e-4}, "cpu": {}},
    "fhn2d": {"paper": {"n": (128, 128), "lengths": (128.0, 128.0)}, "cpu": {}},
    "grayscott2d": {"paper": {"n": (128, 128), "lengths": (1.0, 1.0)}, "cpu": {}},
    "grayscott3d": {"paper": {"n": (48, 48, 48), "lengths": (100.0, 100.0, 100.0)}, "cpu": {}},
}


def get_system(name: str, preset: str = "cpu", **overrides: object) -> System:
    """The system `name` at `preset` ("paper" or "cpu") with field `overrides` (validated).

    Unknown names, presets or override keys raise `WorkbenchError`; so do invalid values (grid below
    5 points, dt <= 0, dt above the explicit scheme's stability bound, negative parameters).
    """
    if name not in _CLASSES:
        raise unknown("system", name, SYSTEMS)
    if preset not in PRESETS:
        raise unknown("preset", preset, PRESETS)
    cls = _CLASSES[name]
    allowed = [f.name for f in dataclasses.fields(cls) if f.init]
    for key in overrides:
        if key not in allowed:
            raise unknown(f"override for {name}", key, allowed)
    values = {**_PRESET_VALUES[name][preset], **overrides}
    # validate the merged config once (an intermediate preset config could be unstable on its own)
    return cls(**values)


__all__ = [
    "GRAD_4TH", "LAPLACE_4TH", "PRESETS", "STENCIL_OFFSETS", "SYSTEMS", "Burgers2D", "FitzHughNagumo2D",
    "GrayScott2D", "GrayScott3D", "KdV1D", "System", "euler_step", "gaussian_random_field",
    "get_system", "gradient", "laplacian", "largest_stable_dt", "rk4_step", "simulate", "step",
]
