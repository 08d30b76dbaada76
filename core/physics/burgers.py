"""2D viscous Burgers equation (the PeRCNN / PhyCRNet benchmark).

    u_t = ν Δu - u u_x - v u_y
    v_t = ν Δv - u v_x - v v_y

on the periodic unit square [0, 1)², ν = 0.005. Δ and the advection derivatives use the 4th-order
central 5-point stencils. Presets: `paper` 128² (dx = 1/128), dt = 1e-4; `cpu` 64² on the same
domain (dx = 1/64), dt = 5e-4 (RK4 bound there ≈ 4e-3 for |u| <= 1, see `stability_limit`).
Viscous Burgers obeys a maximum principle per component, so |u|, |v| stay below their initial maximum.

Initial amplitude: central differences resolve the shocks Burgers steepens into only while the cell
Reynolds number max|u|·dx/ν stays below ~2 (measured: 64² with max|u| = 1 and a GRF of correlation
length 0.2 blows up at t ≈ 0.55). The ICs are therefore scaled to max|u| = max|v| = min(1, 2ν/dx):
1 at 128² (paper), 0.64 at 64² (cpu), 0.32 at 32².
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from core.physics.base import System, gaussian_random_field
from core.physics.stencils import gradient, laplacian


@dataclass(frozen=True)
class Burgers2D(System):
    """2D viscous Burgers; fields (u, v) are the two velocity components."""

    name: str = field(default="burgers2d", init=False)
    fields: tuple[str, ...] = field(default=("u", "v"), init=False)
    ndim: int = field(default=2, init=False)
    n: tuple[int, ...] = (64, 64)
    lengths: tuple[float, ...] = (1.0, 1.0)
    dt: float = 5e-4
    method: str = "rk4"
    nu: float = 0.005

    IC_KINDS: ClassVar[tuple[str, ...]] = ("grf", "taylor_green")
    POSITIVE: ClassVar[tuple[str, ...]] = ("nu",)
    LATEX: ClassVar[str] = (r"\begin{aligned} u_t &= \nu \Delta u - u u_x - v u_y \\"
                            r" v_t &= \nu \Delta v - u v_x - v v_y \end{aligned}")
    #: largest cell Reynolds number max|u|·dx/ν the ICs start from (GRF correlation length: domain / 10)
    CELL_REYNOLDS: ClassVar[float] = 2.0

    def ic_amplitude(self) -> float:
        """max|u| = max|v| of the initial conditions: min(1, CELL_REYNOLDS·ν/dx)."""
        return min(1.0, self.CELL_REYNOLDS * self.nu / min(self.dx))

    def rhs(self, state: np.ndarray, t: float = 0.0) -> np.ndarray:
        dy, dx = self.dx
        u, v = state[0], state[1]
        lap = laplacian(state, (dy, dx), axes=(-2, -1))  # (2, ny, nx)
        ddx = gradient(state, dx, axis=-1)
        ddy = gradient(state, dy, axis=-2)
        return self.nu * lap - u * ddx - v * ddy

    def _initial_condition(self, rng: np.random.Generator, kind: str) -> np.ndarray:
        if kind == "grf":
            g = gaussian_random_field(rng, self.n, self.lengths, min(self.lengths) / 10.0, n_fields=2)
        else:  # Taylor–Green vortex cell with a random shift and orientation
            y, x = self.mesh()
            sy, sx = rng.uniform(0.0, 1.0, size=2)
            ax, ay = 2 * np.pi / self.lengths[1], 2 * np.pi / self.lengths[0]
            sign = rng.choice([-1.0, 1.0])
            px, py = ax * (x - sx * self.lengths[1]), ay * (y - sy * self.lengths[0])
            g = sign * np.stack([np.sin(px) * np.cos(py), -np.cos(px) * np.sin(py)])
        return self.ic_amplitude() * g / np.abs(g).max(axis=(1, 2), keepdims=True)

    def max_diffusion(self) -> float:
        return self.nu

    def advection_speed(self, state: np.ndarray | None = None) -> float:
        if state is None:
            return self.ic_amplitude()
        return float(np.abs(np.asarray(state)).max())

    def stability_reason(self, state: np.ndarray | None = None) -> str:
        return f"nu={self.nu:g}, max|u|={self.advection_speed(state):.3g}, dx={self.dx[-1]:g}"
