"""Training loop, resume, determinism and the train/evaluate CLI on a tiny generated dataset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.errors import WorkbenchError
from core.pimrl import TrainConfig, load_checkpoint, train

REPO = Path(__file__).resolve().parent.parent
TINY = dict(system="burgers2d", n_samples=3, n_coarse=10, splits=(2, 0, 1), overrides=(("n", (16, 16)),))


@pytest.fixture(scope="module")
def tiny_ds(tmp_path_factory):
    from core.datasets import DatasetConfig, generate

    torch.set_num_threads(1)
    return generate(DatasetConfig(**TINY), cache=tmp_path_factory.mktemp("pimrl-cache"))


def small(**kw) -> TrainConfig:
    base = dict(iterations=4, pretrain_iterations=3, batch_size=2, rollout=3, rollout_start=1, lr=2e-3,
                lr_step=2)
    return TrainConfig(**{**base, **kw})


def test_tiny_overfit_loss_falls_tenfold(tiny_ds):
    res = train("convlstm", tiny_ds, small(iterations=40, pretrain_iterations=0, rollout=1, lr=5e-3,
                                            batch_size=4, lr_step=1000))
    first, last = sum(res.history[:5]) / 5, sum(res.history[-5:]) / 5
    assert last < first / 10, (first, last)


def test_same_seed_same_model_other_seed_differs(tiny_ds):
    a = train("pimrl", tiny_ds, small())
    b = train("pimrl", tiny_ds, small())
    c = train("pimrl", tiny_ds, small(seed=1))
    assert a.history == b.history
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert a.history != c.history
    assert len(a.history) == 7 and all(h > 0 for h in a.history)


def test_resume_gives_the_uninterrupted_result(tiny_ds, tmp_path):
    cfg = small(checkpoint_every=2)
    full = train("pimrl", tiny_ds, cfg, out=tmp_path / "full.pt")

    def crash(done, total, message):
        if done == 5:  # after the checkpoint at iteration 4 (stage 2 already started)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("pimrl", tiny_ds, cfg, out=tmp_path / "part.pt", progress=crash)
    _, payload = load_checkpoint(tmp_path / "part.pt")
    assert payload["iteration"] == 4
    resumed = train("pimrl", tiny_ds, cfg, out=tmp_path / "part.pt", resume=tmp_path / "part.pt")
    assert resumed.history == full.history
    for (k, va), vb in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(va, vb), k
    with pytest.raises(WorkbenchError, match="different training config"):
        train("pimrl", tiny_ds, small(lr=1e-3), resume=tmp_path / "part.pt")
    with pytest.raises(WorkbenchError, match="cannot resume 'fno'"):
        train("fno", tiny_ds, cfg, resume=tmp_path / "part.pt")


def test_train_config_validation():
    with pytest.raises(WorkbenchError, match="iterations=0"):
        TrainConfig(iterations=0)
    with pytest.raises(WorkbenchError, match="rollout_start=5 must be <= rollout=2"):
        TrainConfig(rollout=2, rollout_start=5)
    with pytest.raises(WorkbenchError, match="lr=2"):
        TrainConfig(lr=2.0)
    cfg = TrainConfig(iterations=10, rollout=6, rollout_start=2)
    assert [cfg.rollout_at(i) for i in (0, 2, 5, 9)] == [2, 3, 6, 6]  # linear ramp over half the stage


def _cli(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, WORKBENCH_CACHE=str(cache), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_train_then_evaluate(tmp_path):
    data = ["--system", "burgers2d", "--samples", "3", "--n-coarse", "6", "--override", "n=16,16"]
    out = tmp_path / "ckpt" / "burgers2d" / "convlstm.pt"
    r = _cli("train", "convlstm", *data, "--iterations", "3", "--pretrain", "0", "--out", str(out),
             cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert out.is_file() and "checkpoint:" in r.stdout
    r = _cli("evaluate", *data, "--models", "convlstm", "--checkpoints", str(tmp_path / "ckpt"),
             "--steps", "4", cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    assert "| convlstm |" in r.stdout
    r = _cli("train", "transformer", *data, cache=tmp_path / "cache")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: unknown model 'transformer'; known: pimrl")
