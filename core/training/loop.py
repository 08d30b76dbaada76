"""One training loop for PIMRL, its ablations and the learned baselines.

Stages, in order (a model runs those its ``stages`` contain; see `plan`):

1. ``fine`` (micro pretraining): MSE of `micro.fine_rollout` δt-steps against the burst frames, at
   its own peak lr (`fine_lr`). The budgets use ONE δt step per window (`fine_rollout=1`): a step
   costs one substep group instead of k, so thousands of them fit where a hundred k-step windows did
   (measured on Gray–Scott 2D: 100 k-step windows left the diffusivity at 0.64× the truth and the
   micro cell diverging by 25 coarse steps; 5000 one-step windows at lr 1e-2 reached 0.75/0.96× and
   a validation nRMSE of 0.036 over 25 coarse steps, in less time). With `freeze_micro` the joint
   stage keeps the pretrained cell fixed and trains the macro module around it.
2. ``macro`` (macro pretraining, PIMRL with both modules): the macro module alone is trained as a
   ConvLSTM on coarse windows, so joint training starts from a data-driven module that already steps.
3. ``coarse`` (joint training, and the only stage of the coarse baselines): autoregressive rollouts
   of L coarse steps, MSE over every predicted frame (the given frame is never scored). L grows
   from `rollout_start` to `rollout` over the first `curriculum` fraction of the stage. PIMRL's
   windows hold at least 2N steps (two whole micro/macro cycles), so the autonomous macro steps and
   the message passing are trained, not only the micro step.

Options against error accumulation (APEBench / PDE-Refiner practice): `noise` adds Gaussian noise
of σ × (the sample's field std) to the window's initial frame; `pushforward` first rolls p steps
without gradient and trains on the frames after them (the model learns to correct its own drift).

Schedule: the learning rate follows a cosine from `lr` to `lr·min_lr` over EACH stage's budget, so
it scales with the iterations (a fixed StepLR did not: at 800 steps it had decayed to 3e-7 by step
250). Gradients are clipped to `grad_clip`.

Model selection: every `val_every` iterations (at most 20 times per stage) of a stage that ends in a
usable model (and at its end), the model is rolled out `val_steps` coarse steps from several frames
of every VALIDATION trajectory and scored by the mean normalised RMSE (a diverged rollout scores
inf); the best state is kept and restored at the end. Budget: every model gets the same number of
optimizer steps on coarse windows; a model with a micro cell additionally pretrains it on the
bursts (`plan`, `core.training.BUDGETS`).

Resume: the checkpoint holds weights, optimizer, sampler generator, best state, histories and the
training seconds so far (`TrainResult.seconds` sums every session of a resumed run); the learning rate
is a pure function of the iteration, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import WorkbenchError
from core.io import Progress, no_progress, torch_device
from core.pimrl.base import DataMeta, Surrogate, save_checkpoint

STAGES: tuple[str, ...] = ("fine", "macro", "coarse")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the model's own settings live in its config (core.surrogates)."""

    iterations: int = 300  # joint/coarse stage
    pretrain_iterations: int = 100  # micro pretraining on the bursts
    macro_iterations: int = 0  # macro pretraining alone (PIMRL with both modules)
    lr: float = 2e-3
    min_lr: float = 0.02  # final lr of each stage's cosine, relative to lr
    batch_size: int = 4
    rollout: int = 8
    rollout_start: int = 2
    curriculum: float = 0.5  # fraction of the coarse stage over which L grows
    fine_rollout: int = 0  # fine steps per pretraining window; 0 -> k (one coarse interval)
    noise: float = 0.0
    pushforward: int = 0
    grad_clip: float = 1.0
    coef_lr: float = 1.0  # lr multiplier of the micro cell's known-term coefficients (θ)
    fine_lr: float = 0.0  # peak lr of the micro pretraining stage; 0 -> lr
    freeze_micro: bool = False  # joint stage: keep the pretrained micro cell fixed, train the macro
    val_every: int = 0  # 0: validate only at the end of each stage
    val_steps: int = 10
    val_starts: int = 4  # start frames per validation trajectory
    seed: int = 0
    checkpoint_every: int = 0  # 0: only at the end

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "rollout", "rollout_start", "val_steps", "val_starts"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise WorkbenchError(f"train {name}={value!r} must be an integer >= 1")
        for name in ("pretrain_iterations", "macro_iterations", "fine_rollout", "checkpoint_every",
                     "val_every", "pushforward"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise WorkbenchError(f"train {name}={value!r} must be an integer >= 0")
        if self.rollout_start > self.rollout:
            raise WorkbenchError(f"rollout_start={self.rollout_start} must be <= rollout={self.rollout}")
        if not 0 <= self.fine_lr < 1:
            raise WorkbenchError(f"fine_lr={self.fine_lr} must be in [0, 1) (0: the same as lr)")
        if not 0 < self.coef_lr <= 100:
            raise WorkbenchError(f"coef_lr={self.coef_lr} must be in (0, 100]")
        if not (0 < self.lr < 1) or not (0 < self.min_lr <= 1) or not self.grad_clip > 0:
            raise WorkbenchError(f"lr={self.lr} must be in (0, 1), min_lr={self.min_lr} in (0, 1], "
                                 f"grad_clip={self.grad_clip} > 0")
        if not 0 <= self.curriculum <= 1 or not 0 <= self.noise < 1:
            raise WorkbenchError(f"curriculum={self.curriculum} must be in [0, 1] and noise={self.noise} "
                                 "in [0, 1)")

    @property
    def total(self) -> int:
        return self.iterations + self.pretrain_iterations + self.macro_iterations

    def rollout_at(self, i: int) -> int:
        """Curriculum: coarse rollout length at coarse-stage iteration i (0-based)."""
        ramp = max(1, int(self.iterations * self.curriculum))
        return self.rollout_start + (self.rollout - self.rollout_start) * min(i, ramp) // ramp


@dataclass
class TrainResult:
    model: Surrogate
    history: list[float]
    seconds: float
    checkpoint: Path | None
    meta: DataMeta
    config: TrainConfig
    validation: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    diverged_at: int | None = None
    iterations: int = 0  # optimizer steps of the run's plan (all stages)


def plan(model: Surrogate, config: TrainConfig) -> list[tuple[str, int, int]]:
    """(stage, first iteration, iterations) for the stages `model` runs, in order, within the budget.

    Every model gets the same number of optimizer steps on coarse windows, `macro_iterations +
    iterations` (a model without macro pretraining spends them all on its coarse stage); a model with
    a micro cell first pretrains it for `pretrain_iterations` steps on the fine bursts (the extra data
    the method is about; one-δt steps are cheap, the benchmark reports every model's training time).
    The micro ablation trains on the bursts only.
    """
    stages = getattr(model, "stages", ("coarse",))
    has_macro = getattr(model, "macro", None) is not None and "fine" in stages
    coarse_total = config.macro_iterations + config.iterations
    budget = {"fine": 0, "macro": 0, "coarse": coarse_total}
    if "fine" in stages:
        budget["fine"] = config.pretrain_iterations
        if "coarse" not in stages:  # micro ablation: bursts only
            budget["coarse"] = 0
        elif has_macro:
            budget.update(macro=config.macro_iterations, coarse=config.iterations)
    out, start = [], 0
    for stage in STAGES:
        if budget[stage] > 0:
            out.append((stage, start, budget[stage]))
            start += budget[stage]
    return out


def lr_at(config: TrainConfig, stage_iter: int, stage_len: int, stage: str = "coarse") -> float:
    """Cosine from the stage's peak lr (`fine_lr` for micro pretraining, else `lr`) to peak·min_lr
    over a stage of `stage_len` iterations."""
    peak = config.fine_lr if stage == "fine" and config.fine_lr else config.lr
    frac = stage_iter / max(1, stage_len - 1)
    return peak * (config.min_lr + (1 - config.min_lr) * 0.5 * (1 + math.cos(math.pi * frac)))


class _Sampler:
    """Random windows from a torch view, drawn with a seeded generator (its state is checkpointed)."""

    def __init__(self, view: Any, generator: torch.Generator) -> None:
        if len(view) == 0:
            raise WorkbenchError("the training split has no windows; generate more or longer trajectories")
        self.view, self.gen = view, generator

    def batch(self, size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(self.view), (size,), generator=self.gen).tolist()
        items = [self.view[i] for i in idx]
        x0 = torch.stack([torch.as_tensor(a) for a, _ in items]).float().to(device)  # (B, C, *n)
        tgt = torch.stack([torch.as_tensor(b) for _, b in items]).float().to(device)  # (B, L, C, *n)
        return x0, tgt


def _macro_only_rollout(model: Surrogate, x0: torch.Tensor, n: int) -> torch.Tensor:
    """PIMRL's macro module stepping alone (macro pretraining): (B, C, *n) -> (B, n, C, *n)."""
    u, (h, c) = x0, model.macro.initial_state(x0)
    frames = []
    for _ in range(n):
        u, h, c = model.macro.step(u, h, c)
        frames.append(u)
    return torch.stack(frames, dim=1)


def _loss(model: Surrogate, stage: str, batch: tuple[torch.Tensor, torch.Tensor], length: int,
          config: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    x0, target = batch
    if stage == "fine":
        pred = model.micro.fine_rollout(x0, target.shape[1])  # (B, Lf, C, *n)
        return torch.mean((pred - target) ** 2)
    if config.noise > 0:
        axes = tuple(range(2, x0.dim()))
        scale = x0.std(dim=axes, keepdim=True)  # (B, C, 1, ...)
        x0 = x0 + config.noise * scale * torch.randn(x0.shape, generator=gen).to(x0.device)
    p = config.pushforward
    if p:
        with torch.no_grad():
            x0 = (model(x0, p) if stage == "coarse" else _macro_only_rollout(model, x0, p))[:, -1]
        target = target[:, p:]
    pred = model(x0, length) if stage == "coarse" else _macro_only_rollout(model, x0, length)
    return torch.mean((pred - target[:, :length]) ** 2)


def validation_score(model: Surrogate, frames: torch.Tensor, steps: int, starts: int,
                     device: str) -> float:
    """Mean normalised RMSE of `steps`-step rollouts from `starts` frames of each trajectory.

    frames (S, T, C, *n); nRMSE per rollout = sqrt(mean_c MSE_c / σ_c²), σ_c the field's std over
    the validation frames. A non-finite rollout scores inf, so it can never be chosen.
    """
    n_t = frames.shape[1]
    if n_t <= steps:
        steps = n_t - 1
    first = np.linspace(0, n_t - 1 - steps, num=max(1, starts)).round().astype(int)
    first = sorted(set(first.tolist()))
    x0 = torch.cat([frames[:, i] for i in first]).to(device)  # (S·starts, C, *n)
    target = torch.cat([frames[:, i + 1:i + 1 + steps] for i in first]).to(device)  # (S·starts, L, C, *n)
    axes = (0, 1) + tuple(range(3, frames.dim()))
    var = frames.double().var(dim=axes).clamp_min(1e-30).to(device)  # (C,)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            pred = model(x0, steps)
    finally:
        model.train(was_training)
    if not torch.isfinite(pred).all():
        return math.inf
    err = ((pred.double() - target.double()) ** 2).mean(dim=(0, 1) + tuple(range(3, pred.dim())))  # (C,)
    return float(torch.sqrt((err / var).mean()))


def train(name: str, ds: Any, config: TrainConfig, progress: Progress = no_progress,
          resume: Path | None = None, device: str | None = None, out: Path | None = None,
          stop_on_divergence: bool = False, **model_overrides: Any) -> TrainResult:
    """Train model `name` on dataset `ds` (core.datasets); save to `out` (every `checkpoint_every`
    iterations and at the end). `resume` continues from a checkpoint of the same run exactly.

    A non-finite loss raises WorkbenchError, or with `stop_on_divergence` ends training there and
    keeps the best validated state so far (`result.diverged_at` records the iteration; the
    benchmark reports it rather than losing every other run).
    """
    from core.datasets import CoarseWindows, FineWindows, trajectories
    from core.surrogates import build_model

    device = torch_device(device)
    meta = DataMeta.from_dataset(ds)
    torch.manual_seed(config.seed)
    model = build_model(name, meta, **model_overrides).to(device)
    cycle = getattr(model.config, "cycle", None)
    if cycle and getattr(model, "macro", None) is not None and getattr(model, "micro", None) is not None \
            and config.rollout < 2 * cycle:
        raise WorkbenchError(f"train rollout={config.rollout} must be >= 2N = {2 * cycle} for {name} (two "
                             "whole micro/macro cycles, so the autonomous macro steps are trained)")
    opt = torch.optim.Adam(_param_groups(model, config), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    stages = plan(model, config)
    total = sum(n for _, _, n in stages)
    state: dict[str, Any] = {"history": [], "validation": [], "best": {"score": math.inf, "iteration": -1},
                             "best_state": None, "start": 0, "elapsed": 0.0}
    if resume is not None:
        _restore(Path(resume), name, meta, config, model, opt, gen, device, state)
    if resume is None:
        _fit_micro_scaling(model, ds, any(s == "fine" for s, _, _ in stages), device)
    val_frames = trajectories(ds, "val") if _has_split(ds, "val") else trajectories(ds, "train")
    fine_len = config.fine_rollout or meta.k
    needed = {s for s, first, n in stages if first + n > state["start"]}
    window = config.rollout + config.pushforward
    samplers = {}
    if "fine" in needed:
        samplers["fine"] = _Sampler(FineWindows(ds, "train", length=fine_len), gen)
    if needed & {"macro", "coarse"}:
        samplers["coarse"] = _Sampler(CoarseWindows(ds, "train", length=window), gen)
    t0 = time.perf_counter()
    state["t0"] = t0
    model.train()
    history = state["history"]
    trainable = {n: p.requires_grad for n, p in model.named_parameters()}
    pretrained_micro = any(s == "fine" for s, _, _ in stages)
    for stage, first, n_iter in stages:
        for pname, param in model.named_parameters():  # freeze_micro: no gradient into the micro cell
            frozen = config.freeze_micro and pretrained_micro and stage != "fine" \
                and pname.startswith("micro.")
            param.requires_grad_(trainable[pname] and not frozen)
        selects = stage == "coarse" or (stage == "fine" and len(stages) == 1)
        # at most ~20 validations per stage (a long, cheap micro pretraining is not validated every
        # `val_every` steps: one validation rollout costs hundreds of its steps)
        every = max(config.val_every, n_iter // 20) if config.val_every else 0
        for i in range(max(first, state["start"]), first + n_iter):
            local = i - first
            for group in opt.param_groups:
                group["lr"] = lr_at(config, local, n_iter, stage) * group["scale"]
            length = config.rollout_at(local) if stage == "coarse" else config.rollout
            batch = samplers["fine" if stage == "fine" else "coarse"].batch(config.batch_size, device)
            loss = _loss(model, stage, batch, length, config, gen)
            if not torch.isfinite(loss):
                if not stop_on_divergence:
                    raise WorkbenchError(f"training {name} diverged at iteration {i} ({stage} stage, loss "
                                         f"{loss.item()}); lower lr or the rollout length")
                state["diverged_at"] = i
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            history.append(float(loss.item()))
            done = i + 1
            last = local == n_iter - 1
            if selects and (last or (every and (local + 1) % every == 0)):
                score = validation_score(model, val_frames, config.val_steps, config.val_starts, device)
                state["validation"].append({"iteration": done, "stage": stage, "val_nrmse": score})
                if score < state["best"]["score"] or state["best_state"] is None:
                    state["best"] = {"score": score, "iteration": done}
                    state["best_state"] = copy.deepcopy(model.state_dict())
            if out is not None and config.checkpoint_every and done % config.checkpoint_every == 0 \
                    and done < total:
                _save(out, model, meta, config, opt, gen, done, state)
            progress(done, total, f"{stage} loss {history[-1]:.3g}")
        if "diverged_at" in state:
            break
    seconds = state["elapsed"] + time.perf_counter() - t0  # every session of a resumed run
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    model.eval()
    path = _save(out, model, meta, config, opt, gen, total, state) if out else None
    return TrainResult(model, history, seconds, path, meta, config, state["validation"], state["best"],
                       state.get("diverged_at"), total)


def _fit_micro_scaling(model: Surrogate, ds: Any, bursts: bool, device: str) -> None:
    """Fit the micro cell's fixed Π-block scaling (`MicroCell.fit_scaling`) to up to 64 evenly spaced
    training pairs: fine burst steps (δt) when the model pretrains on them, else coarse steps (Δt)."""
    from core.datasets import CoarseWindows, FineWindows

    micro = getattr(model, "micro", None)
    if micro is None or not getattr(micro.config, "scaling", False):
        return
    view = FineWindows(ds, "train", length=1) if bursts else CoarseWindows(ds, "train", length=1)
    if len(view) == 0:
        return
    pairs = [view[int(i)] for i in np.linspace(0, len(view) - 1, num=min(64, len(view))).round()]
    before = torch.stack([torch.as_tensor(a) for a, _ in pairs]).float().to(device)
    after = torch.stack([torch.as_tensor(b)[0] for _, b in pairs]).float().to(device)
    micro.fit_scaling(before, after, view.dt)


def _param_groups(model: Surrogate, config: TrainConfig) -> list[dict[str, Any]]:
    """Adam groups: the known-term coefficients (θ, one scalar per term and field, bounded by a
    sigmoid) at `coef_lr` × lr, everything else at lr."""
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not n.endswith("theta")], "scale": 1.0},
              {"params": [p for n, p in named if n.endswith("theta")], "scale": config.coef_lr}]
    return [g for g in groups if g["params"]]


def _has_split(ds: Any, split: str) -> bool:
    return split in set(np.asarray(ds["split"].values).astype(str).tolist())


def _save(out: Path, model: Surrogate, meta: DataMeta, config: TrainConfig, opt: torch.optim.Optimizer,
          gen: torch.Generator, iteration: int, state: dict[str, Any]) -> Path:
    # the weights of a finished run are its best (selected) state; a periodic checkpoint keeps the
    # current weights so that a resumed run continues exactly
    elapsed = state["elapsed"] + time.perf_counter() - state["t0"]
    return save_checkpoint(out, model, meta, config, state["history"], optimizer=opt.state_dict(),
                           iteration=iteration,
                           extra={"generator": gen.get_state(), "validation": state["validation"],
                                  "best": state["best"], "best_state": state["best_state"],
                                  "elapsed_s": float(elapsed)})


def _restore(path: Path, name: str, meta: DataMeta, config: TrainConfig, model: Surrogate, opt: Any,
             gen: torch.Generator, device: str, state: dict[str, Any]) -> None:
    """Load weights, optimizer, sampler and selection state; the run must be the same one."""
    from core.io import to_jsonable
    from core.surrogates import load_checkpoint

    saved, payload = load_checkpoint(path)
    if payload["model"] != name:
        raise WorkbenchError(f"cannot resume {name!r} from checkpoint {str(path)!r} "
                             f"of model {payload['model']!r}")
    theirs, ours = payload["meta"].get("dataset_key", ""), meta.dataset_key
    if theirs != ours:
        raise WorkbenchError(f"cannot resume from checkpoint {str(path)!r}: it was trained on dataset "
                             f"{theirs!r}, not on {ours!r}; resume on the same dataset")
    saved.meta.check_compatible(meta)
    if payload["train_config"] != to_jsonable(config):
        raise WorkbenchError(f"checkpoint {str(path)!r} was made with a different training config; "
                             "resume with the same settings")
    if payload.get("optimizer") is None or payload.get("generator") is None:
        raise WorkbenchError(f"checkpoint {str(path)!r} holds no optimizer state; it cannot be resumed")
    model.load_state_dict(saved.state_dict())
    opt.load_state_dict(payload["optimizer"])
    gen.set_state(payload["generator"])
    model.to(device)
    state.update(start=int(payload["iteration"]), history=list(payload["history"]),
                 validation=list(payload.get("validation", [])),
                 best=dict(payload.get("best", {"score": math.inf, "iteration": -1})),
                 best_state=payload.get("best_state"), elapsed=float(payload.get("elapsed_s", 0.0)))
