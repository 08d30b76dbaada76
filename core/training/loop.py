"""One training loop for PIMRL, its ablations and the baselines.

Stage 1 ("fine", models whose ``stages`` include it): the micro module is pretrained on fine-burst
windows: MSE of `fine_rollout` δt-steps against the burst frames.
Stage 2 ("coarse"): the whole model is trained autoregressively on coarse windows; MSE over every
predicted frame (frames 1..L after the given one; the given frame is never scored). The rollout
length L grows linearly from `rollout_start` to `rollout` over the first half of the stage
(curriculum: short rollouts first, so early gradients are not dominated by diverging trajectories).

Same budget for every model: `pretrain_iterations + iterations` optimizer steps in total on the
same training trajectories; models without a fine stage spend all of them on coarse windows.
One Adam optimizer and one StepLR schedule span both stages, and the window sampler is a seeded
``torch.Generator`` stored in checkpoints, so resuming gives exactly the uninterrupted result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.errors import WorkbenchError
from core.io import Progress, no_progress, torch_device
from core.pimrl.base import DataMeta, Surrogate, save_checkpoint
from core.pimrl.registry import build_model, load_checkpoint


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; the model's own settings live in its config (see registry)."""

    iterations: int = 300
    pretrain_iterations: int = 100
    lr: float = 2e-3
    lr_step: int = 100
    lr_gamma: float = 0.7
    batch_size: int = 4
    rollout: int = 8
    rollout_start: int = 2
    fine_rollout: int = 0  # fine steps per pretraining window; 0 -> k (one coarse interval)
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 0  # 0: only at the end

    def __post_init__(self) -> None:
        for name in ("iterations", "batch_size", "rollout", "rollout_start", "lr_step"):
            if getattr(self, name) < 1:
                raise WorkbenchError(f"train {name}={getattr(self, name)} must be >= 1")
        for name in ("pretrain_iterations", "fine_rollout", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise WorkbenchError(f"train {name}={getattr(self, name)} must be >= 0")
        if self.rollout_start > self.rollout:
            raise WorkbenchError(f"rollout_start={self.rollout_start} must be <= rollout={self.rollout}")
        if not (0 < self.lr < 1) or not (0 < self.lr_gamma <= 1) or self.grad_clip <= 0:
            raise WorkbenchError(f"lr={self.lr} must be in (0, 1), lr_gamma={self.lr_gamma} in (0, 1], "
                                 f"grad_clip={self.grad_clip} > 0")

    @property
    def total(self) -> int:
        return self.iterations + self.pretrain_iterations

    def rollout_at(self, i: int) -> int:
        """Curriculum: coarse rollout length at coarse-stage iteration i (0-based)."""
        ramp = max(1, self.iterations // 2)
        return self.rollout_start + (self.rollout - self.rollout_start) * min(i, ramp) // ramp


@dataclass
class TrainResult:
    model: Surrogate
    history: list[float]
    seconds: float
    checkpoint: Path | None
    meta: DataMeta
    config: TrainConfig
    extra: dict[str, Any] = field(default_factory=dict)


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


def _stage_of(model: Surrogate, config: TrainConfig, i: int) -> str:
    stages = getattr(model, "stages", ("coarse",))
    if stages == ("fine",):
        return "fine"
    if "fine" in stages and i < config.pretrain_iterations:
        return "fine"
    return "coarse"


def _loss(model: Surrogate, stage: str, batch: tuple[torch.Tensor, torch.Tensor],
          length: int) -> torch.Tensor:
    x0, target = batch
    if stage == "fine":
        pred = model.micro.fine_rollout(x0, target.shape[1])  # (B, Lf, C, *n)
        return torch.mean((pred - target) ** 2)
    pred = model(x0, length)  # (B, L, C, *n)
    return torch.mean((pred - target[:, :length]) ** 2)


def train(name: str, ds: Any, config: TrainConfig, progress: Progress = no_progress,
          resume: Path | None = None, device: str | None = None, out: Path | None = None,
          **model_overrides: Any) -> TrainResult:
    """Train model `name` on dataset `ds` (core.datasets); save to `out` (every `checkpoint_every`
    iterations and at the end). `resume` continues from a checkpoint of the same run exactly.
    """
    from core.datasets import CoarseWindows, FineWindows

    device = torch_device(device)
    meta = DataMeta.from_dataset(ds)
    torch.manual_seed(config.seed)
    model = build_model(name, meta, **model_overrides).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=config.lr_step, gamma=config.lr_gamma)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[float] = []
    start = 0
    if resume is not None:
        start, history = _restore(Path(resume), name, meta, config, model, opt, sched, gen, device)
    stages = {_stage_of(model, config, i) for i in range(start, config.total)}
    fine_len = config.fine_rollout or meta.k
    samplers = {}
    if "fine" in stages:
        samplers["fine"] = _Sampler(FineWindows(ds, "train", length=fine_len), gen)
    if "coarse" in stages:
        samplers["coarse"] = _Sampler(CoarseWindows(ds, "train", length=config.rollout), gen)
    t0 = time.perf_counter()
    model.train()
    for i in range(start, config.total):
        stage = _stage_of(model, config, i)
        length = config.rollout_at(i - (config.pretrain_iterations if "fine" in model.stages else 0))
        loss = _loss(model, stage, samplers[stage].batch(config.batch_size, device), length)
        if not torch.isfinite(loss):
            raise WorkbenchError(f"training {name} diverged at iteration {i} (loss {loss.item()}); "
                                 "lower lr or the rollout length")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        sched.step()
        history.append(float(loss.item()))
        done = i + 1
        if out is not None and config.checkpoint_every and done % config.checkpoint_every == 0 \
                and done < config.total:
            _save(out, model, meta, config, history, opt, sched, gen, done)
        progress(done, config.total, f"{stage} loss {history[-1]:.3g}")
    seconds = time.perf_counter() - t0
    model.eval()
    path = _save(out, model, meta, config, history, opt, sched, gen, config.total) if out else None
    return TrainResult(model, history, seconds, path, meta, config)


def _save(out: Path, model: Surrogate, meta: DataMeta, config: TrainConfig, history: list[float],
          opt: torch.optim.Optimizer, sched: Any, gen: torch.Generator, iteration: int) -> Path:
    return save_checkpoint(out, model, meta, config, history, optimizer=opt.state_dict(),
                           scheduler=sched.state_dict(), iteration=iteration,
                           extra={"generator": gen.get_state()})


def _restore(path: Path, name: str, meta: DataMeta, config: TrainConfig, model: Surrogate, opt: Any,
             sched: Any, gen: torch.Generator, device: str) -> tuple[int, list[float]]:
    """Load weights, optimizer, schedule and sampler state; the run must be the same one."""
    saved, payload = load_checkpoint(path, expect=meta)
    if payload["model"] != name:
        raise WorkbenchError(f"cannot resume {name!r} from checkpoint {str(path)!r} "
                             f"of model {payload['model']!r}")
    from core.io import to_jsonable

    if payload["train_config"] != to_jsonable(config):
        raise WorkbenchError(f"checkpoint {str(path)!r} was made with a different training config; "
                             "resume with the same settings")
    model.load_state_dict(saved.state_dict())
    if payload.get("optimizer") is None or payload.get("generator") is None:
        raise WorkbenchError(f"checkpoint {str(path)!r} holds no optimizer state; it cannot be resumed")
    opt.load_state_dict(payload["optimizer"])
    sched.load_state_dict(payload["scheduler"])
    gen.set_state(payload["generator"])
    model.to(device)
    return int(payload["iteration"]), list(payload["history"])
