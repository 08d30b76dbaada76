"""Periodic finite-difference stencils shared by the reference solvers and the PIMRL micro cell.

All stencils are the 4th-order central 5-point ones, listed for the offsets (-2, -1, 0, +1, +2):

    Δ_h u_i  = (-u_{i-2} + 16 u_{i-1} - 30 u_i + 16 u_{i+1} - u_{i+2}) / (12 dx²)   (one axis)
    D_h u_i  = ( u_{i-2} -  8 u_{i-1}          +  8 u_{i+1} - u_{i+2}) / (12 dx)

Their Fourier symbols (θ = k dx) are what the stability bounds use:

    Δ_h e^{ikx} = λ(θ)/dx² e^{ikx},  λ(θ) = (-2 cos 2θ + 32 cos θ - 30)/12 ∈ [-16/3, 0]
    D_h e^{ikx} = i s(θ)/dx e^{ikx}, s(θ) = (8 sin θ - sin 2θ)/6,  max |s| ≈ 1.3722
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: offsets of the 5-point stencils below
STENCIL_OFFSETS = np.array([-2, -1, 0, 1, 2])
#: 4th-order second derivative: divide by dx²
LAPLACE_4TH = np.array([-1.0, 16.0, -30.0, 16.0, -1.0]) / 12.0
#: 4th-order first derivative: divide by dx
GRAD_4TH = np.array([1.0, -8.0, 0.0, 8.0, -1.0]) / 12.0
#: smallest grid (points per axis) the 5-point stencils make sense on
MIN_POINTS = 5


def _apply(u: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """Σ_o w_o u[i+o] along `axis`, periodic (scipy's correlate1d centres the 5 weights on i)."""
    # imported on first use: scipy.ndimage takes ~0.5 s to import, and `core.physics` is imported by
    # the app's first page (system names, equations), which steps no system itself
    from scipy.ndimage import correlate1d

    return correlate1d(np.asarray(u, dtype=np.float64), weights, axis=axis, mode="wrap")


def _per_axis(dx: float | Sequence[float], axes: Sequence[int]) -> list[float]:
    if np.ndim(dx) == 0:
        return [float(dx)] * len(axes)
    dxs = [float(d) for d in dx]
    if len(dxs) != len(axes):
        raise ValueError(f"got {len(dxs)} grid spacings for {len(axes)} axes")
    return dxs


def laplacian(u: np.ndarray, dx: float | Sequence[float], axes: Sequence[int]) -> np.ndarray:
    """4th-order periodic Laplacian Σ_axes ∂²u/∂x_a² with the 5-point stencil `LAPLACE_4TH`.

    `dx` is one spacing for every axis or one per entry of `axes` (same order). Other axes (e.g. a
    leading field axis) are carried along, so `laplacian(state, dx, axes=(-2, -1))` works on (C, y, x).
    """
    axes = list(axes)
    out = np.zeros(np.shape(u))
    for axis, h in zip(axes, _per_axis(dx, axes)):
        out += _apply(u, LAPLACE_4TH / (h * h), axis)
    return out


def gradient(u: np.ndarray, dx: float, axis: int) -> np.ndarray:
    """4th-order periodic first derivative ∂u/∂x along `axis` with the 5-point stencil `GRAD_4TH`."""
    return _apply(u, GRAD_4TH / float(dx), axis)


def laplace_symbol(theta: np.ndarray) -> np.ndarray:
    """λ(θ) of `LAPLACE_4TH` (eigenvalue times dx²) for θ = k dx; min -16/3 at θ = π."""
    return sum(w * np.cos(o * theta) for o, w in zip(STENCIL_OFFSETS, LAPLACE_4TH))


def grad_symbol(theta: np.ndarray) -> np.ndarray:
    """s(θ) of `GRAD_4TH` (eigenvalue / i times dx) for θ = k dx."""
    return sum(w * np.sin(o * theta) for o, w in zip(STENCIL_OFFSETS, GRAD_4TH))
