"""core.physics: registry, presets, validation and the shapes every consumer relies on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.errors import WorkbenchError
from core.physics import (
    LAPLACE_4TH,
    PRESETS,
    SYSTEMS,
    System,
    get_system,
    laplacian,
    simulate,
    step,
)

TINY = {"kdv1d": {"n": (32,)}, "burgers2d": {"n": (16, 16)},
        "fhn2d": {"n": (16, 16), "lengths": (16.0, 16.0)},
        "grayscott2d": {"n": (16, 16), "lengths": (0.125, 0.125)},
        "grayscott3d": {"n": (8, 8, 8), "lengths": (100 / 6, 100 / 6, 100 / 6)}}


@pytest.mark.parametrize("name", SYSTEMS)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_system_and_preset_builds(name, preset):
    s = get_system(name, preset)
    assert isinstance(s, System) and s.name == name
    assert len(s.n) == len(s.lengths) == len(s.dims) == s.ndim
    assert s.fields == (("u",) if name == "kdv1d" else ("u", "v"))
    assert s.dt <= s.stability_limit()
    coords = s.coords()
    assert list(coords) == list(s.dims)
    for d, m, h in zip(s.dims, s.n, s.dx):
        assert coords[d].shape == (m,) and np.allclose(np.diff(coords[d]), h)
    assert s.latex and s.ic_kinds and all(isinstance(v, float) for v in s.params().values())


def test_presets_follow_the_anchor_table():
    assert get_system("burgers2d", "paper").dx == (1 / 128, 1 / 128)
    assert get_system("burgers2d", "paper").dt == 1e-4 and get_system("burgers2d", "paper").nu == 0.005
    fhn = get_system("fhn2d", "paper")
    assert (fhn.n, fhn.dx, fhn.dt) == ((128, 128), (1.0, 1.0), 0.002)
    assert fhn.params() == {"Du": 1.0, "Dv": 100.0, "alpha": 0.01, "beta": 0.25}
    gs = get_system("grayscott2d", "paper")
    assert gs.coords()["x"][0] == -0.5 and gs.params() == {"Du": 2e-5, "Dv": 5e-6, "f": 0.04, "k": 0.06}
    gs3 = get_system("grayscott3d", "paper")
    assert gs3.n == (48, 48, 48) and np.allclose(gs3.dx, 100 / 48) and gs3.dt == 0.5
    assert get_system("grayscott3d", "cpu").dx == gs3.dx  # cpu keeps dx, halves the domain
    assert get_system("kdv1d", "paper").n == (256,) and get_system("kdv1d", "cpu").n == (128,)


@pytest.mark.parametrize("name", SYSTEMS)
def test_initial_conditions_rhs_and_simulate_shapes(name):
    s = get_system(name, "cpu", **TINY[name])
    for kind in s.ic_kinds:
        a = s.initial_condition(np.random.default_rng(3), kind)
        b = s.initial_condition(np.random.default_rng(3), kind)
        c = s.initial_condition(np.random.default_rng(4), kind)
        assert a.shape == (len(s.fields), *s.n) and a.dtype == np.float64
        assert np.array_equal(a, b) and not np.array_equal(a, c)  # seeded
        assert np.all(np.isfinite(a))
    u0 = s.initial_condition(np.random.default_rng(0))
    assert s.rhs(u0).shape == u0.shape
    frames = simulate(s, u0, n_steps=7, record_every=3)
    assert frames.shape == (3, *u0.shape) and frames.dtype == np.float64
    assert np.array_equal(frames[0], u0)
    # frames are the recorded steps of the same stepper
    x = u0
    for _ in range(6):
        x = step(s, x)
    np.testing.assert_allclose(frames[2], x, rtol=0, atol=1e-13)


def test_overrides_are_replaced_and_validated():
    s = get_system("burgers2d", "cpu", n=[32, 32], nu=0.01, dt=1e-3)
    assert s.n == (32, 32) and s.nu == 0.01 and s.dx == (1 / 32, 1 / 32)
    assert dataclasses.replace(s, nu=0.02).nu == 0.02
    with pytest.raises(WorkbenchError, match="unknown override for burgers2d 'viscosity'; known: n, lengths"):
        get_system("burgers2d", viscosity=0.1)
    with pytest.raises(ValueError, match="init=False"):
        dataclasses.replace(s, name="other")  # identity fields are not overridable
    with pytest.raises(WorkbenchError, match="nu=-0.1"):
        get_system("burgers2d", nu=-0.1)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"name": "heat"}, "unknown system 'heat'; known: kdv1d, burgers2d"),
    ({"name": "fhn2d", "preset": "gpu"}, "unknown preset 'gpu'; known: paper, cpu"),
    ({"name": "fhn2d", "dt": 0.0}, "dt=0.0 for fhn2d must be positive"),
    ({"name": "fhn2d", "dt": -1e-3}, "must be positive"),
    ({"name": "fhn2d", "n": (4, 16)}, "smaller than the 5-point stencil"),
    ({"name": "grayscott3d", "n": (16, 16)}, "3D: n=.* must have 3 entries"),
    ({"name": "fhn2d", "method": "rk2"}, "unknown method for fhn2d 'rk2'"),
    ({"name": "kdv1d", "method": "rk4"}, "unknown method for kdv1d 'rk4'; known: etdrk4, ifrk4"),
])
def test_bad_configs_are_refused(kwargs, match):
    kwargs = dict(kwargs)
    with pytest.raises(WorkbenchError, match=match):
        get_system(kwargs.pop("name"), **kwargs)


def test_unstable_dt_is_refused_with_the_bound():
    # 2D 4th-order Laplacian: |λ|max = 2·16/3 / dx²; RK4 real-axis limit 2.785 -> dt <= 2.785/(100·32/3)
    bound = 2.7853 / (100 * 32 / 3)
    with pytest.raises(WorkbenchError) as err:
        get_system("fhn2d", "cpu", dt=0.01)
    msg = str(err.value)
    assert msg.startswith("dt=0.01 exceeds the RK4 stability bound dt <= 0.0026 for fhn2d (D_v=100, dx=1)")
    assert msg.endswith("choose dt <= 0.0026")
    assert abs(get_system("fhn2d").stability_limit() - bound) / bound < 0.01  # reaction term shifts it <1%
    # forward Euler: real-axis limit 2
    s = get_system("grayscott2d", "cpu", method="euler", f=0.0, k=0.0)
    assert s.stability_limit() == pytest.approx(2.0 / (2e-5 * 2 * 16 / 3 * 128**2), rel=1e-6)
    # the bound of another scheme, without building (and validating) a system with it:
    # FHN forward Euler, D_v·32/3 plus the reaction damping 2
    euler_bound = get_system("fhn2d").stability_limit(method="euler")
    assert euler_bound == pytest.approx(2.0 / (100 * 32 / 3 + 2), rel=1e-6)
    with pytest.raises(WorkbenchError, match="forward-Euler stability bound dt <= 0.00187 for fhn2d"):
        get_system("fhn2d", method="euler")  # the default dt = 0.002 is beyond it
    # KdV: forward Euler on the dispersive term is unstable at every dt; RK4 on the full rhs needs
    # dt <= 2√2 / (δ k_max³ + ...) with k_max = π/dx
    kdv = get_system("kdv1d")
    assert kdv.stability_limit(method="euler") == 0.0
    assert kdv.stability_limit(method="rk4") < 2 * np.sqrt(2) / (np.pi / kdv.dx[0]) ** 3


def test_simulate_checks_before_stepping_and_names_the_blow_up_step():
    s = get_system("burgers2d", "cpu", n=(16, 16), dt=0.03)
    u0 = s.initial_condition(np.random.default_rng(0))
    with pytest.raises(WorkbenchError, match=r"has shape \(2, 8, 8\) but burgers2d needs \(2, 16, 16\)"):
        simulate(s, u0[:, ::2, ::2], 3)
    with pytest.raises(WorkbenchError, match="exceeds the RK4 stability bound .* max\\|u\\|=5"):
        simulate(s, 5.0 * u0 / np.abs(u0).max(), 3)  # speed 5 makes dt=0.03 unstable: refused up front
    bad = u0.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(WorkbenchError, match="NaN or inf"):
        simulate(s, bad, 3)
    with pytest.raises(WorkbenchError, match="n_steps=-1"):
        simulate(s, u0, -1)
    with pytest.raises(WorkbenchError, match="record_every=0"):
        simulate(s, u0, 3, record_every=0)
    gs = get_system("grayscott2d", "cpu", n=(8, 8), lengths=(1 / 16, 1 / 16))
    blow = np.full(gs.shape, 100.0)  # u v² = 1e6: the reaction explodes in a few steps
    with pytest.raises(WorkbenchError, match=r"grayscott2d became non-finite at step \d+ \(t="):
        simulate(gs, blow, 50)


def test_unknown_ic_kind_and_progress():
    s = get_system("grayscott2d", n=(8, 8))
    with pytest.raises(WorkbenchError, match="unknown initial condition kind for grayscott2d 'solitons'"):
        s.initial_condition(np.random.default_rng(0), "solitons")
    calls = []
    u0 = s.initial_condition(np.random.default_rng(0))
    simulate(s, u0, 10, progress=lambda done, total, msg: calls.append((done, total)))
    assert calls[-1] == (10, 10) and all(t == 10 for _, t in calls)


def test_laplace_stencil_is_exported_and_used():
    assert np.allclose(LAPLACE_4TH * 12, [-1, 16, -30, 16, -1])
    rng = np.random.default_rng(1)
    u = rng.standard_normal((2, 9, 11))
    # brute force: explicit periodic index arithmetic, one axis at a time, dx = (0.5, 0.25)
    want = np.zeros_like(u)
    for axis, h in ((1, 0.5), (2, 0.25)):
        m = u.shape[axis]
        for i in range(m):
            sl = [slice(None)] * 3
            sl[axis] = i
            acc = sum(w * np.take(u, (i + o) % m, axis=axis) for o, w in zip(range(-2, 3), LAPLACE_4TH))
            want[tuple(sl)] += acc / h**2
    np.testing.assert_allclose(laplacian(u, (0.5, 0.25), axes=(1, 2)), want, rtol=1e-12, atol=1e-12)
