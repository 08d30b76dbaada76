"""Convergence studies of the reference solvers against exact solutions: the measured orders.

Each study refines a grid spacing h (or a time step dt), measures the max error against an exact
solution and fits the order as the least-squares slope of log error vs log h. The tests
(`tests/test_physics_convergence.py`) assert each order against its theory; `python -m core bench
convergence` writes the same numbers to `data/results/bench_convergence.{md,json}`.

- space: the 4th-order Laplacian and gradient on u = exp(sin x); the Burgers right-hand side on a
  manufactured field differentiated by hand; KdV's pseudo-spectral discretisation (exponential);
- time: RK4 (4) and forward Euler (1) on diffusion of a sine mode, whose semi-discrete solution
  exp(μ t) is exact, so every error left is the stepper's; ETDRK4 and IFRK4 (4) on the exact KdV
  one-soliton;
- transport: the KdV one-soliton's speed, shape and invariants over t = 20.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.physics import get_system, gradient, laplacian, simulate
from core.physics.stencils import laplace_symbol

TWO_PI = 2.0 * np.pi


def slope(h: Any, err: Any) -> float:
    """Least-squares slope of log(err) against log(h): the measured order."""
    return float(np.polyfit(np.log(np.asarray(h, float)), np.log(np.asarray(err, float)), 1)[0])


@dataclass(frozen=True)
class Study:
    """One refinement study: `h` (grid spacings or time steps), `errors`, the fitted `order` and the
    order the theory predicts (`expected`; None for spectral accuracy, which has no finite order)."""

    name: str
    what: str
    h: tuple[float, ...]
    errors: tuple[float, ...]
    expected: float | None
    order: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "order", slope(self.h, self.errors))


def fd_stencils() -> list[Study]:
    """4th-order Laplacian and gradient of u = exp(sin x) on [0, 2π), n = 16, 32, 64."""
    hs, lap, grad = [], [], []
    for n in (16, 32, 64):
        x = np.arange(n) * TWO_PI / n
        h = TWO_PI / n
        u = np.exp(np.sin(x))
        lap.append(float(np.abs(laplacian(u, h, axes=(0,)) - u * (np.cos(x) ** 2 - np.sin(x))).max()))
        grad.append(float(np.abs(gradient(u, h, axis=0) - u * np.cos(x)).max()))
        hs.append(h)
    return [Study("laplacian", "4th-order FD Laplacian, u = exp(sin x)", tuple(hs), tuple(lap), 4.0),
            Study("gradient", "4th-order FD gradient, u = exp(sin x)", tuple(hs), tuple(grad), 4.0)]


def burgers_exact_rhs(x: np.ndarray, y: np.ndarray, nu: float) -> tuple[np.ndarray, np.ndarray]:
    """Manufactured u = sin φ, φ = 2πx + cos 2πy; v = cos ψ, ψ = 2πy + ½ sin 2πx, and the Burgers
    right-hand side ν Δu − u u_x − v u_y (same for v), differentiated by hand."""
    phi, psi = TWO_PI * x + np.cos(TWO_PI * y), TWO_PI * y + 0.5 * np.sin(TWO_PI * x)
    u, v = np.sin(phi), np.cos(psi)
    ux, uy = TWO_PI * np.cos(phi), -TWO_PI * np.sin(TWO_PI * y) * np.cos(phi)
    uxx = -(TWO_PI**2) * np.sin(phi)
    uyy = -np.sin(phi) * (TWO_PI * np.sin(TWO_PI * y)) ** 2 - TWO_PI**2 * np.cos(TWO_PI * y) * np.cos(phi)
    vx, vy = -np.pi * np.cos(TWO_PI * x) * np.sin(psi), -TWO_PI * np.sin(psi)
    vxx = -np.cos(psi) * (np.pi * np.cos(TWO_PI * x)) ** 2 + 2 * np.pi**2 * np.sin(TWO_PI * x) * np.sin(psi)
    vyy = -(TWO_PI**2) * np.cos(psi)
    state = np.stack([u, v])
    rhs = np.stack([nu * (uxx + uyy) - u * ux - v * uy, nu * (vxx + vyy) - u * vx - v * vy])
    return state, rhs


def burgers_rhs() -> Study:
    """The full Burgers right-hand side on the manufactured field, n = 24, 48, 96."""
    hs, errs = [], []
    for n in (24, 48, 96):
        s = get_system("burgers2d", "cpu", n=(n, n), dt=1e-5)
        y, x = s.mesh()
        state, want = burgers_exact_rhs(x, y, s.nu)
        errs.append(float(np.abs(s.rhs(state) - want).max()))
        hs.append(s.dx[0])
    return Study("burgers_rhs", "Burgers 2D right-hand side, manufactured field", tuple(hs), tuple(errs), 4.0)


_DIFFUSION_DTS = {"rk4": (0.12, 0.06, 0.03, 0.015), "euler": (0.08, 0.04, 0.02, 0.01)}


def diffusion_time(method: str) -> Study:
    """RK4 or forward Euler on u_t = D Δ_h u (Gray–Scott with f = k = 0, v = 0) from a sine mode.

    The mode decays exactly as exp(μ t), μ = D λ(θ)/dx², with D chosen so that μ = −1; t = 2.4.
    """
    n, m, length, t_end = 16, 2, 1.0, 2.4
    dx = length / n
    lam = laplace_symbol(np.array(TWO_PI * m / n)) / dx**2
    dts, errs = _DIFFUSION_DTS[method], []
    for dt in dts:
        s = get_system("grayscott2d", "cpu", n=(n, n), lengths=(length, length), f=0.0, k=0.0,
                       Du=-1.0 / float(lam), Dv=1e-6, dt=dt, method=method)
        y, x = s.mesh()
        u0 = np.stack([np.sin(TWO_PI * m * x / length), np.zeros_like(x)])
        steps = int(round(t_end / dt))
        frames = simulate(s, u0, steps, record_every=steps)
        errs.append(float(np.abs(frames[-1, 0] - np.exp(-steps * dt) * u0[0]).max()))
    order = 4.0 if method == "rk4" else 1.0
    return Study(f"{method}_time", f"{method.upper() if method == 'rk4' else 'forward Euler'} in time, "
                 "diffusion of a sine mode", dts, tuple(errs), order)


def kdv_space() -> Study:
    """KdV one-soliton at t = 1 with dt = 1e-3 (time error ~1e-13), N = 64, 96, 128: spectral."""
    hs, errs = [], []
    for n in (64, 96, 128):
        s = get_system("kdv1d", "cpu", n=(n,), dt=1e-3)
        frames = simulate(s, s.soliton(1.0, 10.0), 1000, record_every=1000)
        errs.append(float(np.abs(frames[-1] - s.soliton(1.0, 10.0, t=1.0)).max()))
        hs.append(s.dx[0])
    return Study("kdv_space", "KdV pseudo-spectral in space, exact one-soliton", tuple(hs), tuple(errs), None)


def kdv_time(method: str) -> Study:
    """ETDRK4 or IFRK4 on the exact KdV one-soliton, N = 256, t = 1, dt = 0.016 .. 0.002."""
    dts, errs = (0.016, 0.008, 0.004, 0.002), []
    for dt in dts:
        s = get_system("kdv1d", "cpu", n=(256,), dt=dt, method=method)
        steps = int(round(1.0 / dt))
        frames = simulate(s, s.soliton(1.0, 10.0), steps, record_every=steps)
        errs.append(float(np.abs(frames[-1] - s.soliton(1.0, 10.0, t=steps * dt)).max()))
    return Study(f"{method}_time", f"{method.upper()} in time, exact KdV one-soliton", dts, tuple(errs), 4.0)


def _peak_position(length: float, u: np.ndarray) -> float:
    """Position of a single bump from the phase of its first Fourier mode (sub-grid accurate)."""
    phase = np.angle(np.fft.rfft(u)[1])
    return float((-phase * length / TWO_PI) % length)


def soliton_transport(method: str = "etdrk4", c: float = 1.2, x0: float = 8.0) -> dict[str, float]:
    """The cpu-preset KdV one-soliton over t = 0..20 (60% of the domain): fitted speed vs c, max
    shape error, and the relative drift of mass and momentum."""
    s = get_system("kdv1d", "cpu", method=method)
    u0 = s.soliton(c, x0)
    frames = simulate(s, u0, 4000, record_every=200)
    times = np.arange(len(frames)) * 200 * s.dt
    pos = np.unwrap(np.array([_peak_position(s.lengths[0], f[0]) for f in frames]), period=s.lengths[0])
    speed = float(np.polyfit(times, pos, 1)[0])
    return {"method": method, "c": c, "speed": speed, "speed_rel_error": abs(speed / c - 1),
            "shape_error": float(max(np.abs(f - s.soliton(c, x0, t)).max() for f, t in zip(frames, times))),
            "mass_drift": abs(s.mass(frames[-1]) / s.mass(u0) - 1),
            "momentum_drift": abs(s.momentum(frames[-1]) / s.momentum(u0) - 1)}


def all_studies() -> list[Study]:
    """Every refinement study, in the order the benchmark reports them."""
    return [*fd_stencils(), burgers_rhs(), diffusion_time("rk4"), diffusion_time("euler"),
            kdv_time("etdrk4"), kdv_time("ifrk4"), kdv_space()]
