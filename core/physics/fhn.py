"""2D FitzHugh–Nagumo reaction–diffusion (Turing patterns).

    u_t = D_u Δu + u - u³ - v + α
    v_t = D_v Δv + β (u - v)

periodic, D_u = 1, D_v = 100, α = 0.01, β = 0.25, dx = 1. Presets: `paper` 128² (domain 128²),
`cpu` 64² with the same dx = 1 (domain 64², so the same physics on a quarter of the area), both with
RK4 dt = 0.002. The 4th-order Laplacian's most negative eigenvalue is -2·16/3 / dx² in 2D, so the
diffusive RK4 bound is dt <= 2.785 / (D_v · 32/3) ≈ 0.0026 (plus a small reaction damping estimate).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from core.physics.base import System, gaussian_random_field
from core.physics.stencils import laplacian


@dataclass(frozen=True)
class FitzHughNagumo2D(System):
    """2D FitzHugh–Nagumo; u activator, v inhibitor."""

    name: str = field(default="fhn2d", init=False)
    fields: tuple[str, ...] = field(default=("u", "v"), init=False)
    ndim: int = field(default=2, init=False)
    n: tuple[int, ...] = (64, 64)
    lengths: tuple[float, ...] = (64.0, 64.0)
    dt: float = 0.002
    method: str = "rk4"
    Du: float = 1.0
    Dv: float = 100.0
    alpha: float = 0.01
    beta: float = 0.25

    IC_KINDS: ClassVar[tuple[str, ...]] = ("noise", "grf")
    POSITIVE: ClassVar[tuple[str, ...]] = ("Du", "Dv")
    LATEX: ClassVar[str] = (r"\begin{aligned} u_t &= D_u \Delta u + u - u^3 - v + \alpha \\"
                            r" v_t &= D_v \Delta v + \beta (u - v) \end{aligned}")
    #: IC standard deviation: N(0, 0.05²) per grid point (or a GRF of correlation length 4 dx)
    IC_STD: ClassVar[float] = 0.05

    def rhs(self, state: np.ndarray, t: float = 0.0) -> np.ndarray:
        u, v = state[0], state[1]
        out = laplacian(state, self.dx, axes=(-2, -1))  # (2, ny, nx), filled in place below
        out[0] *= self.Du
        out[0] += u - u * u * u - v + self.alpha
        out[1] *= self.Dv
        out[1] += self.beta * (u - v)
        return out

    def _initial_condition(self, rng: np.random.Generator, kind: str) -> np.ndarray:
        if kind == "noise":
            return self.IC_STD * rng.standard_normal(self.shape)
        return self.IC_STD * gaussian_random_field(rng, self.n, self.lengths, 4.0 * max(self.dx), n_fields=2)

    def max_diffusion(self) -> float:
        return max(self.Du, self.Dv)

    def damping(self) -> float:
        # ∂(u - u³)/∂u = 1 - 3u² reaches -2 at |u| = 1 (the pattern amplitude); β damps v
        return max(2.0, self.beta)

    def stability_reason(self, state: np.ndarray | None = None) -> str:
        which = "D_v" if self.Dv >= self.Du else "D_u"
        return f"{which}={self.max_diffusion():g}, dx={min(self.dx):g}"
