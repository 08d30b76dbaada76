"""core.rollout with toy surrogates whose exact rollouts are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import WorkbenchError
from core.rollout import RolloutFrame, rollout, rollout_batch


class Scale(torch.nn.Module):
    """u_{j+1} = a·u_j: the exact rollout is a^j·u0 (state = the current frame)."""

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(float(a)))

    def start(self, u0):
        return u0

    def advance(self, state):
        nxt = self.a * state
        return nxt, nxt

    def forward(self, u0, n_steps):
        frames, state = [], self.start(u0)
        for _ in range(n_steps):
            f, state = self.advance(state)
            frames.append(f)
        return torch.stack(frames, dim=1)  # (B, n_steps, C, *n)


class RandomConv(Scale):
    """A random (seeded) periodic conv net with dropout: eval mode must make it deterministic."""

    def __init__(self, seed: int) -> None:
        super().__init__(1.0)
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(2, 8, 3, padding=1, padding_mode="circular"),
                                       torch.nn.Tanh(), torch.nn.Dropout(0.5),
                                       torch.nn.Conv2d(8, 2, 3, padding=1, padding_mode="circular"))

    def advance(self, state):
        nxt = state + 0.1 * self.net(state)
        return nxt, nxt


U0 = np.arange(6, dtype=np.float32).reshape(1, 2, 3) / 6  # (C=1, 2, 3)


def test_free_rollout_matches_exact_powers():
    frames = list(rollout(Scale(0.5), U0, 4, dt=0.25))
    assert [f.step for f in frames] == [1, 2, 3, 4]
    np.testing.assert_allclose([f.time for f in frames], [0.25, 0.5, 0.75, 1.0])
    for f in frames:
        assert isinstance(f, RolloutFrame) and f.truth is None and f.error is None
        np.testing.assert_allclose(f.pred, 0.5**f.step * U0, rtol=1e-6)


def test_truth_error_and_teacher_forcing():
    truth = np.stack([U0 + j for j in range(1, 5)])  # (T=4, C, 2, 3), frames after u0
    free = list(rollout(Scale(2.0), U0, 3, truth))
    np.testing.assert_allclose(free[2].pred, 8 * U0)
    np.testing.assert_allclose(free[2].error, 8 * U0 - truth[2])
    forced = list(rollout(Scale(2.0), U0, 3, truth, teacher_forcing=True))
    # step j restarts from truth[j-2] (the true frame at step j-1): pred_j = 2·truth_{j-1}
    np.testing.assert_allclose(forced[0].pred, 2 * U0)
    np.testing.assert_allclose(forced[1].pred, 2 * truth[0])
    np.testing.assert_allclose(forced[2].pred, 2 * truth[1])


def test_bad_horizon_and_missing_truth_fail_before_any_step():
    calls = []
    with pytest.raises(WorkbenchError, match="exceeds the 2 true frames"):
        rollout(Scale(1.0), U0, 3, np.zeros((2, 1, 2, 3)), progress=lambda *a: calls.append(a))
    with pytest.raises(WorkbenchError, match="teacher forcing"):
        rollout(Scale(1.0), U0, 3, teacher_forcing=True)
    with pytest.raises(WorkbenchError, match="shape"):
        rollout(Scale(1.0), U0, 1, np.zeros((2, 1, 3, 3)))
    assert calls == []


def test_divergence_yields_finite_frames_then_names_the_step():
    # 1e20 per step overflows float32 (max ~3.4e38) at step 2: 0.83e40 -> inf
    model = Scale(1e20)
    got: list[RolloutFrame] = []
    with pytest.raises(WorkbenchError, match=r"rollout diverged at step 2 \(t=1\)"):
        for f in rollout(model, U0 + 1, 5, dt=0.5):
            got.append(f)
    assert [f.step for f in got] == [1]
    assert np.all(np.isfinite(got[0].pred))
    with pytest.raises(WorkbenchError, match="diverged at step 2"):
        rollout_batch(model, (U0 + 1)[None], 5)
    out = rollout_batch(model, (U0 + 1)[None], 3, check_finite=False)
    assert np.isinf(out[0, 1]).all() and np.isfinite(out[0, 0]).all()


def test_should_stop_and_progress():
    seen = []
    frames = list(rollout(Scale(1.0), U0, 10, should_stop=lambda: len(seen) >= 3,
                          progress=lambda d, t, m: seen.append((d, t))))
    assert len(frames) == 3 and seen == [(1, 10), (2, 10), (3, 10)]


def test_deterministic_eval_mode_and_batch_equals_stream():
    rng = np.random.default_rng(0)
    u0 = rng.standard_normal((3, 2, 8, 8)).astype(np.float32)
    model = RandomConv(seed=1)
    model.train()
    a = np.stack([f.pred for f in rollout(model, u0[1], 6)])
    b = np.stack([f.pred for f in rollout(RandomConv(seed=1), u0[1], 6)])
    np.testing.assert_array_equal(a, b)  # dropout off in eval mode, same seed -> same weights
    assert model.training  # the caller's mode is restored
    batch = rollout_batch(model, u0, 6, batch_size=2)
    assert batch.shape == (3, 6, 2, 8, 8) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[1], a, rtol=1e-5, atol=1e-6)


def test_reference_dataset_config_reads_the_manifest(tmp_path):
    import json

    from core.surrogates import reference_dataset_config

    assert reference_dataset_config("burgers2d", folder=tmp_path).n_samples == 8  # no manifest: defaults
    cfg = {"system": "burgers2d", "preset": "cpu", "n_samples": 5, "seed": 7, "k": 5, "splits": [3, 1, 1],
           "overrides": {"n": [32, 32]}}
    entry = {"path": "burgers2d/pimrl.pt", "dataset_config": cfg}
    manifest = {"checkpoints": {"burgers2d": {"pimrl": entry}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    got = reference_dataset_config("burgers2d", folder=tmp_path)
    assert (got.n_samples, got.seed, got.k, got.splits) == (5, 7, 5, (3, 1, 1))
    assert dict(got.overrides) == {"n": (32, 32)}
    assert reference_dataset_config("fhn2d", folder=tmp_path).n_samples == 8  # other system: defaults
    small = reference_dataset_config("burgers2d", folder=tmp_path, n_samples=3, splits=(1, 1, 1))
    assert small.n_samples == 3 and small.seed == 7
