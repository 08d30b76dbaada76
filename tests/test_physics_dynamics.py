"""Long-run behaviour of the reference solvers: exact soliton transport, invariants, boundedness,
pattern formation, viscous decay, and that the computed stability bound is where blow-up starts."""

from __future__ import annotations

import numpy as np
import pytest

from core.physics import get_system, simulate, step
from core.physics.convergence import soliton_transport


@pytest.mark.parametrize("method", ["etdrk4", "ifrk4"])
def test_kdv_soliton_travels_at_its_speed_and_keeps_shape(method):
    # 128 points on L = 40, dt = 0.005, t = 0..20: the soliton crosses 60% of the domain
    got = soliton_transport(method, c=1.2, x0=8.0)
    assert got["speed"] == pytest.approx(1.2, rel=1e-5)
    assert got["shape_error"] < 1e-5 * (1.2 / 2)
    assert got["mass_drift"] < 1e-10 and got["momentum_drift"] < 1e-8


def test_kdv_collision_conserves_invariants():
    s = get_system("kdv1d", "cpu")
    k = s.wavenumbers()

    def hamiltonian(u):  # ∫ (α/6 u³ - δ/2 u_x²) dx, conserved by KdV
        ux = np.fft.irfft(1j * k * np.fft.rfft(u), n=s.n[0])
        return float(np.sum(s.alpha / 6 * u**3 - s.delta / 2 * ux**2) * s.dx[0])

    u0 = s.soliton(2.0, 5.0) + s.soliton(0.5, 15.0)  # the fast one overtakes the slow one
    frames = simulate(s, u0, 3000, record_every=3000)  # t = 15
    u1 = frames[-1]
    assert abs(s.mass(u1) / s.mass(u0) - 1) < 1e-10
    drift = abs(s.momentum(u1) / s.momentum(u0) - 1)
    assert drift < 3e-8
    # the drift is the time stepper's (∝ dt⁵ per unit time for a 4th-order scheme), not the space
    # discretisation's: halving dt shrinks it more than 16-fold
    half = get_system("kdv1d", "cpu", dt=s.dt / 2)
    u1_half = simulate(half, u0, 6000, record_every=6000)[-1]
    assert abs(half.momentum(u1_half) / half.momentum(u0) - 1) < drift / 16
    assert abs(hamiltonian(u1[0]) / hamiltonian(u0[0]) - 1) < 1e-6
    # after the interaction both solitons re-emerge: the tallest peak is still the fast one's 3c/α = 1
    assert u1.max() == pytest.approx(1.0, rel=1e-3)


def test_kdv_random_initial_condition_stays_bounded():
    s = get_system("kdv1d", "cpu")
    u0 = s.initial_condition(np.random.default_rng(5), "grf")
    frames = simulate(s, u0, 4000, record_every=400)
    assert np.all(np.isfinite(frames)) and np.abs(frames).max() < 3.0
    assert abs(s.mass(frames[-1]) - s.mass(u0)) < 1e-10 * s.lengths[0]


@pytest.mark.parametrize(("name", "overrides", "steps"), [
    ("grayscott2d", {}, 3000),
    ("grayscott3d", {"n": (16, 16, 16), "lengths": (100 / 3,) * 3}, 1200),
])
def test_gray_scott_forms_patterns_and_stays_bounded(name, overrides, steps):
    s = get_system(name, "cpu", **overrides)
    u0 = s.initial_condition(np.random.default_rng(0))
    frames = simulate(s, u0, steps, record_every=steps // 4)
    std0, std1 = u0[1].std(), frames[-1, 1].std()
    assert std1 > 1.2 * std0, (std0, std1)
    covered0, covered = (u0[1] > 0.1).mean(), (frames[-1, 1] > 0.1).mean()
    assert covered > 3.0 * covered0, (covered0, covered)  # spots/stripes replicate from the few seeds
    assert 0.1 < covered < 0.95  # a pattern, not a uniform state
    assert frames.min() > -1e-3 and frames.max() < 1.0 + 1e-3  # concentrations stay in [0, 1]


def test_fitzhugh_nagumo_stays_bounded():
    s = get_system("fhn2d", "cpu", n=(32, 32), lengths=(32.0, 32.0))
    u0 = s.initial_condition(np.random.default_rng(0))
    frames = simulate(s, u0, 3000, record_every=500)
    assert np.all(np.isfinite(frames))
    # the cubic u - u³ confines u to about [-1.1, 1.1]; v follows u
    assert np.abs(frames).max() < 1.5
    assert np.abs(frames[-1]).max() > 10 * np.abs(u0).std()  # the noise does not just die out


def test_burgers_energy_decays_and_obeys_the_maximum_principle():
    s = get_system("burgers2d", "cpu", n=(32, 32), dt=1e-3)
    u0 = s.initial_condition(np.random.default_rng(2))
    assert np.abs(u0).max() == pytest.approx(2 * s.nu / s.dx[0])  # cell Reynolds number 2 at the start
    frames = simulate(s, u0, 600, record_every=50)
    energy = 0.5 * (frames**2).sum(axis=(1, 2, 3)) * np.prod(s.dx)
    assert np.all(np.diff(energy) < 0) and energy[-1] < 0.9 * energy[0]
    assert np.abs(frames).max() <= np.abs(u0).max() + 1e-3


@pytest.mark.parametrize("method", ["rk4", "euler"])
def test_stability_bound_is_where_the_checkerboard_starts_to_grow(method):
    # pure diffusion (Gray–Scott with f = k = 0, v = 0): the checkerboard (-1)^(i+j) is the mode with
    # the most negative eigenvalue, so it decays just below the computed bound and grows just above
    s = get_system("grayscott2d", "cpu", n=(16, 16), f=0.0, k=0.0, method=method)
    bound = s.stability_limit()
    i, j = np.indices(s.n)
    u0 = np.stack([(-1.0) ** (i + j), np.zeros(s.n)])
    for factor, grows in ((0.97, False), (1.03, True)):
        u = u0
        for _ in range(200):
            u = step(s, u, dt=factor * bound)
        assert (np.abs(u).max() > 1.0) == grows, (factor, np.abs(u).max())
