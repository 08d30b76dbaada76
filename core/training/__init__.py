"""Training any learned surrogate (PIMRL, its ablations, the baselines) and the budgets it runs on.

Public face::

    TrainConfig, TrainResult, train, plan, validation_score, BUDGETS, train_config

`BUDGETS` are the named training budgets: every model of the benchmark gets the SAME number of
optimizer steps on coarse windows, and a model with a micro cell first pretrains it on the bursts
(`plan`):

* ``small``: tests, notebooks and the app's on-the-fly training (seconds to a minute per model);
* ``cpu``: the shipped benchmark's budget (`python -m core bench pimrl --budget cpu`);
* ``full``: 4x the cpu budget's coarse-window steps, the convergence run (resumable across
  interruptions and sessions: commit `data/runs/bench-cpu-full/` with its periodic checkpoints to
  carry it over); validation picks the checkpoint, and its curve (stored in every checkpoint) says
  whether the best state came at the end;
* ``paper``: the peers' scale (PeRCNN: 5k–15k iterations) for a GPU.

Per-system settings that the method needs (PIMRL's windows of at least 2N steps) are derived in
`train_config` from the model's cycle length, never typed twice.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from core.errors import WorkbenchError, unknown
from core.training.loop import TrainConfig, TrainResult, lr_at, plan, train, validation_score

#: what every budget shares: micro pretraining on one-δt burst steps at its own peak lr, then the
#: pretrained micro cell kept fixed while the macro module trains around it (measured on Gray–Scott
#: 2D, validation nRMSE over 25 steps: 0.22 frozen vs 0.25 fine-tuned jointly)
_METHOD: dict[str, Any] = dict(fine_lr=1e-2, fine_rollout=1, freeze_micro=True, rollout_start=2)

#: named budgets (TrainConfig fields). Every model gets the same `macro_iterations + iterations` steps
#: on coarse windows; models with a micro cell first pretrain it for `pretrain_iterations` (`plan`).
BUDGETS: dict[str, dict[str, Any]] = {
    "small": dict(_METHOD, pretrain_iterations=200, macro_iterations=20, iterations=60, batch_size=2,
                  rollout=8, lr=3e-3, val_steps=10, val_starts=2),
    # the shipped benchmark's budget (data/results/bench_pimrl.md states its wall time). 800 coarse
    # steps: at 250 every model's validation score was still falling; on Burgers 2D, 1000 steps gave
    # ConvLSTM 0.060 / PIMRL 0.046 test nRMSE@25 where 250 gave 0.132 / 0.143
    "cpu": dict(_METHOD, pretrain_iterations=3000, macro_iterations=200, iterations=600, batch_size=2,
                rollout=8, lr=3e-3, val_every=25, val_steps=25, val_starts=4, checkpoint_every=250),
    # the convergence run, resumable across sessions; the validation curve kept in each checkpoint
    # shows whether the best state came last. Micro pretraining doubles: over the cpu budget's last
    # 1000 of 3000 burst steps the micro ablation's validation score still fell (Gray–Scott 2D 0.0562
    # -> 0.0536, 3D 0.0585 -> 0.0430, FitzHugh–Nagumo 0.0392 -> 0.0377), and its steps are cheap
    "full": dict(_METHOD, pretrain_iterations=6000, macro_iterations=800, iterations=2400, batch_size=2,
                 rollout=8, lr=3e-3, val_every=100, val_steps=25, val_starts=4, checkpoint_every=200),
    "paper": dict(_METHOD, pretrain_iterations=20000, macro_iterations=2000, iterations=8000, batch_size=8,
                  rollout=16, lr=1e-3, val_every=250, val_steps=25, val_starts=8, checkpoint_every=1000),
}


#: per-system training settings, chosen on the validation split, applied on top of every budget by
#: `train_config(..., system=...)` (the benchmark, `python -m core train` and the app pass the system).
#: Gray–Scott 2D: the known-term coefficients θ at 10x the lr. In micro pretraining (cpu budget) its
#: diffusivities then reach 0.92/0.96x the truth instead of 0.63/0.81x, and the validation nRMSE over
#: 25 steps 0.0114 instead of 0.0536. On FitzHugh–Nagumo the same change was worse (0.053 vs 0.0377:
#: D_v = 100 drifted to 0.38x instead of 0.52x), so it stays at 1 there.
SYSTEM_TRAIN: dict[str, dict[str, Any]] = {"grayscott2d": dict(coef_lr=10.0)}


def train_config(budget: str, seed: int = 0, cycle: int | None = None, system: str | None = None,
                 **changes: Any) -> TrainConfig:
    """The TrainConfig of a named budget; `cycle` = PIMRL's N raises the window to at least 2N;
    `system` adds that system's settings (`SYSTEM_TRAIN`); `changes` override both."""
    if budget not in BUDGETS:
        raise unknown("training budget", budget, BUDGETS)
    kw = dict(BUDGETS[budget], seed=seed)
    kw.update(SYSTEM_TRAIN.get(str(system), {}))
    bad = [k for k in changes if k not in {f.name for f in dataclasses.fields(TrainConfig)}]
    if bad:
        raise unknown("training option", bad[0], [f.name for f in dataclasses.fields(TrainConfig)])
    kw.update({k: v for k, v in changes.items() if v is not None})
    if cycle:
        kw["rollout"] = max(kw["rollout"], 2 * int(cycle))
        kw["rollout_start"] = min(kw["rollout_start"], kw["rollout"])
    try:
        return TrainConfig(**kw)
    except TypeError as exc:
        raise WorkbenchError(f"bad training option: {exc}") from exc


__all__ = ["BUDGETS", "SYSTEM_TRAIN", "TrainConfig", "TrainResult", "lr_at", "plan", "train",
           "train_config", "validation_score"]
