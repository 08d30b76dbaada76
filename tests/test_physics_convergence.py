"""Measured convergence orders of the reference solvers against exact solutions.

Space: the 4th-order stencils (Laplacian, gradient, the full Burgers right-hand side on a manufactured
field) and spectral accuracy of the KdV discretisation. Time: RK4 (4), forward Euler (1) on pure
diffusion of a sine mode, whose semi-discrete solution exp(μ t) is exact; ETDRK4/IFRK4 (4) on the
exact KdV one-soliton. Slopes are least-squares fits of log error vs log h (or dt), asserted within
±0.3 of the scheme's order.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.physics import get_system, gradient, laplacian, simulate
from core.physics.stencils import laplace_symbol

TWO_PI = 2.0 * np.pi


def slope(h, err) -> float:
    return float(np.polyfit(np.log(h), np.log(err), 1)[0])


def test_laplacian_and_gradient_are_fourth_order():
    hs, lap_err, grad_err = [], [], []
    for n in (16, 32, 64):
        x = np.arange(n) * TWO_PI / n
        h = TWO_PI / n
        u = np.exp(np.sin(x))
        lap_err.append(np.abs(laplacian(u, h, axes=(0,)) - u * (np.cos(x) ** 2 - np.sin(x))).max())
        grad_err.append(np.abs(gradient(u, h, axis=0) - u * np.cos(x)).max())
        hs.append(h)
    assert slope(hs, lap_err) == pytest.approx(4.0, abs=0.3)
    assert slope(hs, grad_err) == pytest.approx(4.0, abs=0.3)


def burgers_exact_rhs(x, y, nu):
    """Manufactured u = sin(φ), φ = 2πx + cos 2πy; v = cos(ψ), ψ = 2πy + ½ sin 2πx, differentiated by hand."""
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


def test_burgers_rhs_is_fourth_order_in_space():
    hs, errs = [], []
    for n in (24, 48, 96):
        s = get_system("burgers2d", "cpu", n=(n, n), dt=1e-5)
        y, x = s.mesh()
        state, want = burgers_exact_rhs(x, y, s.nu)
        errs.append(np.abs(s.rhs(state) - want).max())
        hs.append(s.dx[0])
    assert slope(hs, errs) == pytest.approx(4.0, abs=0.3)


def test_fd_laplacian_symbol_matches_a_fourier_mode():
    # the symbol the stability bound uses: Δ_h e^{ikx} = λ(k dx)/dx² e^{ikx}
    n, h = 16, 0.3
    for m in range(n // 2 + 1):
        mode = np.cos(TWO_PI * m * np.arange(n) / n)
        np.testing.assert_allclose(laplacian(mode, h, axes=(0,)),
                                   laplace_symbol(TWO_PI * m / n) / h**2 * mode, atol=1e-10)


@pytest.mark.parametrize(("method", "order", "dts"), [
    ("rk4", 4, (0.12, 0.06, 0.03, 0.015)),
    ("euler", 1, (0.08, 0.04, 0.02, 0.01)),
])
def test_time_order_on_diffusion_of_a_sine_mode(method, order, dts):
    # Gray–Scott with f = k = 0 and v = 0 is pure diffusion u_t = D_u Δ_h u. A sine mode of the
    # semi-discrete system decays exactly as exp(μ t), μ = D_u λ(θ)/dx² (θ = 2π m / n): every error
    # left is the time stepper's. D_u is chosen so that μ = -1.
    n, m, length, t_end = 16, 2, 1.0, 2.4
    dx = length / n
    lam = laplace_symbol(np.array(TWO_PI * m / n)) / dx**2
    errs = []
    for dt in dts:
        s = get_system("grayscott2d", "cpu", n=(n, n), lengths=(length, length), f=0.0, k=0.0,
                       Du=-1.0 / float(lam), Dv=1e-6, dt=dt, method=method)
        y, x = s.mesh()
        u0 = np.stack([np.sin(TWO_PI * m * x / length), np.zeros_like(x)])
        steps = int(round(t_end / dt))
        frames = simulate(s, u0, steps, record_every=steps)
        exact = np.exp(-steps * dt) * u0[0]
        errs.append(np.abs(frames[-1, 0] - exact).max())
    assert slope(dts, errs) == pytest.approx(order, abs=0.3)


def test_kdv_is_spectrally_accurate_in_space():
    # exact one-soliton, tiny dt so the time error (~1e-13) is below the spatial one
    errs = {}
    for n in (64, 96, 128):
        s = get_system("kdv1d", "cpu", n=(n,), dt=1e-3)
        frames = simulate(s, s.soliton(1.0, 10.0), 1000, record_every=1000)
        errs[n] = np.abs(frames[-1] - s.soliton(1.0, 10.0, t=1.0)).max()
    # exponential convergence: the local algebraic order log(e1/e2)/log(n2/n1) is far above any
    # finite-difference order (4 would give a factor (96/64)^4 ≈ 5 from 64 to 96 points)
    local = [np.log(errs[a] / errs[b]) / np.log(b / a) for a, b in ((64, 96), (96, 128))]
    assert min(local) > 10.0, local
    assert errs[128] < 1e-7


@pytest.mark.parametrize("method", ["etdrk4", "ifrk4"])
def test_kdv_time_order(method):
    dts = (0.016, 0.008, 0.004, 0.002)
    errs = []
    for dt in dts:
        s = get_system("kdv1d", "cpu", n=(256,), dt=dt, method=method)
        steps = int(round(1.0 / dt))
        frames = simulate(s, s.soliton(1.0, 10.0), steps, record_every=steps)
        errs.append(np.abs(frames[-1] - s.soliton(1.0, 10.0, t=steps * dt)).max())
    assert slope(dts, errs) == pytest.approx(4.0, abs=0.3)
    assert errs[-1] < 1e-9
