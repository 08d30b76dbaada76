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
    """Multiplies by 1e20 per step: beyond BLOWUP × max|truth| at step 1, inf (float32) at step 2."""

    def advance(self, state):
        nxt = state * 1e20
        return nxt, nxt

    def forward(self, u0, n_steps):
        return torch.stack([u0 * 1e20 ** (j + 1) for j in range(n_steps)], dim=1)


def test_evaluate_records_divergence_instead_of_hiding_it(tiny):
    m = metrics.evaluate({"persist": Persistence(), "blowup": Blowup()}, tiny, n_steps=4)
    assert m.diverged_step.sel(model="persist").values.tolist() == [0, 0]
    assert m.diverged_step.sel(model="blowup").values.tolist() == [1, 1]  # 1e20·u0 is already a blow-up
    r = m.rmse.sel(model="blowup").values
    assert (r == np.inf).all()  # scored as diverged from step 1, not as a finite (huge) number or NaN
    assert (m.hct.sel(model="blowup").values == 0).all()
    with pytest.raises(WorkbenchError, match="n_steps=20 must lie in 1..8"):
        metrics.evaluate({"p": Persistence()}, tiny, n_steps=20)
    with pytest.raises(WorkbenchError, match="at least one model"):
        metrics.evaluate({}, tiny)


class HalfDiverged(Persistence):
    """Exact on sample 0; on sample 1 it predicts u0 until step 3, then NaN."""

    def __init__(self, truth):
        super().__init__()
        self.truth = torch.as_tensor(truth)  # (S, T, C, *n) true frames after u0

    def forward(self, u0, n_steps):
        out = self.truth[:, :n_steps].clone()
        out[1] = u0[1][None].expand(n_steps, *u0.shape[1:])
        out[1, 2:] = float("nan")
        return out


def test_a_half_diverged_model_never_scores_better_than_a_sound_one(tiny):
    traj = trajectories(tiny, "test")
    half = HalfDiverged(traj[:, 1:])
    m = metrics.evaluate({"sound": Persistence(), "half": half}, tiny, n_steps=6)
    table = metrics.summarize(m)
    # the half-diverged model is exact on one sample, so skipping NaN would make it the better model
    assert table.loc["half", "diverged"] == 1 and table.loc["half", "first_diverged"] == 3
    assert table.loc["sound", "diverged"] == 0
    assert table.loc["half", "rmse"] == np.inf and table.loc["half", "nrmse"] == np.inf
    assert list(metrics.rank(table).index) == ["sound", "half"]
    band = metrics.band(m.rmse.sel(model="half"))
    assert np.isfinite(band["mean"].values[:2]).all() and (band["mean"].values[2:] == np.inf).all()


def test_nrmse_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(2, 3, 2, 4, 4))
    q[:, :, 1] *= 10.0  # fields of different scale
    p = q + rng.normal(scale=0.1, size=q.shape)
    sigma = np.array([q[:, :, c].std() for c in range(2)])
    want = np.sqrt(np.mean([np.mean((p[:, :, c] - q[:, :, c]) ** 2, axis=(2, 3)) / sigma[c] ** 2
                            for c in range(2)], axis=0))  # (S, T)
    np.testing.assert_allclose(metrics.nrmse(p, q).values, want, rtol=1e-12)
    # predicting each field's mean value scores 1 on the whole set
    mean_pred = np.broadcast_to(q.mean(axis=(0, 1, 3, 4), keepdims=True), q.shape)
    whole = np.sqrt(np.mean(metrics.nrmse(mean_pred, q).values ** 2))
    assert whole == pytest.approx(1.0, rel=1e-12)


def test_references_are_surrogates_with_known_predictions(tiny):
    from core.surrogates import load_surrogates

    models, problems = load_surrogates(tiny, ["persistence", "mean_field"])
    assert not problems
    m = metrics.evaluate(models, tiny, n_steps=5)
    traj = trajectories(tiny, "test").numpy()
    train = trajectories(tiny, "train").numpy()
    want_p = np.sqrt(np.mean((traj[:, 1:6] - traj[:, :1]) ** 2, axis=(2, 3, 4)))
    want_m = np.sqrt(np.mean((traj[:, 1:6] - train.mean(axis=0)[None, 1:6]) ** 2, axis=(2, 3, 4)))
    np.testing.assert_allclose(m.rmse.sel(model="persistence").values, want_p, rtol=1e-5)
    np.testing.assert_allclose(m.rmse.sel(model="mean_field").values, want_m, rtol=1e-5)
