"""1D Korteweg–de Vries equation, pseudo-spectral with ETDRK4 or integrating-factor RK4.

    u_t + α u u_x + δ u_xxx = 0,   α = 6, δ = 1,   periodic on [0, L), L = 40

In Fourier space û_t = L̂ û + N̂(u) with the stiff dispersive part L̂ = i δ k³ treated exactly and
N̂ = -(α/2) i k FFT(u²) with the 2/3 rule (modes |j| > N/3 of N̂ zeroed). ETDRK4 follows
Kassam & Trefethen (2005), φ-functions by a contour integral (32 points on a unit circle around each
h·L̂). The one-soliton u = (3c/α) sech²(½ √(c/δ) (x - x0 - c t)) is exact on the infinite line;
L = 40 makes the periodic images' overlap ~1e-8 for c >= 1.

Presets: `paper` 256 points, `cpu` 128 points, both dt = 0.005 (at dt = 0.01 the ETDRK4 drift of
∫u² over t = 20 is 1e-8, at 0.005 it is 3e-10: the invariants hold to ~1e-9). The ICs stay below |u| = 1
(solitons with c in [0.5, 2]; smooth random fields scaled to max |u| = 1).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from core.physics.base import SPECTRAL_METHODS, System, gaussian_random_field, largest_stable_dt

#: contour points for the ETDRK4 φ-functions
CONTOUR_POINTS = 32


@dataclass(frozen=True)
class KdV1D(System):
    """KdV on a periodic interval; one field u."""

    name: str = field(default="kdv1d", init=False)
    fields: tuple[str, ...] = field(default=("u",), init=False)
    ndim: int = field(default=1, init=False)
    n: tuple[int, ...] = (128,)
    lengths: tuple[float, ...] = (40.0,)
    dt: float = 0.005
    method: str = "etdrk4"
    alpha: float = 6.0
    delta: float = 1.0

    METHODS: ClassVar[tuple[str, ...]] = SPECTRAL_METHODS
    IC_KINDS: ClassVar[tuple[str, ...]] = ("solitons", "grf")
    POSITIVE: ClassVar[tuple[str, ...]] = ("alpha", "delta")
    LATEX: ClassVar[str] = r"u_t + \alpha\, u u_x + \delta\, u_{xxx} = 0"
    #: soliton speeds drawn from this range; amplitude 3c/α
    SPEED_RANGE: ClassVar[tuple[float, float]] = (0.5, 2.0)
    #: amplitude the ICs respect, and the growth allowed for (a bump can shed solitons up to 2x its height)
    IC_AMPLITUDE: ClassVar[float] = 1.0
    GROWTH: ClassVar[float] = 2.0

    # ---- spectral operators --------------------------------------------------------------------
    def wavenumbers(self) -> np.ndarray:
        """k_j = 2π j / L for the rfft modes j = 0..N/2."""
        return 2.0 * np.pi * np.fft.rfftfreq(self.n[0], d=self.dx[0])

    def linear_symbol(self) -> np.ndarray:
        """L̂ = -δ (ik)³ = i δ k³ (the dispersive term, treated exactly)."""
        k = self.wavenumbers()
        return 1j * self.delta * k**3

    def dealias_mask(self) -> np.ndarray:
        """2/3 rule: keep rfft modes j <= N/3."""
        j = np.arange(self.n[0] // 2 + 1)
        return (j <= self.n[0] / 3.0).astype(float)

    def nonlinear_hat(self, u_hat: np.ndarray) -> np.ndarray:
        """N̂ = -(α/2) i k FFT(u²), dealiased; `u_hat` is the rfft of u."""
        u = np.fft.irfft(u_hat, n=self.n[0])
        return _nl_factor(self) * np.fft.rfft(u * u)

    def rhs(self, state: np.ndarray, t: float = 0.0) -> np.ndarray:
        """u_t = -α u u_x - δ u_xxx, evaluated spectrally (dealiased nonlinear term)."""
        u_hat = np.fft.rfft(state[0])
        return np.fft.irfft(self.linear_symbol() * u_hat + self.nonlinear_hat(u_hat), n=self.n[0])[None]

    def spectral_step(self, state: np.ndarray, dt: float) -> np.ndarray:
        """One ETDRK4 or IFRK4 step of size dt on a (1, N) state."""
        v = np.fft.rfft(state[0])
        if self.method == "etdrk4":
            e, e2, q, f1, f2, f3 = _etdrk4_coefficients(self, float(dt))
            nv = self.nonlinear_hat(v)
            a = e2 * v + q * nv
            na = self.nonlinear_hat(a)
            b = e2 * v + q * na
            nb = self.nonlinear_hat(b)
            c = e2 * a + q * (2.0 * nb - nv)
            nc = self.nonlinear_hat(c)
            v = e * v + f1 * nv + 2.0 * f2 * (na + nb) + f3 * nc
        else:  # integrating factor: RK4 on w = exp(-L̂t) û, written back in û
            e, e2 = _if_coefficients(self, float(dt))
            k1 = self.nonlinear_hat(v)
            k2 = self.nonlinear_hat(e2 * (v + 0.5 * dt * k1))
            k3 = self.nonlinear_hat(e2 * v + 0.5 * dt * k2)
            k4 = self.nonlinear_hat(e * v + dt * e2 * k3)
            v = e * v + dt / 6.0 * (e * k1 + 2.0 * e2 * (k2 + k3) + k4)
        return np.fft.irfft(v, n=self.n[0])[None]

    # ---- conserved quantities and exact solution ---------------------------------------------
    def mass(self, state: np.ndarray) -> float:
        """∫ u dx (conserved)."""
        return float(np.sum(state[0]) * self.dx[0])

    def momentum(self, state: np.ndarray) -> float:
        """∫ u² dx (conserved)."""
        return float(np.sum(state[0] ** 2) * self.dx[0])

    def soliton(self, c: float, x0: float, t: float = 0.0, images: int = 2) -> np.ndarray:
        """Exact one-soliton (3c/α) sech²(½√(c/δ)(x - x0 - ct)) summed over periodic images, (1, N)."""
        x = self.coords()["x"]
        length = self.lengths[0]
        shift = (x - x0 - c * t + 0.5 * length) % length - 0.5 * length  # in [-L/2, L/2)
        width = 0.5 * np.sqrt(c / self.delta)
        u = sum(np.cosh(width * (shift + m * length)) ** -2.0 for m in range(-images, images + 1))
        return (3.0 * c / self.alpha * u)[None]

    def _initial_condition(self, rng: np.random.Generator, kind: str) -> np.ndarray:
        if kind == "solitons":
            # 1-3 solitons spread over the domain (jittered even spacing) so their tails barely overlap
            count = int(rng.integers(1, 4))
            speeds = rng.uniform(*self.SPEED_RANGE, size=count)
            spacing = self.lengths[0] / count
            jitter = rng.uniform(-0.15, 0.15, count)
            starts = rng.uniform(0.0, self.lengths[0]) + spacing * (np.arange(count) + jitter)
            return sum(self.soliton(c, x0) for c, x0 in zip(speeds, starts))
        g = gaussian_random_field(rng, self.n, self.lengths, self.lengths[0] / 20.0)
        g_hat = np.fft.rfft(g[0]) * self.dealias_mask()  # resolved modes only
        g = np.fft.irfft(g_hat, n=self.n[0])
        return (self.IC_AMPLITUDE * g / np.abs(g).max())[None]

    # ---- stability ----------------------------------------------------------------------------
    def advection_speed(self, state: np.ndarray | None = None) -> float:
        amplitude = self.IC_AMPLITUDE if state is None else float(np.abs(np.asarray(state)).max())
        return self.alpha * self.GROWTH * amplitude

    def stability_limit(self, state: np.ndarray | None = None, method: str | None = None) -> float:
        """ETDRK4/IFRK4: RK4 bound of the explicit nonlinear part, eigenvalues i·α·GROWTH·max|u|·k
        over the dealiased k (the dispersive part is exact, so only advection limits dt).

        `method` "rk4"/"euler" gives the bound of that scheme applied to the whole right-hand side
        (eigenvalues i(δk³ + speed·k) for every k): tiny for RK4, 0 for forward Euler, which is
        unstable on the imaginary axis.
        """
        method = method or self.method
        k = self.wavenumbers()
        if method in SPECTRAL_METHODS:
            return largest_stable_dt("rk4", 1j * self.advection_speed(state) * k[self.dealias_mask() > 0])
        return largest_stable_dt(method, 1j * (self.delta * k**3 + self.advection_speed(state) * k))

    def stability_reason(self, state: np.ndarray | None = None) -> str:
        return f"advection speed {self.advection_speed(state):.3g}, dx={self.dx[0]:.4g}"


@functools.lru_cache(maxsize=32)
def _nl_factor(system: KdV1D) -> np.ndarray:
    return -0.5 * system.alpha * 1j * system.wavenumbers() * system.dealias_mask()


@functools.lru_cache(maxsize=32)
def _if_coefficients(system: KdV1D, dt: float) -> tuple[np.ndarray, np.ndarray]:
    lin = system.linear_symbol()
    return np.exp(dt * lin), np.exp(0.5 * dt * lin)


@functools.lru_cache(maxsize=32)
def _etdrk4_coefficients(system: KdV1D, dt: float) -> tuple[np.ndarray, ...]:
    """E, E2, Q, f1, f2, f3 of Kassam–Trefethen ETDRK4 (complex: L̂ is imaginary, so no `.real`)."""
    lin = system.linear_symbol()
    e, e2 = np.exp(dt * lin), np.exp(0.5 * dt * lin)
    # full circle: L̂ is imaginary, so the contour is not symmetric about the real axis
    roots = np.exp(2j * np.pi * (np.arange(1, CONTOUR_POINTS + 1) - 0.5) / CONTOUR_POINTS)
    lr = dt * lin[:, None] + roots[None, :]  # (modes, contour points)
    q = dt * np.mean((np.exp(lr / 2.0) - 1.0) / lr, axis=1)
    f1 = dt * np.mean((-4.0 - lr + np.exp(lr) * (4.0 - 3.0 * lr + lr**2)) / lr**3, axis=1)
    f2 = dt * np.mean((2.0 + lr + np.exp(lr) * (-2.0 + lr)) / lr**3, axis=1)
    f3 = dt * np.mean((-4.0 - 3.0 * lr - lr**2 + np.exp(lr) * (4.0 - lr)) / lr**3, axis=1)
    return e, e2, q, f1, f2, f3
