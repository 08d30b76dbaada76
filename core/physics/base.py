"""The `System` base class: grid, parameters, validation and the explicit-scheme stability bound.

A system knows its equation (`rhs`), grid, parameters and initial conditions; it does not own a time
loop (that is `core.physics.solvers`). Subclasses are frozen dataclasses, one file per equation, that
add their physical parameters as fields and set `name`, `fields` and `ndim` (not overridable).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from core.errors import WorkbenchError, unknown
from core.physics.stencils import MIN_POINTS, grad_symbol, laplace_symbol

DIM_NAMES = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}
#: methods that step `rhs` explicitly (finite differences) and those that are spectral (KdV)
EXPLICIT_METHODS = ("rk4", "euler")
SPECTRAL_METHODS = ("etdrk4", "ifrk4")


def stability_polynomial(method: str, z: np.ndarray) -> np.ndarray:
    """Amplification factor R(z) of one step on y' = μ y with z = dt·μ.

    RK4: R = 1 + z + z²/2 + z³/6 + z⁴/24 (real-axis limit 2.785, imaginary-axis limit 2√2);
    forward Euler: R = 1 + z (real-axis limit 2, unstable on the imaginary axis). ETDRK4/IFRK4 treat
    the linear part exactly and the nonlinear part with RK4 weights, so they use the RK4 polynomial.
    """
    if method == "euler":
        return 1.0 + z
    return 1.0 + z + z**2 / 2.0 + z**3 / 6.0 + z**4 / 24.0


def largest_stable_dt(method: str, eigenvalues: np.ndarray) -> float:
    """Largest dt with |R(dt·μ)| <= 1 for every sampled eigenvalue μ (bisection along dt).

    Eigenvalues with positive real part (physical growth) are not numerical instability and must not
    be passed in.
    """
    mu = np.asarray(eigenvalues, dtype=complex)
    scale = float(np.max(np.abs(mu)))
    if scale == 0.0:
        return math.inf

    def stable(dt: float) -> bool:
        return bool(np.all(np.abs(stability_polynomial(method, dt * mu)) <= 1.0 + 1e-12))

    lo, hi = 0.0, 3.5 / scale  # no explicit scheme here is stable beyond |z| = 3.5
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if stable(mid) else (lo, mid)
    # stable only for dt·|μ| below ~1e-6 (the 1e-12 tolerance): unstable at every useful dt (Euler on
    # purely imaginary eigenvalues)
    return lo if lo * scale > 1e-5 else 0.0


def fd_eigenvalues(dx: tuple[float, ...], diffusion: float, speed: float = 0.0, damping: float = 0.0,
                   samples: int = 513) -> np.ndarray:
    """Sampled eigenvalues of the linearised FD operator D·Δ_h - speed·(Σ_d D_h) - damping.

    Modes are taken along the diagonal θ_d = θ for every axis (where the Laplacian symbol is most
    negative, Σ_d -16/(3 dx_d²) at θ = π): μ(θ) = D Σ_d λ(θ)/dx_d² - damping + i·speed Σ_d s(θ)/dx_d.
    """
    theta = np.linspace(0.0, np.pi, samples)
    lam = sum(laplace_symbol(theta) / (h * h) for h in dx)
    sym = sum(grad_symbol(theta) / h for h in dx)
    return diffusion * lam - damping + 1j * speed * sym


def gaussian_random_field(rng: np.random.Generator, n: tuple[int, ...], lengths: tuple[float, ...],
                          length_scale: float, n_fields: int = 1) -> np.ndarray:
    """Periodic Gaussian random field, zero mean and unit standard deviation per field.

    White noise filtered in Fourier space by exp(-|k|² ℓ²/2) (ℓ = `length_scale`), i.e. a Gaussian
    covariance of correlation length ~ℓ. Returns (n_fields, *n) float64.
    """
    axes = tuple(range(1, len(n) + 1))
    white = rng.standard_normal((n_fields, *n))
    k2 = np.zeros(n)
    for d, (m, length) in enumerate(zip(n, lengths)):
        k = 2.0 * np.pi * np.fft.fftfreq(m, d=length / m)
        shape = [1] * len(n)
        shape[d] = m
        k2 = k2 + (k**2).reshape(shape)
    field_ = np.fft.ifftn(np.fft.fftn(white, axes=axes) * np.exp(-0.5 * k2 * length_scale**2), axes=axes).real
    field_ -= field_.mean(axis=axes, keepdims=True)
    std = field_.std(axis=axes, keepdims=True)
    return field_ / np.where(std > 0, std, 1.0)


@dataclass(frozen=True)
class System:
    """A PDE on a periodic grid. Subclasses add physical parameters as dataclass fields.

    Attributes: `name`, `fields` (state channels), `ndim`, `n` (points per dim in array order
    ([z,] y, x)), `lengths` (domain length per dim, same order), `dt` (reference step), `method`.
    States are float64 arrays of shape (C, *n) with C = len(fields).
    """

    name: str = field(default="", init=False)
    fields: tuple[str, ...] = field(default=(), init=False)
    ndim: int = field(default=0, init=False)
    n: tuple[int, ...] = ()
    lengths: tuple[float, ...] = ()
    dt: float = 0.0
    method: str = "rk4"

    METHODS: ClassVar[tuple[str, ...]] = EXPLICIT_METHODS
    IC_KINDS: ClassVar[tuple[str, ...]] = ()
    LATEX: ClassVar[str] = ""
    #: physical parameters that must be > 0 (others must be >= 0 and finite)
    POSITIVE: ClassVar[tuple[str, ...]] = ()

    # ---- validation -------------------------------------------------------------------------
    def __post_init__(self) -> None:
        try:
            n = tuple(int(m) for m in np.atleast_1d(self.n))
            lengths = tuple(float(v) for v in np.atleast_1d(self.lengths))
        except (TypeError, ValueError) as exc:
            raise WorkbenchError(f"grid n={self.n!r} / lengths={self.lengths!r} for {self.name} must be "
                                 f"sequences of {self.ndim} numbers") from exc
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "lengths", lengths)
        object.__setattr__(self, "dt", float(self.dt))
        if len(n) != self.ndim or len(lengths) != self.ndim:
            raise WorkbenchError(f"{self.name} is {self.ndim}D: n={n} and lengths={lengths} must have "
                                 f"{self.ndim} entries (order {', '.join(self.dims)})")
        if min(n) < MIN_POINTS:
            raise WorkbenchError(f"grid n={n} for {self.name} is smaller than the 5-point stencil; "
                                 f"use at least {MIN_POINTS} points per dimension")
        if not all(math.isfinite(v) and v > 0 for v in lengths):
            raise WorkbenchError(f"domain lengths={lengths} for {self.name} must be positive and finite")
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise WorkbenchError(f"dt={self.dt} for {self.name} must be positive and finite")
        if self.method not in self.METHODS:
            raise unknown(f"method for {self.name}", self.method, self.METHODS)
        for key, value in self.params().items():
            ok = math.isfinite(value) and (value > 0 if key in self.POSITIVE else value >= 0)
            if not ok:
                rule = "> 0" if key in self.POSITIVE else ">= 0"
                raise WorkbenchError(f"parameter {key}={value} for {self.name} must be finite and {rule}")
        self.check_stable(self.dt)

    def check_stable(self, dt: float, state: np.ndarray | None = None) -> None:
        """Raise `WorkbenchError` if `dt` exceeds `stability_limit(state)` (before any step is taken)."""
        bound = self.stability_limit(state)
        if dt > bound:
            # round the bound DOWN to 3 significant digits so the suggested dt is itself accepted
            unit = 10.0 ** (math.floor(math.log10(bound)) - 2) if bound > 0 else 1.0
            shown = math.floor(bound / unit) * unit
            scheme = "RK4" if self.method != "euler" else "forward-Euler"
            if self.method in SPECTRAL_METHODS:
                scheme = f"{self.method.upper()} (nonlinear term)"
            raise WorkbenchError(f"dt={dt:g} exceeds the {scheme} stability bound dt <= {shown:.3g} for "
                                 f"{self.name} ({self.stability_reason(state)}); choose dt <= {shown:.3g}")

    # ---- grid ---------------------------------------------------------------------------------
    @property
    def dims(self) -> tuple[str, ...]:
        """Dimension names in array order: ("x",), ("y", "x") or ("z", "y", "x")."""
        return DIM_NAMES[self.ndim]

    @property
    def dx(self) -> tuple[float, ...]:
        """Grid spacing per dim (length / n, periodic grid)."""
        return tuple(length / m for length, m in zip(self.lengths, self.n))

    @property
    def shape(self) -> tuple[int, ...]:
        """State shape (C, *n)."""
        return (len(self.fields), *self.n)

    def origin(self) -> tuple[float, ...]:
        """Coordinate of grid point 0 per dim (0 unless the equation's domain is centred)."""
        return (0.0,) * self.ndim

    def coords(self) -> dict[str, np.ndarray]:
        """Physical coordinates of the grid points per dim name: x_i = x_0 + i·dx, i = 0..n-1."""
        return {d: o + h * np.arange(m) for d, o, h, m in zip(self.dims, self.origin(), self.dx, self.n)}

    def mesh(self) -> tuple[np.ndarray, ...]:
        """Coordinate arrays of shape n (meshgrid with 'ij' indexing, array order)."""
        c = self.coords()
        return tuple(np.meshgrid(*(c[d] for d in self.dims), indexing="ij"))

    # ---- physics ------------------------------------------------------------------------------
    def params(self) -> dict[str, float]:
        """Physical parameters (every dataclass field a subclass adds), by name."""
        base = {f.name for f in dataclasses.fields(System)}
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in base}

    @property
    def latex(self) -> str:
        """The equations as LaTeX, for display."""
        return self.LATEX

    @property
    def ic_kinds(self) -> tuple[str, ...]:
        """Initial-condition kinds this system offers; the first is the default."""
        return self.IC_KINDS

    def initial_condition(self, rng: np.random.Generator, kind: str | None = None) -> np.ndarray:
        """A random initial state (C, *n) float64 of `kind` (default `ic_kinds[0]`), drawn from `rng`."""
        kind = self.IC_KINDS[0] if kind is None else kind
        if kind not in self.IC_KINDS:
            raise unknown(f"initial condition kind for {self.name}", kind, self.IC_KINDS)
        if not isinstance(rng, np.random.Generator):
            raise WorkbenchError("rng must be a numpy Generator (np.random.default_rng(seed)), "
                                 f"got {type(rng).__name__}")
        u0 = np.asarray(self._initial_condition(rng, kind), dtype=np.float64)
        return u0.reshape(self.shape)

    def _initial_condition(self, rng: np.random.Generator, kind: str) -> np.ndarray:
        raise WorkbenchError(f"{self.name} defines no initial conditions")

    def check_state(self, state: np.ndarray, what: str = "state") -> np.ndarray:
        """`state` as float64 (C, *n); WorkbenchError on a wrong shape or non-finite values."""
        arr = np.asarray(state, dtype=np.float64)
        if arr.shape != self.shape:
            raise WorkbenchError(f"{what} has shape {arr.shape} but {self.name} needs {self.shape} "
                                 f"(fields {', '.join(self.fields)} on grid {self.n})")
        if not np.all(np.isfinite(arr)):
            raise WorkbenchError(f"{what} for {self.name} contains NaN or inf values")
        return arr

    def rhs(self, state: np.ndarray, t: float = 0.0) -> np.ndarray:
        """∂state/∂t as a (C, *n) float64 array."""
        raise WorkbenchError(f"{self.name} defines no right-hand side")

    # ---- stability ----------------------------------------------------------------------------
    def max_diffusion(self) -> float:
        """Largest diffusion coefficient (sets the diffusive stability limit)."""
        return 0.0

    def advection_speed(self, state: np.ndarray | None = None) -> float:
        """Largest advection speed (from `state` if given, else the bound the ICs respect)."""
        return 0.0

    def damping(self) -> float:
        """Estimate of the largest linear decay rate of the reaction terms (adds to the real part)."""
        return 0.0

    def stability_limit(self, state: np.ndarray | None = None, method: str | None = None) -> float:
        """Largest stable dt of `method` (default `self.method`) from the linearised operator's eigenvalues.

        With the 4th-order Laplacian the diffusive eigenvalue reaches -D·Σ_d 16/(3 dx_d²); RK4 is stable
        for dt·|μ| <= 2.785 on the negative real axis (forward Euler: 2). Advection (Burgers) adds an
        imaginary part speed·Σ_d s(θ)/dx_d. `state` (if given) sets the advection speed. Asking for
        another `method` does not need (or validate) a system built with it.
        """
        mu = fd_eigenvalues(self.dx, self.max_diffusion(), self.advection_speed(state), self.damping())
        return largest_stable_dt(method or self.method, mu)

    def stability_reason(self, state: np.ndarray | None = None) -> str:
        """The numbers that set the bound, for the error message, e.g. 'D_v=100, dx=1'."""
        dx = ", ".join(f"{h:g}" for h in sorted(set(self.dx)))
        return f"diffusion={self.max_diffusion():g}, dx={dx}"

    def describe(self) -> dict[str, object]:
        """Plain-data description (name, grid, dt, method, parameters), e.g. for dataset attrs."""
        return {"system": self.name, "fields": list(self.fields), "dims": list(self.dims), "n": list(self.n),
                "lengths": list(self.lengths), "dx": list(self.dx), "dt": self.dt, "method": self.method,
                **self.params()}
