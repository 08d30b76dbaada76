"""NumericalScheme (forward Euler / RK4 on the reference physics) through the one rollout loop.

Truth comes from `core.physics.simulate` at the reference resolution; the schemes' error orders are
checked against their theory (Euler 1, RK4 4) and Euler's error must accumulate over the rollout.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import metrics
from core.baselines.numerical import NumericalConfig, NumericalScheme
from core.errors import WorkbenchError
from core.physics import get_system, simulate
from core.rollout import rollout, rollout_batch

DT_COARSE = 0.01  # 20 reference steps of 5e-4 per frame
N_FRAMES = 30


@pytest.fixture(scope="module")
def burgers():
    """A smooth 32² Burgers trajectory at the reference dt (RK4, 5e-4), recorded every Δt = 0.01."""
    system = get_system("burgers2d", "cpu", n=(32, 32))
    u0 = system.initial_condition(np.random.default_rng(3))
    frames = simulate(system, u0, N_FRAMES * 20, record_every=20)  # (N_FRAMES + 1, 2, 32, 32)
    return system, frames


def _rmse(system, frames, method, dt):
    scheme = NumericalScheme(system, method, dt=dt, dt_coarse=DT_COARSE)
    pred = rollout_batch(scheme, frames[None, 0], N_FRAMES)  # (1, T, C, 32, 32)
    return metrics.rmse(pred, frames[None, 1:], dt=DT_COARSE).values[0]  # (T,)


def test_rk4_tracks_the_reference_and_euler_drifts(burgers):
    system, frames = burgers
    rk4 = _rmse(system, frames, "rk4", DT_COARSE / 4)
    euler = _rmse(system, frames, "euler", DT_COARSE)
    scale = np.sqrt(np.mean(frames[1:] ** 2))
    assert rk4.max() < 1e-6 * scale  # float32 output is the floor here, not the scheme
    assert euler[-1] > 1e-3 * scale and euler[-1] > 100 * rk4[-1]
    # Euler's error accumulates: grows over the rollout, step to step almost always (late on the
    # viscous decay of the whole flow shrinks every error a little)
    assert euler[-1] > 3 * euler[2]
    assert np.mean(np.diff(euler) > 0) >= 0.8
    assert np.argmax(euler) >= 2 * N_FRAMES // 3


def test_global_error_orders(burgers):
    """Halving dt divides the final error by 2^p: p = 1 for Euler, 4 for RK4."""
    system, frames = burgers

    def final_error(method, dt):
        scheme = NumericalScheme(system, method, dt=dt, dt_coarse=DT_COARSE)
        state = scheme.start(torch.as_tensor(frames[None, 0]))
        for _ in range(N_FRAMES):
            _, state = scheme.advance(state)  # float64 state: no float32 floor
        return np.sqrt(np.mean((state[0] - frames[N_FRAMES]) ** 2))

    for method, dt, order in (("euler", DT_COARSE, 1), ("rk4", DT_COARSE, 4)):
        slope = np.log2(final_error(method, dt) / final_error(method, dt / 2))
        assert abs(slope - order) < 0.3, (method, slope)


def _hand_rk4(system, u0, dt, substeps, frames):
    """Classical RK4 written out on `system.rhs` (not core.physics' stepper), float64, from the
    float32 initial state the rollout sees; every `substeps`-th state as a float32 frame."""
    u, out = np.asarray(u0, np.float32).astype(np.float64), []
    for _ in range(frames):
        for _ in range(substeps):
            k1 = system.rhs(u)
            k2 = system.rhs(u + 0.5 * dt * k1)
            k3 = system.rhs(u + 0.5 * dt * k2)
            k4 = system.rhs(u + dt * k3)
            u = u + (dt / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)
        out.append(u.astype(np.float32))
    return np.stack(out)  # (frames, C, *n)


def test_stream_and_batch_equal_a_hand_written_rk4_and_are_deterministic(burgers):
    system, frames = burgers
    scheme = NumericalScheme(system, "rk4", dt=DT_COARSE / 2, dt_coarse=DT_COARSE)
    truth = _hand_rk4(system, frames[0], DT_COARSE / 2, 2, 5)
    got = list(rollout(scheme, frames[0], 5, frames[1:]))
    stream = np.stack([f.pred for f in got])
    np.testing.assert_allclose(stream, truth, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rollout_batch(scheme, frames[None, 0], 5)[0], truth, rtol=1e-6, atol=1e-7)
    assert [f.step for f in got] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([f.time for f in got], DT_COARSE * np.arange(1, 6))
    for f in got:  # the error is against the reference frames, not against the model itself
        np.testing.assert_array_equal(f.truth, frames[f.step])
        np.testing.assert_allclose(f.error, f.pred - frames[f.step], atol=1e-7)
    np.testing.assert_array_equal(stream, np.stack([f.pred for f in rollout(scheme, frames[0], 5)]))


def test_euler_beyond_its_stability_bound_diverges_with_the_step_named(burgers):
    system, frames = burgers
    scheme = NumericalScheme(system, "euler", dt=0.1, dt_coarse=0.1)
    assert scheme.stability_ratio() > 2
    got = []
    with pytest.raises(WorkbenchError, match=r"rollout diverged at step (\d+) \(t="):
        for frame in rollout(scheme, frames[0], 200):
            got.append(frame)
    assert got and all(np.isfinite(f.pred).all() for f in got)
    assert [f.step for f in got] == list(range(1, len(got) + 1))


def test_config_validation():
    with pytest.raises(WorkbenchError, match="unknown numerical scheme 'heun'; known: euler, rk4"):
        NumericalConfig("heun", 0.1, 0.1)
    with pytest.raises(WorkbenchError, match="whole number of sub-steps"):
        NumericalConfig("rk4", 0.003, 0.01)
    with pytest.raises(WorkbenchError, match="whole number"):
        NumericalConfig("rk4", 0.02, 0.01)  # dt larger than the frame interval
    assert NumericalConfig("rk4", 0.0025, 0.01).substeps == 4
    with pytest.raises(WorkbenchError, match="shape"):
        NumericalScheme(get_system("burgers2d", "cpu", n=(16, 16)), "rk4", dt_coarse=0.01).start(
            torch.zeros(1, 2, 8, 8))
