"""Training loop (stages, schedule, selection, resume, determinism) and the train/evaluate CLI on a tiny
generated dataset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.errors import WorkbenchError
from core.surrogates import build_model, load_checkpoint
from core.training import (
    BUDGETS,
    SYSTEM_TRAIN,
    TrainConfig,
    lr_at,
    plan,
    train,
    train_config,
    validation_score,
)

REPO = Path(__file__).resolve().parent.parent
TINY = dict(system="burgers2d", n_samples=4, n_coarse=12, splits=(2, 1, 1), overrides=(("n", (16, 16)),))


@pytest.fixture(scope="module")
def tiny_ds(tmp_path_factory):
    from core.datasets import DatasetConfig, generate

    return generate(DatasetConfig(**TINY), cache=tmp_path_factory.mktemp("pimrl-cache"))


def small(**kw) -> TrainConfig:
    base = dict(iterations=4, pretrain_iterations=2, macro_iterations=2, batch_size=2, rollout=4,
                rollout_start=4, lr=2e-3, val_steps=3, val_starts=2, val_every=2)
    return TrainConfig(**{**base, **kw})


def test_tiny_overfit_loss_falls_tenfold(tiny_ds):
    cfg = small(iterations=40, pretrain_iterations=0, macro_iterations=0, rollout=1, rollout_start=1, lr=5e-3,
                batch_size=4, min_lr=1.0)
    res = train("convlstm", tiny_ds, cfg)
    first, last = sum(res.history[:5]) / 5, sum(res.history[-5:]) / 5
    assert last < first / 10, (first, last)


def test_every_model_gets_the_same_coarse_budget_and_pimrl_runs_its_stages_in_order(tiny_ds):
    from core.pimrl import DataMeta

    meta = DataMeta.from_dataset(tiny_ds)
    cfg = small(pretrain_iterations=5)
    for name in ("pimrl", "pimrl_nomp", "macro", "micro", "percnn", "convlstm", "fno"):
        stages = plan(build_model(name, meta, cycle=2) if name.startswith("pimrl") or name == "macro"
                      else build_model(name, meta), cfg)
        steps = {s: n for s, _, n in stages}
        fine = 5 if name in ("pimrl", "pimrl_nomp", "micro") else 0
        coarse = 0 if name == "micro" else 6  # macro pretraining + joint = a baseline's coarse steps
        assert steps.get("fine", 0) == fine and steps.get("macro", 0) + steps.get("coarse", 0) == coarse, name
    assert [s for s, _, _ in plan(build_model("pimrl", meta), cfg)] == ["fine", "macro", "coarse"]
    assert [s for s, _, _ in plan(build_model("percnn", meta), cfg)] == ["coarse"]
    assert [s for s, _, _ in plan(build_model("micro", meta), cfg)] == ["fine"]


def test_cosine_schedule_scales_with_the_budget():
    cfg = TrainConfig(lr=1e-3, min_lr=0.1, fine_lr=1e-2)
    for n in (100, 10_000):
        assert lr_at(cfg, 0, n) == pytest.approx(1e-3)
        assert lr_at(cfg, n - 1, n) == pytest.approx(1e-4)
        assert lr_at(cfg, (n - 1) // 2, n) == pytest.approx(0.55e-3, rel=0.02)  # half-way: the mean
        assert lr_at(cfg, 0, n, "fine") == pytest.approx(1e-2)  # micro pretraining has its own peak
        assert lr_at(cfg, n - 1, n, "fine") == pytest.approx(1e-3)


def test_freeze_micro_keeps_the_pretrained_cell_and_trains_the_macro(tiny_ds):
    res = train("pimrl", tiny_ds, small(freeze_micro=True, iterations=3, macro_iterations=0), cycle=2)
    after = res.model.state_dict()
    fine_only = train("pimrl", tiny_ds, small(pretrain_iterations=2, macro_iterations=0, iterations=1,
                                              freeze_micro=True, val_every=0), cycle=2).model.state_dict()
    micro = [k for k in after if k.startswith("micro.")]
    assert micro and all(torch.equal(after[k], fine_only[k]) for k in micro)  # same seed, same pretraining
    assert any(not torch.equal(after[k], fine_only[k]) for k in after if k.startswith("macro."))


def test_pimrl_windows_cover_two_cycles(tiny_ds):
    with pytest.raises(WorkbenchError, match=r"rollout=4 must be >= 2N = 8"):
        train("pimrl", tiny_ds, small(), cycle=4)
    assert train_config("small", cycle=6).rollout == max(BUDGETS["small"]["rollout"], 12)


def test_system_settings_apply_on_top_of_the_budget_and_changes_win():
    assert SYSTEM_TRAIN["grayscott2d"]["coef_lr"] == 10.0
    assert train_config("cpu", system="grayscott2d").coef_lr == 10.0
    assert train_config("cpu", system="fhn2d").coef_lr == train_config("cpu").coef_lr == 1.0
    assert train_config("cpu", system="grayscott2d", coef_lr=2.0).coef_lr == 2.0
    assert train_config("cpu", system="grayscott2d").iterations == BUDGETS["cpu"]["iterations"]


def test_same_seed_same_model_other_seed_differs(tiny_ds):
    a = train("pimrl", tiny_ds, small(), cycle=2)
    b = train("pimrl", tiny_ds, small(), cycle=2)
    c = train("pimrl", tiny_ds, small(seed=1), cycle=2)
    assert a.history == b.history
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    assert a.history != c.history
    assert len(a.history) == 8 and all(h > 0 for h in a.history)


def test_validation_picks_the_best_checkpoint(tiny_ds):
    from core.datasets import trajectories

    res = train("convlstm", tiny_ds, small(iterations=12, pretrain_iterations=0, macro_iterations=0,
                                            lr=2e-2, val_every=3))
    scores = [v["val_nrmse"] for v in res.validation]
    assert [v["iteration"] for v in res.validation] == [3, 6, 9, 12]
    assert res.best["score"] == min(scores)
    again = validation_score(res.model, trajectories(tiny_ds, "val"), 3, 2, "cpu")
    assert again == pytest.approx(res.best["score"], rel=1e-6)  # the returned weights are the best ones


def test_resume_gives_the_uninterrupted_result(tiny_ds, tmp_path):
    cfg = small(checkpoint_every=2)
    full = train("pimrl", tiny_ds, cfg, out=tmp_path / "full.pt", cycle=2)

    def crash(done, total, message):
        if done == 5:  # after the checkpoint at iteration 4 (the joint stage has just started)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("pimrl", tiny_ds, cfg, out=tmp_path / "part.pt", progress=crash, cycle=2)
    _, payload = load_checkpoint(tmp_path / "part.pt")
    assert payload["iteration"] == 4 and payload["elapsed_s"] > 0
    resumed = train("pimrl", tiny_ds, cfg, out=tmp_path / "part.pt", resume=tmp_path / "part.pt", cycle=2)
    assert resumed.history == full.history and resumed.validation == full.validation
    assert resumed.seconds > payload["elapsed_s"]  # the training time counts the interrupted session
    for (k, va), vb in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(va, vb), k
    with pytest.raises(WorkbenchError, match="different training config"):
        train("pimrl", tiny_ds, small(lr=1e-3), resume=tmp_path / "part.pt", cycle=2)
    with pytest.raises(WorkbenchError, match="cannot resume 'fno'"):
        train("fno", tiny_ds, cfg, resume=tmp_path / "part.pt")


def test_resume_on_another_dataset_is_refused_naming_both_keys(tiny_ds, tmp_path):
    from core.datasets import DatasetConfig, generate

    train("convlstm", tiny_ds, small(iterations=2, pretrain_iterations=0, macro_iterations=0),
          out=tmp_path / "c.pt")
    other = generate(DatasetConfig(**dict(TINY, seed=5)), cache=tmp_path / "cache")
    with pytest.raises(WorkbenchError, match=rf"trained on dataset '{tiny_ds.attrs['key']}', not on "
                                             rf"'{other.attrs['key']}'"):
        train("convlstm", other, small(iterations=2, pretrain_iterations=0, macro_iterations=0),
              resume=tmp_path / "c.pt")


def test_train_config_validation():
    with pytest.raises(WorkbenchError, match="iterations=0"):
        TrainConfig(iterations=0)
    with pytest.raises(WorkbenchError, match="rollout_start=5 must be <= rollout=2"):
        TrainConfig(rollout=2, rollout_start=5)
    with pytest.raises(WorkbenchError, match="lr=2"):
        TrainConfig(lr=2.0)
    with pytest.raises(WorkbenchError, match="unknown training budget 'huge'"):
        train_config("huge")
    cfg = TrainConfig(iterations=10, rollout=6, rollout_start=2)
    assert [cfg.rollout_at(i) for i in (0, 2, 5, 9)] == [2, 3, 6, 6]  # linear ramp over half the stage


def _cli(*args: str, cache: Path, data: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, WORKBENCH_CACHE=str(cache), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    if data is not None:
        env["WORKBENCH_DATA"] = str(data)
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_cli_train_then_evaluate_with_the_references(tmp_path):
    data = ["--system", "burgers2d", "--samples", "4", "--n-coarse", "10", "--override", "n=16,16"]
    r = _cli("train", "convlstm", *data, "--iterations", "3", "--pretrain", "0", "--macro-pretrain", "0",
             cache=tmp_path / "cache", data=tmp_path / "data")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "data" / "runs" / "burgers2d" / "convlstm.pt"
    assert out.is_file() and f"checkpoint: {out}" in r.stdout
    # evaluate finds the run where train wrote it, and scores the references beside it
    r = _cli("evaluate", *data, "--models", "convlstm", "--steps", "4", cache=tmp_path / "cache",
             data=tmp_path / "data")
    assert r.returncode == 0, r.stderr
    assert "| convlstm |" in r.stdout and "| persistence |" in r.stdout and "| mean_field |" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["train", "transformer"], "unknown model 'transformer'; known: pimrl"),
    (["evaluate", "--models", "pimrl,transformer"], "unknown model 'transformer'; known: pimrl"),
    (["train", "convlstm", "--iterations", "1e20"], "would take at least"),
    (["train", "convlstm", "--iterations", "-3"], "--iterations=-3"),
    (["train", "convlstm", "--device", "foo"], "foo"),
])
def test_cli_bad_input_is_one_line_before_any_data(tmp_path, args, message):
    r = _cli(*args, "--system", "burgers2d", "--samples", "4", "--n-coarse", "8", "--override", "n=16,16",
             cache=tmp_path / "cache", data=tmp_path / "data")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    assert not (tmp_path / "cache").exists()  # refused before any dataset was generated


def test_cli_train_refuses_a_folder_as_out(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "notes.txt").write_text("mine")
    r = _cli("train", "convlstm", "--system", "burgers2d", "--out", str(tmp_path / "v"),
             cache=tmp_path / "cache", data=tmp_path / "data")
    assert r.returncode == 2 and "is a folder" in r.stderr
    assert (tmp_path / "v" / "notes.txt").read_text() == "mine"
