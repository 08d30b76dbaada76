"""core.metrics.evaluate on a tiny generated dataset, with models whose errors are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import metrics
from core.baselines.numerical import NumericalScheme
from core.datasets import DatasetConfig, generate, trajectories
from core.errors import WorkbenchError


class Persistence(torch.nn.Module):
    """Predicts 'nothing changes': every frame equals u0."""

    def start(self, u0):
        return u0

    def advance(self, state):
        return state, state

    def forward(self, u0, n_steps):
        return u0[:, None].expand(-1, n_steps, *u0.shape[1:]).clone()  # (B, T, C, *n)


@pytest.fixture(scope="module")
def tiny():
    config = DatasetConfig("burgers2d", n_samples=4, n_coarse=9, splits=(2, 0, 2),
                           overrides=(("n", (16, 16)),))
    return generate(config)


def test_evaluate_dims_and_that_step_zero_is_not_scored(tiny):
    models = {"persist": Persistence(), "euler": NumericalScheme.from_dataset(tiny, "euler", dt=0.01)}
    m = metrics.evaluate(models, tiny, n_steps=6)
    assert m.rmse.dims == ("model", "sample", "time") and m.hct.dims == ("model", "sample")
    assert list(m.model.values) == ["persist", "euler"] and m.sizes["sample"] == 2
    np.testing.assert_allclose(m.time.values, 0.01 * np.arange(1, 7))
    traj = trajectories(tiny, "test").numpy()  # (2, 9, 2, 16, 16)
    # persistence's step-j error is u_j - u_0 by hand; scoring u_0 itself would give 0 at step 1
    want = np.sqrt(np.mean((traj[:, 1:7] - traj[:, :1]) ** 2, axis=(2, 3, 4)))
    np.testing.assert_allclose(m.rmse.sel(model="persist").values, want, rtol=1e-5)
    assert (m.rmse.sel(model="persist").values[:, 0] > 0).all()
    assert (m.diverged_step.values == 0).all()


def test_evaluate_scores_rk4_better_than_euler_and_noise_hurts(tiny):
    models = {"rk4": NumericalScheme.from_dataset(tiny, "rk4", dt=0.0025),
              "euler": NumericalScheme.from_dataset(tiny, "euler", dt=0.01)}
    m = metrics.evaluate(models, tiny)
    table = metrics.summarize(m)
    assert table.loc["rk4", "rmse"] < 0.1 * table.loc["euler", "rmse"]
    assert table.loc["rk4", "hct"] == pytest.approx(0.08)  # never decorrelates: full horizon 8·Δt
    noisy = metrics.evaluate({"rk4": models["rk4"]}, tiny, ic_noise=0.2, seed=1)
    assert noisy.rmse.sel(model="rk4").mean() > 10 * m.rmse.sel(model="rk4").mean()


class Blowup(Persistence):
    """Multiplies by 1e20 per step: float32 overflows to inf at step 2."""

    def advance(self, state):
        nxt = state * 1e20
        return nxt, nxt

    def forward(self, u0, n_steps):
        return torch.stack([u0 * 1e20 ** (j + 1) for j in range(n_steps)], dim=1)


def test_evaluate_records_divergence_instead_of_hiding_it(tiny):
    m = metrics.evaluate({"persist": Persistence(), "blowup": Blowup()}, tiny, n_steps=4)
    assert m.diverged_step.sel(model="persist").values.tolist() == [0, 0]
    assert m.diverged_step.sel(model="blowup").values.tolist() == [2, 2]
    r = m.rmse.sel(model="blowup").values
    assert np.isfinite(r[:, 0]).all() and not np.isfinite(r[:, 1:]).any()
    assert (m.hct.sel(model="blowup").values <= 0.01).all()  # correlation lost by step 2 at the latest
    with pytest.raises(WorkbenchError, match="n_steps=20 must lie in 1..8"):
        metrics.evaluate({"p": Persistence()}, tiny, n_steps=20)
    with pytest.raises(WorkbenchError, match="at least one model"):
        metrics.evaluate({}, tiny)
