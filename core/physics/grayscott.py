"""Gray–Scott reaction–diffusion in 2D and 3D (self-replicating spots).

    u_t = D_u Δu - u v² + f (1 - u)
    v_t = D_v Δv + u v² - (f + k) v

periodic, RK4 with the 4th-order Laplacian, dt = 0.5 in every preset.

- `grayscott2d`: D_u = 2e-5, D_v = 5e-6, f = 0.04, k = 0.06 on [-0.5, 0.5)², `paper` 128²
  (dx = 1/128). `cpu` 64² keeps dx = 1/128 (domain [-0.25, 0.25)²): the pattern scale sqrt(D/f) ≈ 0.02
  stays resolved by ~3 cells, which a 64² grid on the full square would not.
- `grayscott3d`: D_u = 0.2, D_v = 0.1, f = 0.025, k = 0.055, `paper` 48³ with dx = 100/48.
  `cpu` 24³ keeps dx = 100/48 (domain 50³) for the same reason.

The "classic" IC is the Pearson set-up: u = 1, v = 0 everywhere, a few random square (cube) seeds with
u = 0.5, v = 0.25, plus 1% noise; "gaussian" uses Gaussian-shaped seeds of the same size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from core.physics.base import System
from core.physics.stencils import laplacian


@dataclass(frozen=True)
class _GrayScott(System):
    """Shared Gray–Scott equations; subclasses fix dimension, presets and parameters."""

    Du: float = 2e-5
    Dv: float = 5e-6
    f: float = 0.04
    k: float = 0.06

    IC_KINDS: ClassVar[tuple[str, ...]] = ("classic", "gaussian")
    POSITIVE: ClassVar[tuple[str, ...]] = ("Du", "Dv")
    LATEX: ClassVar[str] = (r"\begin{aligned} u_t &= D_u \Delta u - u v^2 + f (1 - u) \\"
                            r" v_t &= D_v \Delta v + u v^2 - (f + k) v \end{aligned}")
    #: seed edge length (physical units) and how many seeds the ICs place (inclusive range)
    SEED_SIZE: ClassVar[float] = 0.05
    SEED_COUNT: ClassVar[tuple[int, int]] = (3, 6)

    def rhs(self, state: np.ndarray, t: float = 0.0) -> np.ndarray:
        u, v = state[0], state[1]
        axes = tuple(range(-self.ndim, 0))
        out = laplacian(state, self.dx, axes=axes)  # (2, *n), filled in place below
        uvv = u * v * v
        out[0] *= self.Du
        out[0] += self.f * (1.0 - u) - uvv
        out[1] *= self.Dv
        out[1] += uvv - (self.f + self.k) * v
        return out

    def _initial_condition(self, rng: np.random.Generator, kind: str) -> np.ndarray:
        mesh = self.mesh()
        state = np.zeros(self.shape)
        state[0] = 1.0
        weight = np.zeros(self.n)  # 1 inside a seed, 0 outside (or a Gaussian bump)
        half = 0.5 * self.SEED_SIZE
        for _ in range(int(rng.integers(self.SEED_COUNT[0], self.SEED_COUNT[1] + 1))):
            centre = [o + rng.uniform(0.0, length) for o, length in zip(self.origin(), self.lengths)]
            # periodic distance from the seed centre along each axis
            dist = [np.abs((x - c + 0.5 * length) % length - 0.5 * length)
                    for x, c, length in zip(mesh, centre, self.lengths)]
            if kind == "classic":
                bump = np.all([d <= max(half, 0.51 * h) for d, h in zip(dist, self.dx)], axis=0).astype(float)
            else:
                bump = np.exp(-sum(d**2 for d in dist) / (2.0 * half**2))
            weight = np.maximum(weight, bump)
        state[0] -= 0.5 * weight
        state[1] += 0.25 * weight
        state += 0.01 * rng.standard_normal(self.shape)
        return np.clip(state, 0.0, 1.0)

    def max_diffusion(self) -> float:
        return max(self.Du, self.Dv)

    def damping(self) -> float:
        # the linear decay rates of the reaction terms: f for u, f + k for v
        return self.f + self.k

    def stability_reason(self, state: np.ndarray | None = None) -> str:
        return f"D_u={self.Du:g}, D_v={self.Dv:g}, dx={min(self.dx):.4g}"


@dataclass(frozen=True)
class GrayScott2D(_GrayScott):
    """Gray–Scott on a 2D periodic square centred at the origin."""

    name: str = field(default="grayscott2d", init=False)
    fields: tuple[str, ...] = field(default=("u", "v"), init=False)
    ndim: int = field(default=2, init=False)
    n: tuple[int, ...] = (64, 64)
    lengths: tuple[float, ...] = (0.5, 0.5)
    dt: float = 0.5

    def origin(self) -> tuple[float, ...]:
        return tuple(-0.5 * length for length in self.lengths)


@dataclass(frozen=True)
class GrayScott3D(_GrayScott):
    """Gray–Scott on a 3D periodic cube [0, L)³."""

    name: str = field(default="grayscott3d", init=False)
    fields: tuple[str, ...] = field(default=("u", "v"), init=False)
    ndim: int = field(default=3, init=False)
    n: tuple[int, ...] = (24, 24, 24)
    lengths: tuple[float, ...] = (50.0, 50.0, 50.0)
    dt: float = 0.5
    Du: float = 0.2
    Dv: float = 0.1
    f: float = 0.025
    k: float = 0.055

    SEED_SIZE: ClassVar[float] = 100.0 / 48 * 4  # four paper cells
    SEED_COUNT: ClassVar[tuple[int, int]] = (3, 6)
