"""Measured convergence orders of the reference solvers against exact solutions.

The studies live in `core.physics.convergence` (the same numbers `python -m core bench convergence`
writes to data/results/); here each measured order is asserted within ±0.3 of the scheme's theory
(4th-order stencils, RK4 4, forward Euler 1, ETDRK4/IFRK4 4), and KdV's spectral accuracy against
what no finite-difference order could reach.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.physics import convergence as conv
from core.physics import laplacian
from core.physics.stencils import laplace_symbol

TWO_PI = 2.0 * np.pi


def test_slope_recovers_a_known_power():
    h = np.array([0.1, 0.05, 0.025])
    assert conv.slope(h, 3.0 * h**4) == pytest.approx(4.0, abs=1e-12)


def test_laplacian_and_gradient_are_fourth_order():
    lap, grad = conv.fd_stencils()
    assert lap.order == pytest.approx(4.0, abs=0.3) and grad.order == pytest.approx(4.0, abs=0.3)
    assert lap.errors[-1] < 1e-4 and grad.errors[-1] < 1e-4


def test_burgers_rhs_is_fourth_order_in_space():
    study = conv.burgers_rhs()
    assert study.order == pytest.approx(4.0, abs=0.3)


def test_fd_laplacian_symbol_matches_a_fourier_mode():
    # the symbol the stability bound uses: Δ_h e^{ikx} = λ(k dx)/dx² e^{ikx}
    n, h = 16, 0.3
    for m in range(n // 2 + 1):
        mode = np.cos(TWO_PI * m * np.arange(n) / n)
        np.testing.assert_allclose(laplacian(mode, h, axes=(0,)),
                                   laplace_symbol(TWO_PI * m / n) / h**2 * mode, atol=1e-10)


@pytest.mark.parametrize(("method", "order"), [("rk4", 4), ("euler", 1)])
def test_time_order_on_diffusion_of_a_sine_mode(method, order):
    study = conv.diffusion_time(method)
    assert study.expected == order and study.order == pytest.approx(order, abs=0.3)


def test_kdv_is_spectrally_accurate_in_space():
    study = conv.kdv_space()
    errs = dict(zip((64, 96, 128), study.errors))
    # exponential convergence: the local algebraic order log(e1/e2)/log(n2/n1) is far above any
    # finite-difference order (4 would give a factor (96/64)^4 ≈ 5 from 64 to 96 points)
    local = [np.log(errs[a] / errs[b]) / np.log(b / a) for a, b in ((64, 96), (96, 128))]
    assert min(local) > 10.0, local
    assert errs[128] < 1e-7


@pytest.mark.parametrize("method", ["etdrk4", "ifrk4"])
def test_kdv_time_order(method):
    study = conv.kdv_time(method)
    assert study.order == pytest.approx(4.0, abs=0.3)
    assert study.errors[-1] < 1e-9
